"""Per-run summary: final metrics over the final window (or last N), grokking delay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import summarize


def _hist() -> pd.DataFrame:
    step = np.arange(1, 101) * 10.0
    acc = np.arange(1, 101) / 100
    acc2 = acc.copy()
    acc2[-5:] = np.nan  # evaluations without a test accuracy are skipped
    return pd.concat([
        pd.DataFrame(dict(run="a", cell="c", seed=0, lam=0.1, step=step, test_acc=acc)),
        pd.DataFrame(dict(run="b", cell="c", seed=1, lam=0.1, step=step[::-1],
                          test_acc=acc2[::-1])),  # row order must not matter
    ], ignore_index=True)


def test_final_metrics_average_the_last_n_finite_evaluations() -> None:
    runs, _ = summarize(_hist(), keys=[], curves=True, last=50)
    r = runs.set_index("run")["final_test_acc"]
    assert r["a"] == pytest.approx(np.mean(np.arange(51, 101) / 100))
    assert r["b"] == pytest.approx(np.mean(np.arange(46, 96) / 100))
    runs10, _ = summarize(_hist(), keys=[], curves=True, last=10)
    assert runs10.set_index("run").loc["a", "final_test_acc"] == pytest.approx(0.955)


def test_final_window_is_a_fraction_of_each_runs_steps() -> None:
    """Default: evaluations with step >= 0.9 x the run's last step, whatever the cadence."""
    runs, _ = summarize(_hist(), keys=[], curves=True)
    r = runs.set_index("run")
    # Run a: steps 10..1000, window from step 900: evaluations 90..100 (11 of them).
    assert r.loc["a", "final_test_acc"] == pytest.approx(np.mean(np.arange(90, 101) / 100))
    assert r.loc["a", "n_window"] == 11
    # Run b: the last 5 evaluations have no test accuracy: 6 remain in its window.
    assert r.loc["b", "final_test_acc"] == pytest.approx(np.mean(np.arange(90, 96) / 100))
    assert r.loc["b", "n_window"] == 6
    # A run twice as long, evaluated as often: its own last 10%, not the same steps.
    long = _hist().query("run == 'a'").assign(run="c", step=lambda d: d["step"] * 2)
    rc, _ = summarize(long, keys=[], curves=True, window=0.5)
    assert rc["final_test_acc"].iloc[0] == pytest.approx(np.mean(np.arange(50, 101) / 100))


def test_delay_is_the_first_step_reaching_each_level() -> None:
    runs, _ = summarize(_hist(), keys=[], curves=True)
    a = runs.set_index("run").loc["a"]
    assert a["step_to_0.5"] == 500.0 and a["step_to_0.9"] == 900.0
    assert a["n_collapses"] == 0


def test_a_per_run_table_has_no_delays_or_collapses() -> None:
    h = pd.DataFrame(dict(run=["a", "b"], cell="c", seed=[0, 1], lam=0.1, step=np.nan,
                          test_acc=[0.9, 0.8]))
    runs, events = summarize(h, keys=[], curves=False)
    assert runs["final_test_acc"].tolist() == [0.9, 0.8]
    assert runs["step_to_0.9"].isna().all() and runs["n_collapses"].isna().all()
    assert events.empty
