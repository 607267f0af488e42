"""Per-cell best λ: per-seed optima, pooled intervals with the grid term, plateau, flags."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import best_lambda
from analysis._best import plateau


def acc_curve(u: np.ndarray) -> np.ndarray:
    """Test accuracy at u = ln(λ/λ*): a flat top about a factor 3 wide, peak at u = 0."""
    return 0.05 + 0.9 * np.exp(-np.abs(u / 1.5) ** 4)


def _runs(lams: np.ndarray, star: float, seeds: int = 4, noise: float = 0.01,
          zero_acc: float | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = [dict(cell="c", seed=s, lam=lam, final_test_acc=float(acc_curve(
        np.log(lam / star))) + noise * rng.standard_normal())
        for s in range(seeds) for lam in lams]
    if zero_acc is not None:
        rows += [dict(cell="c", seed=s, lam=0.0, final_test_acc=zero_acc) for s in range(seeds)]
    df = pd.DataFrame(rows)
    return df.assign(weight_decay=df["lam"], decay_per_step=df["lam"] * 1e-3,
                     lambda_norm=df["lam"] * 1e-3 / 0.01)


def test_plateau_edges_interpolate_the_relative_tolerance_crossing() -> None:
    x = np.log([0.1, 0.2, 0.4, 0.8, 1.6])
    y = np.array([0.2, 0.9, 1.0, 0.95, 0.5])
    lo, hi, lc, hc, i = plateau(x, y, tol=0.1)
    assert i == 2 and not lc and not hc
    assert lo == pytest.approx(x[1])  # 0.9 sits exactly at best·(1 - tol)
    assert hi == pytest.approx(x[3] + (0.9 - 0.95) / (0.5 - 0.95) * (x[4] - x[3]))
    # Relative: the same curve at a tenth of the height has the same plateau.
    assert plateau(x, y / 10, tol=0.1)[:2] == pytest.approx((lo, hi))


def test_per_seed_optima_recover_a_known_optimum_with_intervals() -> None:
    star = 0.3
    cells, seeds, pool = best_lambda(_runs(np.geomspace(0.01, 10, 21), star), keys=[])
    c = cells.iloc[0]
    assert c["edge"] == ""
    assert c["lambda_star_ci_low"] <= star <= c["lambda_star_ci_high"]
    assert abs(math.log(c["lambda_star"] / star)) < 0.15
    assert c["lambda_lo"] < star < c["lambda_hi"]
    assert c["d_star"] == pytest.approx(c["lambda_star"] * 1e-3)
    assert c["n_seeds"] == 4 and c["n_lambdas"] == 21
    assert len(seeds) == 4 and pool["dof"] == 3
    # Both slopes have grid points on them (resolved): no assumed grid term (which was
    # h/sqrt(12) = 0.10 here whatever the data); the error is the seeds' scatter, floored
    # at the curve fits' own variance (this curve is not the model's shape: it misfits).
    assert (seeds["star_grid_var"] == 0).all() and (seeds["estimator"] == "curve").all()
    var = max(pool["sd_ln_lambda_star"] ** 2, seeds["star_fit_var"].mean()) / 4
    assert c["se_ln_star"] == pytest.approx(math.sqrt(var))
    assert c["se_ln_star"] < 0.05


def test_seed_spread_is_pooled_over_cells() -> None:
    a = _runs(np.geomspace(0.01, 10, 21), 0.3, seeds=2).assign(cell="a")
    b = _runs(np.geomspace(0.01, 10, 21), 1.0, seeds=2, noise=0.05).assign(cell="b")
    cells, seeds, pool = best_lambda(pd.concat([a, b], ignore_index=True), keys=[])
    assert pool["dof"] == 2  # one dof from each 2-seed cell
    # The spread is pooled, but each cell's error is floored at its own curve fits'
    # variance: the cell with 5x the accuracy noise is not credited with the quiet one's.
    se = cells.set_index("cell")["se_ln_star"]
    assert se["b"] > se["a"] >= pool["sd_ln_lambda_star"] / math.sqrt(2) - 1e-12


@pytest.mark.parametrize(("star", "edge", "word"), [(0.003, "low", "extend below"),
                                                    (30.0, "high", "extend above")])
def test_best_at_the_grid_edge_is_flagged_with_the_way_to_extend(star: float, edge: str,
                                                                  word: str) -> None:
    c = best_lambda(_runs(np.geomspace(0.01, 10, 13), star), keys=[])[0].iloc[0]
    assert c["edge"] == edge
    assert word in c["extend"]


def test_zero_decay_beating_every_lambda_is_flagged() -> None:
    runs = _runs(np.geomspace(1, 100, 7), star=1000.0, zero_acc=0.99)
    c = best_lambda(runs, keys=[])[0].iloc[0]
    assert c["edge"] == "zero" and "no decay is best" in c["extend"]
    assert c["baseline_acc"] == pytest.approx(0.99)


def test_one_seed_has_the_curve_fits_own_error() -> None:
    """One seed: no spread to measure. The curve's interval is then its fit's own (delta
    method from the least-squares covariance); the smoothed estimator keeps only its
    assumed grid term h/sqrt(12)."""
    cells, seeds, pool = best_lambda(_runs(np.geomspace(0.01, 10, 13), 0.3, seeds=1),
                                     keys=[])
    c = cells.iloc[0]
    assert np.isfinite(c["lambda_star"]) and pool["dof"] == 0
    assert c["se_ln_star"] == pytest.approx(math.sqrt(seeds["star_fit_var"].iloc[0] +
                                                      seeds["star_grid_var"].iloc[0]))
    assert 0 < c["se_ln_star"] < 0.2
    assert c["lambda_star_ci_low"] <= 0.3 <= c["lambda_star_ci_high"]
    old, _, _ = best_lambda(_runs(np.geomspace(0.01, 10, 13), 0.3, seeds=1), keys=[],
                            estimator="smoothed")
    h = math.log(1000) / 12
    assert old.iloc[0]["se_ln_star"] == pytest.approx(h / math.sqrt(12))


def test_a_cell_that_never_learns_is_flagged_low() -> None:
    runs = _runs(np.geomspace(0.01, 10, 13), 0.3)
    runs["final_test_acc"] *= 0.3
    assert bool(best_lambda(runs, keys=[])[0].iloc[0]["low_acc"])
