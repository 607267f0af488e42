"""Runs stopped early (trainer.early_stop) in the analysis: outcomes, not cell keys, and
censored at their own stop window; the estimates stay where the full runs put them."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

import analysis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_early_stop import RULE, _table, replay  # noqa: E402

SEED = ROOT / "docs" / "data" / "seed_lambda"


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    res, hist = _table(SEED, "results"), _table(SEED, "history")
    er, eh = replay(res, hist, **RULE)
    out = {}
    for name, (r, h) in {"full": (res, hist), "early": (er, eh)}.items():
        d = tmp_path_factory.mktemp(name)
        r.to_csv(d / "results.csv", index=False)
        h.to_csv(d / "history.csv", index=False)
        out[name] = analysis.analyze(d, figures=False)
    return out


def test_stopped_runs_are_counted_and_never_split_a_cell(both):
    a, b = both["full"], both["early"]
    assert len(b.cells) == len(a.cells) == 1
    assert int(b.runs.stopped_step.notna().sum()) == 9  # λ 0.8, 1 and 3, every seed
    assert any("9 of 42 runs stopped early" in w for w in b.warnings)
    assert not any("fewer than 3 evaluations" in w for w in b.warnings)
    assert not any("stopped" in w for w in a.warnings)


def test_estimates_with_early_stopping_are_those_of_the_full_runs(both):
    a, b = both["full"].cells.iloc[0], both["early"].cells.iloc[0]
    for e in ("lambda_star", "lambda_onset", "lambda_collapse"):
        half = 0.5 * math.log(a[f"{e}_ci_high"] / a[f"{e}_ci_low"])
        assert abs(math.log(b[e] / a[e])) < 0.02 * half, e


def test_a_stopped_runs_window_is_the_evaluations_its_stop_rested_on(both):
    runs = both["early"].runs.set_index(["lam", "seed"])
    assert (runs.loc[runs.stopped_step.notna(), "n_window"] == RULE["evals"]).all()
    full = both["full"].runs.set_index(["lam", "seed"])
    gone = runs.stopped_step.notna()
    diff = (runs.loc[gone, "final_train_acc"] - full.loc[gone[gone].index, "final_train_acc"])
    assert diff.abs().max() < 0.01  # collapsed then, collapsed at the end
