"""Early stopping through the sweep: a pack whose members stop is a finished trial, each
member's row says where it stopped, and the analysis reports them as censored."""

from __future__ import annotations

import pandas as pd

import analysis
import sweep
from sweep.plan.spec import parse
from sweep.store import study as st
from sweep.store.repair import repair
from tests.sweep._helpers import TINY


def test_members_stopped_early_are_completed_rows_with_their_stop(ray_local, tmp_path):
    # λ = 100 collapses within a few evaluations: those members stop, the others train on
    s = parse(TINY.format(epochs=20, fixed="stop_train_acc = 0.02\nstop_evals = 3",
                          grid="weight_decay = [0.0, 100.0]\nseed = [0, 1]"))
    study = tmp_path / "study"
    sweep.run(s, study)
    res = pd.read_csv(study / "results.csv")
    assert len(res) == 4 and (res.status == "completed").all()
    stopped = res[res.weight_decay == 100.0]
    assert stopped.stopped_step.notna().all() and (stopped.stopped_step < 160).all()
    assert stopped.stop_reason.str.contains("3 evaluations").all()
    assert res[res.weight_decay == 0.0].stopped_step.isna().all()
    hist = pd.read_csv(study / "history.csv")
    last = hist.groupby("config_hash").step.max()
    for _, r in stopped.iterrows():
        assert last[r.config_hash] == r.stopped_step  # the history ends at the stop
    a = analysis.analyze(study, figures=False)
    assert any("2 of 4 runs stopped early" in w for w in a.warnings)
    assert a.runs.stopped_step.notna().sum() == 2
    sweep.resume(study)  # nothing left to train: the stopped members are finished
    assert len(pd.read_csv(study / "results.csv")) == 4
    (study / st.STATE).unlink()  # rebuilt from the trials' checkpoints, stops and all
    out = repair(study, say=lambda _: None)
    assert out["completed"] == 4 and out["unrecoverable"] == 0
    again = pd.read_csv(study / "results.csv").set_index("config_hash").sort_index()
    pd.testing.assert_series_equal(again.stopped_step,
                                   res.set_index("config_hash").sort_index().stopped_step)
