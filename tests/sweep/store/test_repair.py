"""sweep.store.repair at unit level, on copies of a real finished study: what it does
with a pack whose final checkpoint or history is gone (left pending for `resume`), a
study.json rebuilt from the plans (unsigned), a plan rebuilt from the trials' params.json
(or refused when they disagree), and the cases it leaves to a person."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from sweep.store import study as st
from sweep.store import trust as _trust
from sweep.store.publish import export, import_
from sweep.store.records import checkpoints, read_plan
from sweep.store.repair import repair
from sweep.store.status import status


def _repair(study: Path, **kw) -> tuple[dict, list[str]]:
    said: list[str] = []
    out = repair(study, say=said.append, **kw)
    return out, said


def _files(study: Path) -> dict[str, bytes]:
    return {n: (study / n).read_bytes() for n in (st.STATE, st.RESULTS, st.HISTORY)}


def test_a_consistent_study_is_left_as_it_is(study) -> None:
    before = _files(study)
    out, said = _repair(study)
    assert out == {"completed": None, "pending": None, "unrecoverable": 0}
    assert said == [f"{study}: consistent; nothing to repair"]
    assert _files(study) == before


def _lose_final(study: Path, key: str, how: str) -> None:
    """What a kill or a lost disk leaves of one pack's final trainer checkpoint."""
    (final,) = checkpoints(st.read_state(study), key, keep=1)
    pt = Path(final.uri) / "checkpoints" / f"state-{final.step:09d}.pt"  # trainer.checkpoint
    assert pt.is_file()
    metrics = Path(final.uri) / "metrics.csv"
    if how == "torn-checkpoint":
        pt.write_bytes(pt.read_bytes()[:100])  # fails its sha256: the older one is newest
    elif how == "short-history":
        metrics.write_text("".join(metrics.read_text().splitlines(keepends=True)[:-2]))
    else:
        metrics.unlink()


@pytest.mark.parametrize("how, warning", [
    ("torn-checkpoint", "sha256 sidecar"),
    ("short-history", "does not hold these members' full history"),
    ("no-history", "cannot use"),
])
def test_a_pack_without_its_final_checkpoint_and_history_is_left_pending_for_resume(
        study, caplog, how, warning) -> None:
    res0 = st.read_results(study).set_index("config_hash")
    state = st.read_state(study)
    lost, kept = read_plan(study, state["experiments"][0])
    _lose_final(study, lost.key, how)
    p = study / st.RESULTS
    p.write_bytes(p.read_bytes()[:-20])  # and the table that names it is damaged
    with caplog.at_level(logging.WARNING, logger="sweep"):
        out, said = _repair(study)
    assert warning in caplog.text
    assert out == {"completed": 2, "pending": 2, "unrecoverable": 0}
    assert said[0].startswith("repairing: ") and st.RESULTS in said[0]
    assert said[-1].endswith(f"2 members pending: run `wdsweep resume {study}`")
    state = st.check(study)  # the rebuilt tables are what study.json records
    assert state["experiments"][0]["status"] == "running"  # `resume` finishes it
    res = st.read_results(study).set_index("config_hash")
    assert sorted(res.index) == sorted(kept.hashes)
    assert res.warnings.str.contains("rebuilt by `wdsweep repair`").all()
    last = [c for c in res0.columns if c.startswith("last_")]
    pd.testing.assert_frame_equal(res[last], res0.loc[res.index, last])  # bit for bit
    hist = pd.read_csv(study / st.HISTORY, dtype={"config_hash": str})
    assert set(hist.config_hash) == set(kept.hashes)
    s = status(study)
    assert (s["completed"], s["pending"], s["errored"]) == (2, 2, 0)
    assert {m["status"] for m in s["members"] if m["config_hash"] in lost.hashes} == \
        {"pending"}
    assert _repair(study)[1][-1].endswith("nothing to repair")


def test_study_json_is_rebuilt_from_the_plans_as_data_not_signed(study) -> None:
    old = st.read_state(study)
    assert _trust.mine(old)
    (study / st.STATE).unlink()
    out, said = _repair(study)
    assert out == {"completed": 4, "pending": 0, "unrecoverable": 0}
    new = st.read_state(study)
    assert not _trust.mine(new)  # files anyone could have written vouch for nothing
    assert (new["id"], new["name"]) == (old["id"], old["name"])
    for a, b in zip(old["experiments"], new["experiments"], strict=True):
        assert {k: b[k] for k in ("name", "uri", "trials", "members", "plan_sha256")} == \
            {k: a[k] for k in ("name", "uri", "trials", "members", "plan_sha256")}
        assert b["status"] == "finished"
    assert status(study)["completed"] == 4


def test_without_study_json_or_plans_it_says_to_restore_a_backup(study) -> None:
    before = {n: (study / n).read_bytes() for n in (st.RESULTS, st.HISTORY)}
    (study / st.STATE).unlink()
    for p in (study / "plans").iterdir():
        p.unlink()
    with pytest.raises(st.StudyDamaged, match="restore it from a backup") as e:
        _repair(study)
    assert e.value.key == st.STATE
    assert {n: (study / n).read_bytes() for n in before} == before  # nothing rewritten


def _damage_plan(study: Path) -> Path:
    p = study / "plans" / "exp-000.json"
    p.write_bytes(p.read_bytes()[:-40])
    return p


def test_a_damaged_plan_is_rebuilt_from_the_trials_params_json(study) -> None:
    state = st.read_state(study)
    trials = read_plan(study, state["experiments"][0])
    _damage_plan(study)
    out, said = _repair(study)
    assert "rebuilt plans/exp-000.json from the experiment's trial records" in said
    assert out["completed"] == 4
    state = st.read_state(study)  # its new checksum recorded
    assert read_plan(study, state["experiments"][0]) == trials


@pytest.mark.parametrize("edit", ["missing", "other-members", "not-json"])
def test_a_damaged_plan_whose_params_json_disagree_is_refused_as_it_was(study,
                                                                        edit) -> None:
    state = st.read_state(study)
    first, second = read_plan(study, state["experiments"][0])
    params = Path(state["experiments"][0]["uri"]) / f"trial-{first.key}" / "params.json"
    if edit == "missing":
        params.unlink()
    elif edit == "other-members":  # a pack study.json does not record for this trial
        rec = json.loads(params.read_text())
        rec["trial"] = json.loads(json.dumps(second.to_json()))
        params.write_text(json.dumps(rec))
    else:
        params.write_text("{not json")
    p = _damage_plan(study)
    torn = p.read_bytes()
    with pytest.raises(st.StudyDamaged, match="checksum differs") as e:
        _repair(study)
    assert e.value.key == "plans/exp-000.json"
    assert p.read_bytes() == torn  # no plan written from records that disagree


def test_an_imported_study_is_imported_again_not_repaired(finished_study, tmp_path) -> None:
    export(finished_study, tmp_path / "pub")
    new = tmp_path / "new"
    import_(tmp_path / "pub", new)
    p = new / st.RESULTS
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(st.StudyDamaged, match="import them again into a new study") as e:
        _repair(new)
    assert e.value.key == st.RESULTS


def test_an_extended_import_without_study_json_is_not_rebuilt_without_its_imported_rows(
        finished_study, tmp_path) -> None:
    """The imported experiment has no plan record: rebuilding study.json from plans/
    alone would drop its members from the tables, so repair refuses and writes nothing."""
    import sweep
    from sweep.plan.spec import parse
    from tests.sweep._helpers import spec_text

    export(finished_study, tmp_path / "pub")
    new = tmp_path / "new"
    import_(tmp_path / "pub", new)
    grid = "weight_decay = [0.0, 0.1, 0.3]\nseed = [0, 1]"
    assert sweep.run(parse(spec_text(grid=grid)), new)["completed"] == 2
    assert list((new / "plans").iterdir())  # the extension's plan, not the import's
    (new / st.STATE).unlink()
    before = {n: (new / n).read_bytes() for n in (st.RESULTS, st.HISTORY)}
    with pytest.raises(st.StudyDamaged, match="4 members that no plan record names") as e:
        _repair(new)
    assert e.value.key == st.STATE
    assert {n: (new / n).read_bytes() for n in before} == before
    assert not (new / st.STATE).exists()


def test_plans_are_read_in_the_order_the_analysis_reports_experiments() -> None:
    from analysis._refine_report import _exp_order
    from sweep.store.repair import _order

    names = ["exp-1000", "exp-999", "exp-013", "exp-0012", "exp-001", "exp-x"]
    by_repair = [p.stem for p in sorted((Path(f"{n}.json") for n in names), key=_order)]
    assert by_repair == sorted(names, key=_exp_order)
    assert by_repair == ["exp-x", "exp-001", "exp-0012", "exp-013", "exp-999", "exp-1000"]
