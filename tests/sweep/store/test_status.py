"""sweep.store.status without Ray: the counts and the per-member table of a real small
study -- finished, part-done (completed, errored and pending members), and while a
driver holds its lock and writes STUDY/status.json."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sweep.plan.spec import SpecError
from sweep.store import study as st
from sweep.store.records import read_plan
from sweep.store.rows import member_row
from sweep.store.status import status

COUNTS = ("total", "completed", "running", "pending", "errored")


def _counts(s: dict) -> tuple:
    return tuple(s[k] for k in COUNTS)


def test_a_finished_study_counts_and_lists_every_member_from_results(finished_study) -> None:
    s = status(finished_study)
    assert _counts(s) == (4, 4, 0, 0, 0)
    assert s["study"] == str(finished_study) and s["driver_alive"] is False
    assert s["experiments"] == [{"name": "exp-000", "status": "finished"}] and s["trials"] == []
    res = st.read_results(finished_study).set_index("config_hash")
    rows = s["members"]
    assert sorted(m["config_hash"] for m in rows) == sorted(res.index)
    for m in rows:
        r = res.loc[m["config_hash"]]
        assert (m["status"], m["experiment"], m["trial"], m["eta_s"]) == \
            ("completed", "exp-000", r.trial_id, None)
        assert m["step"] == m["total_steps"] == r.total_steps
        assert m["test_acc"] == r.last_test_acc
        assert (m["weight_decay"], m["seed"], m["batch_size"], m["train_size"]) == \
            (r.weight_decay, r.seed, r.batch_size, r.train_size)
        assert type(m["seed"]) is int and type(m["weight_decay"]) is float  # plain, not numpy
    keys = [(m["trial"], m["weight_decay"], m["seed"]) for m in rows]
    assert keys == sorted(keys)  # experiment, trial, λ, seed
    json.dumps(s, allow_nan=False)  # `wdsweep status --json` as it is


def _part_done(study):
    """The copy's tables rewritten (and recorded in study.json, as the recorder does): the
    first pack completed, one member of the second errored, the other without a row."""
    state = st.read_state(study)
    first, second = read_plan(study, state["experiments"][0])
    res = st.read_results(study)
    hist = pd.read_csv(study / "history.csv", dtype={"config_hash": str})
    bad = second.members[0]
    rows = pd.concat([res[res.config_hash.isin(first.hashes)], pd.DataFrame([dict(
        member_row(bad, second.key, "exp-000", "errored"), error="RuntimeError: boom")])],
        ignore_index=True)
    st.write_tables(study, rows, hist[hist.config_hash.isin(first.hashes)])
    return first, second


def test_members_without_a_row_are_pending_with_their_plans_values(study) -> None:
    first, second = _part_done(study)
    s = status(study)
    assert _counts(s) == (4, 2, 0, 1, 1)
    rows = {m["config_hash"]: m for m in s["members"]}
    errored, pending = (rows[m.config_hash()] for m in second.members)
    assert (errored["status"], errored["step"], errored["test_acc"]) == ("errored", None, None)
    m = second.members[1]
    assert (pending["status"], pending["step"], pending["test_acc"], pending["eta_s"]) == \
        ("pending", None, None, None)
    assert (pending["weight_decay"], pending["seed"], pending["batch_size"],
            pending["train_size"], pending["total_steps"]) == \
        (m.decay.weight_decay, m.seed, m.batch_size, m.train_size, m.total_steps)
    assert (pending["trial"], pending["experiment"]) == (second.key, "exp-000")
    assert {rows[h]["status"] for h in first.hashes} == {"completed"}


def test_a_drivers_status_json_shows_running_members_only_while_it_holds_the_lock(
        study) -> None:
    first, second = _part_done(study)
    h_err, h_pending = second.hashes
    live = {"experiment": "exp-001", "trials": {"completed": 1, "running": 1, "pending": 0},
            "per_trial": [{"key": second.key, "status": "running", "member_rows": [
                {"config_hash": h_pending, "status": "running", "step": 8, "test_acc": 0.25,
                 "eta_s": 3.5},
                {"config_hash": first.hashes[0], "status": "running", "step": 8,
                 "test_acc": 0.0, "eta_s": 1.0}]}]}  # its row landed since: completed
    st.write_json(study / st.STATUS, live)
    dead = status(study)  # no driver holds the lock: a killed driver's last word
    assert _counts(dead) == (4, 2, 0, 1, 1) and not dead["driver_alive"]
    assert dead["trials"] == []
    with st.locked(study):
        s = status(study)
    assert _counts(s) == (4, 2, 1, 0, 1) and s["driver_alive"]
    assert s["trials"] == live["per_trial"]
    rows = {m["config_hash"]: m for m in s["members"]}
    assert {k: rows[h_pending][k] for k in ("status", "step", "test_acc", "eta_s")} == \
        {"status": "running", "step": 8, "test_acc": 0.25, "eta_s": 3.5}
    assert rows[first.hashes[0]]["status"] == "completed"
    assert rows[first.hashes[0]]["step"] == first.members[0].total_steps


@pytest.mark.parametrize("torn", [b'{"per_trial": [{"key"', b"[1, 2]", b"\xff\xfe",
                                  b"[" * 100_000])
def test_a_torn_status_json_shows_no_trials_and_no_traceback(study, torn) -> None:
    _part_done(study)
    (study / st.STATUS).write_bytes(torn)
    with st.locked(study):
        s = status(study)
    assert _counts(s) == (4, 2, 0, 1, 1) and s["trials"] == []


def test_a_directory_that_is_no_study_is_bad_input_and_one_with_tables_is_damaged(
        tmp_path, finished_study) -> None:
    with pytest.raises(SpecError, match="not a wdsweep study") as e:
        status(tmp_path)
    assert e.value.key == "study"
    (tmp_path / "results.csv").write_bytes((finished_study / "results.csv").read_bytes())
    with pytest.raises(st.StudyDamaged, match="missing, but the study has tables"):
        status(tmp_path)
