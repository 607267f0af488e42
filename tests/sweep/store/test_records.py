"""sweep.store.records on real files: a plan record, its checksum and the trials it holds
(a damaged or tampered one is StudyDamaged naming it), and a pack's newest trainer
checkpoints that match their sha256 sidecars (from a real finished study)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest

from sweep.plan.packs import make_plan
from sweep.plan.spec import parse
from sweep.store import study as st
from sweep.store.records import Found, checked_trials, checkpoints, read_plan, write_plan
from tests.sweep._helpers import spec_text

TRIALS = make_plan(parse(spec_text())).trials  # the finished study's two packs
PLAN = "plans/exp-000.json"


def _exp(sha: str | None, name: str = "exp-000", status: str = "finished") -> dict:
    """An experiment as study.json records it (only what read_plan looks at)."""
    return {"name": name, "status": status} | ({"plan_sha256": sha} if sha else {})


def test_a_plan_record_reads_back_its_trials_and_its_checksum_is_the_files(tmp_path) -> None:
    sha = write_plan(tmp_path, "exp-000", TRIALS, uri="/runs/exp-000", cpus_per_trial=2,
                     created=1.5)
    p = tmp_path / PLAN
    assert sha == hashlib.sha256(p.read_bytes()).hexdigest()
    rec = json.loads(p.read_text())
    assert (rec["experiment"], rec["uri"], rec["cpus_per_trial"], rec["created"]) == \
        ("exp-000", "/runs/exp-000", 2, 1.5)
    assert rec["trials"] == json.loads(json.dumps([t.to_json() for t in TRIALS]))
    back = read_plan(tmp_path, _exp(sha))
    assert back == list(TRIALS) and [t.hashes for t in back] == [t.hashes for t in TRIALS]
    assert os.listdir(tmp_path / "plans") == ["exp-000.json"]  # written atomically
    assert write_plan(tmp_path, "exp-000", TRIALS, uri="/runs/exp-000", cpus_per_trial=2,
                      created=1.5) == sha  # the same plan, the same bytes


@pytest.mark.parametrize("name", ["../exp-000", "exp-0", "exp-000/../../x", "imported",
                                  "exp-000.json", ""])
def test_a_plan_record_is_never_written_under_another_name(tmp_path, name) -> None:
    with pytest.raises(st.StudyUnsafe, match="exp-NNN"):
        write_plan(tmp_path, name, TRIALS, uri="/x")
    assert not (tmp_path / "plans").exists()


def test_a_torn_plan_is_study_damaged_naming_it(tmp_path) -> None:
    sha = write_plan(tmp_path, "exp-000", TRIALS, uri="/x")
    p = tmp_path / PLAN
    p.write_bytes(p.read_bytes()[:-40])  # cut short, as a full disk or a kill leaves it
    with pytest.raises(st.StudyDamaged, match="checksum differs from study.json") as e:
        read_plan(tmp_path, _exp(sha))
    assert e.value.key == PLAN and "wdsweep repair" in str(e.value)


def _tampered(t: dict) -> dict:
    t = json.loads(json.dumps(t))
    t["key"] = "../../../../tmp/x"
    return t


@pytest.mark.parametrize("data, kind", [
    (b"{not json", "JSONDecodeError"),
    (b"[" * 100_000, "RecursionError"),
    (b'{"experiment": "exp-000"}', "KeyError"),
    (b'{"trials": {"a": 1}}', "TypeError"),
    (json.dumps({"trials": [_tampered(TRIALS[0].to_json())]}).encode(), "ValueError"),
    (json.dumps({"trials": [dict(json.loads(json.dumps(TRIALS[0].to_json())),
                                 members=[{"width": 0}])]}).encode(), "(BadInput|ConfigError)"),
    (json.dumps({"trials": [dict(json.loads(json.dumps(TRIALS[0].to_json())),
                                 members=[{"evil": "os.system"}])]}).encode(), "TypeError"),
], ids=["not-json", "deep", "no-trials", "trials-dict", "key-path", "bad-member",
        "unknown-key"])
def test_a_tampered_plan_with_a_matching_checksum_is_still_damage(tmp_path, data,
                                                                  kind) -> None:
    """Whoever can write the study can recompute the plan's sha256: the record is then
    read as data and refused, naming the file and the kind of error."""
    (tmp_path / "plans").mkdir()
    (tmp_path / PLAN).write_bytes(data)
    with pytest.raises(st.StudyDamaged, match=f"not a plan record \\({kind}") as e:
        read_plan(tmp_path, _exp(hashlib.sha256(data).hexdigest()))
    assert e.value.key == PLAN


def test_a_missing_or_linked_plan_is_damage_an_unchecksummed_one_legacy_an_import_none(
        tmp_path) -> None:
    with pytest.raises(st.StudyDamaged, match="cannot read it") as e:
        read_plan(tmp_path, _exp("0" * 64))
    assert e.value.key == PLAN
    good = tmp_path / "elsewhere"
    sha = write_plan(good, "exp-000", TRIALS, uri="/x")
    (tmp_path / "plans").mkdir()
    (tmp_path / PLAN).symlink_to(good / PLAN)  # the right bytes, behind a link: not followed
    with pytest.raises(st.StudyDamaged, match="cannot read it"):
        read_plan(tmp_path, _exp(sha))
    with pytest.raises(st.StudyLegacy, match="repair --migrate"):
        read_plan(tmp_path, _exp(None))
    assert read_plan(tmp_path, _exp(None, "imported", "imported")) == []


def test_checked_trials_takes_a_list_of_trial_records_only() -> None:
    records = json.loads(json.dumps([t.to_json() for t in TRIALS]))
    assert checked_trials(records) == list(TRIALS) and checked_trials([]) == []
    for bad in ({"0": records[0]}, records[0], "trials", None):
        with pytest.raises(TypeError):
            checked_trials(bad)
    with pytest.raises(TypeError):
        checked_trials([records[0], ["not", "a", "trial"]])
    with pytest.raises(ValueError):
        checked_trials([dict(records[0], key="short")])


# Checkpoints: the finished study's own, read as `resume` and `repair` read them.


def _state_file(f: Found) -> Path:
    """The trainer's state-<step>.pt (zero-padded, trainer.checkpoint) that `f` names."""
    (p,) = [p for p in (Path(f.uri) / "checkpoints").glob("state-*.pt")
            if int(p.stem.removeprefix("state-")) == f.step]
    return p


def test_checkpoints_are_a_packs_newest_verified_trainer_checkpoints_newest_first(
        finished_study) -> None:
    state = st.read_state(finished_study)
    (exp,) = state["experiments"]
    for t in read_plan(finished_study, exp):
        found = checkpoints(state, t.key, keep=10)
        steps = [f.step for f in found]
        assert len(found) >= 2 and steps == sorted(steps, reverse=True)
        assert steps[0] == t.members[0].total_steps  # the final one, then older ones
        assert len(set(steps)) == len(steps)
        for f in found:
            assert Path(f.uri).parent.name == f"trial-{t.key}"
            assert Path(f.uri).is_relative_to(Path(exp["uri"]))
            assert _state_file(f).is_file()
        assert checkpoints(state, t.key) == found[:2]  # two by default
        assert checkpoints(state, t.key, keep=1) == found[:1]
    assert checkpoints(state, "0123456789ab") == []  # a trial no experiment ran


@pytest.mark.parametrize("damage", ["torn", "other-sidecar", "no-sidecar", "bad-sidecar"])
def test_a_checkpoint_whose_sha256_sidecar_does_not_match_is_skipped(study, damage,
                                                                     caplog) -> None:
    state = st.read_state(study)
    key, other = state["experiments"][0]["trials"]
    newest, older = checkpoints(state, key, keep=2)
    pt = _state_file(newest)
    side = pt.with_suffix(".sha256")
    if damage == "torn":
        pt.write_bytes(pt.read_bytes()[:100])  # what a kill mid-write leaves
    elif damage == "other-sidecar":
        side.write_text(hashlib.sha256(b"other bytes").hexdigest())
    elif damage == "no-sidecar":
        side.unlink()
    else:
        side.write_bytes(b"\xff\xfe not text")
    with caplog.at_level(logging.WARNING, logger="sweep.store.records"):
        assert checkpoints(state, key, keep=1) == [older]
    assert f"skipping {pt}" in caplog.text and "sha256 sidecar" in caplog.text
    assert checkpoints(state, key, keep=2)[0] == older
    assert checkpoints(state, other, keep=1)[0].step == newest.step  # the other pack: intact


def _copy_checkpoint(src: Found, exp_uri: Path, key: str, step: int) -> Path:
    """A verified trainer checkpoint at `step` in another experiment's storage, laid out as
    the trainable hands it to Tune (EXP/trial-KEY/checkpoint_N/checkpoints/state-S.pt)."""
    ck = exp_uri / f"trial-{key}" / "checkpoint_000000" / "checkpoints"
    ck.mkdir(parents=True)
    data = _state_file(src).read_bytes()
    (ck / f"state-{step:09d}.pt").write_bytes(data)
    (ck / f"state-{step:09d}.sha256").write_text(hashlib.sha256(data).hexdigest())
    return ck.parent


def test_checkpoints_are_searched_across_experiments_but_never_in_an_import(
        study, tmp_path) -> None:
    state = st.read_state(study)
    e0 = state["experiments"][0]
    key = e0["trials"][0]
    (newest,) = checkpoints(state, key, keep=1)
    later = tmp_path / "storage" / "exp-001"  # `resume` continued the pack there
    uri = _copy_checkpoint(newest, later, key, newest.step + 8)
    e1 = dict(e0, name="exp-001", uri=str(later), status="running")
    got = checkpoints({"experiments": [e0, e1]}, key, keep=2)
    assert got == [Found(newest.step + 8, str(uri)), newest]
    # An import holds tables, never checkpoints; an experiment that did not run the trial
    # is not searched for it.
    for e in (dict(e1, status="imported"), dict(e1, trials=[])):
        assert checkpoints({"experiments": [e0, e]}, key, keep=1) == [newest]
    # A state file that is not in a checkpoints/ directory is no trainer checkpoint.
    stray = later / f"trial-{key}" / "checkpoint_000001"
    stray.mkdir()
    data = _state_file(got[0]).read_bytes()
    (stray / f"state-{newest.step + 16:09d}.pt").write_bytes(data)
    (stray / f"state-{newest.step + 16:09d}.sha256").write_text(hashlib.sha256(data).hexdigest())
    assert checkpoints({"experiments": [e0, e1]}, key, keep=1) == [got[0]]
