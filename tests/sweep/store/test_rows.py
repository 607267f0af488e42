"""sweep.store.rows: a member's results.csv row, from its pack's history or its error; the
rows of a real finished study are what completed_rows makes of its history."""

from __future__ import annotations

import math

import pandas as pd

from sweep.plan.packs import make_plan
from sweep.plan.spec import parse
from sweep.plan.trial import MemberState
from sweep.store import study as st
from sweep.store.records import read_plan
from sweep.store.rows import INFO, completed_rows, member_row, member_steps
from tests.sweep._helpers import spec_text
from trainer.schema import LAST, RESULT_METRICS

TRIALS = make_plan(parse(spec_text())).trials


def _same(a, b) -> bool:
    return (pd.isna(a) and pd.isna(b)) or a == b


def test_a_member_row_is_its_resolved_config_with_its_ids_as_csv_cells() -> None:
    t = TRIALS[1]
    m = t.members[1]
    r = member_row(m, t.key, "exp-002", MemberState.ERRORED)
    assert (r["config_hash"], r["status"], r["trial_id"], r["experiment"]) == \
        (m.config_hash(), "errored", t.key, "exp-002")
    assert r["train_digits"] == ",".join(map(str, m.train_digits)) == "2,4"
    assert r["test_digits"] == "3"
    for k, v in m.resolved().items():
        if k not in ("train_digits", "test_digits"):
            assert _same(r[k], v), k
    assert not [k for k, v in r.items() if isinstance(v, list | tuple | dict)]  # CSV cells
    assert member_row(m, t.key, "exp-002", MemberState.COMPLETED)["status"] == "completed"


def test_completed_rows_are_the_finished_studys_rows_made_from_its_history(
        finished_study) -> None:
    state = st.read_state(finished_study)
    res = st.read_results(finished_study).set_index("config_hash")
    hist = pd.read_csv(finished_study / "history.csv", dtype={"config_hash": str})
    assert set(INFO) <= set(res.columns)  # what a trial's last report adds, kept per row
    plan = read_plan(finished_study, state["experiments"][0])
    for t in plan:
        h = hist[hist.config_hash.isin(t.hashes)]
        rows = completed_rows(list(t.members), t.key, "exp-000", h,
                              {"node": "n1", "warnings": "w"})
        assert [r["config_hash"] for r in rows] == list(t.hashes)  # one per member, in order
        for r in rows:
            want = res.loc[r["config_hash"]]
            assert (r["status"], r["trial_id"], r["experiment"], r["node"], r["warnings"]) \
                == ("completed", t.key, "exp-000", "n1", "w")
            for c in RESULT_METRICS:  # the values at the pack's last step, as recorded
                assert _same(r[LAST + c], want[LAST + c]), c
            for c in ("weight_decay", "seed", "batch_size", "train_size", "total_steps"):
                assert r[c] == want[c], c


def test_completed_rows_take_the_last_step_whatever_the_history_order() -> None:
    members = list(TRIALS[0].members)
    steps = members[0].total_steps
    h = pd.DataFrame([{"config_hash": m.config_hash(), "step": s,
                       **{c: (s / steps) * (k + 1) for c in RESULT_METRICS}}
                      for s in (steps, 8) for k, m in enumerate(members)])  # newest first
    rows = completed_rows(members, TRIALS[0].key, "exp-000", h, {})
    for k, r in enumerate(rows):
        assert all(math.isclose(r[LAST + c], k + 1) for c in RESULT_METRICS)


def test_member_steps_count_a_stopped_member_to_its_stop():
    res = pd.DataFrame({"total_steps": [100, 100], "stopped_step": [30, None]})
    assert member_steps(res) == 130
    assert member_steps(res.drop(columns="stopped_step")) == 200
    assert member_steps(res.iloc[:0]) == 0
