"""Per-cell best λ: plateau, smoothed optimum, bootstrap intervals, edge flags."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import best_lambda
from analysis._best import plateau
from tests.analysis.synth import acc_curve


def _runs(lams: np.ndarray, star: float, seeds: int = 4, noise: float = 0.01,
          zero_acc: float | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = [dict(cell="c", seed=s, lam=lam, final_test_acc=float(acc_curve(
        np.log(lam / star))[0]) + noise * rng.standard_normal())
        for s in range(seeds) for lam in lams]
    if zero_acc is not None:
        rows += [dict(cell="c", seed=s, lam=0.0, final_test_acc=zero_acc) for s in range(seeds)]
    df = pd.DataFrame(rows)
    return df.assign(weight_decay=df["lam"], decay_per_step=df["lam"] * 1e-3,
                     lambda_norm=df["lam"] * 1e-3 / 0.01)


def test_plateau_edges_interpolate_the_tolerance_crossing() -> None:
    x = np.log([0.1, 0.2, 0.4, 0.8, 1.6])
    y = np.array([0.2, 0.9, 1.0, 0.95, 0.5])
    lo, hi, lc, hc, i = plateau(x, y, tol=0.1)
    assert i == 2 and not lc and not hc
    assert lo == pytest.approx(x[1])  # 0.9 sits exactly at best - tol
    assert hi == pytest.approx(x[3] + (0.9 - 0.95) / (0.5 - 0.95) * (x[4] - x[3]))


def test_center_and_smooth_recover_a_known_optimum_with_intervals() -> None:
    star = 0.3
    c = best_lambda(_runs(np.geomspace(0.01, 10, 21), star), keys=[], n_boot=100).iloc[0]
    assert c["edge"] == ""
    assert c["lambda_center_ci_low"] <= star <= c["lambda_center_ci_high"]
    assert abs(math.log(c["lambda_center"] / star)) < 0.1
    assert abs(math.log(c["lambda_smooth"] / star)) < 0.35
    assert c["lambda_lo"] < star < c["lambda_hi"]
    assert c["d_star"] == pytest.approx(c["lambda_center"] * 1e-3)
    assert c["n_seeds"] == 4 and c["n_lambdas"] == 21


@pytest.mark.parametrize(("star", "edge", "word"), [(0.003, "low", "extend below"),
                                                    (30.0, "high", "extend above")])
def test_best_at_the_grid_edge_is_flagged_with_the_way_to_extend(star: float, edge: str,
                                                                  word: str) -> None:
    c = best_lambda(_runs(np.geomspace(0.01, 10, 13), star), keys=[], n_boot=20).iloc[0]
    assert c["edge"] == edge
    assert word in c["extend"]


def test_zero_decay_beating_every_lambda_is_flagged() -> None:
    runs = _runs(np.geomspace(1, 100, 7), star=1000.0, zero_acc=0.99)
    c = best_lambda(runs, keys=[], n_boot=20).iloc[0]
    assert c["edge"] == "zero" and "no decay is best" in c["extend"]
    assert c["baseline_acc"] == pytest.approx(0.99)


def test_one_seed_gives_estimates_without_intervals() -> None:
    c = best_lambda(_runs(np.geomspace(0.01, 10, 13), 0.3, seeds=1), keys=[]).iloc[0]
    assert np.isfinite(c["lambda_center"])
    assert np.isnan(c["lambda_center_ci_low"]) and np.isnan(c["sd_ln_center"])
