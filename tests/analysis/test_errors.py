"""Errors from the data: the cell random effect, the design's residual dof, Holm over
targets × rules, and the within-run onset target (synthetic, known truth)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import analyze, fit_rules
from analysis._decide import holm
from tests.analysis.synth import make_history, make_study

SQRT, FLAT = (0.5, -0.5, -0.5), (0.0, 0.0, 0.0)


def test_holm_matches_a_hand_computed_example() -> None:
    ps = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005}
    # sorted: d 0.005*4 = 0.02, a 0.01*3 = 0.03, c 0.03*2 = 0.06, b 0.04*1 -> max(0.06, 0.04)
    assert holm(ps) == pytest.approx({"d": 0.02, "a": 0.03, "c": 0.06, "b": 0.06})
    assert holm({"x": 0.6, "y": 0.9}) == {"x": 1.0, "y": 1.0}


@pytest.fixture(scope="module")
def sqrt_fit() -> dict:
    return analyze(make_study(SQRT, seeds=3, seed=21), sensitivity=False).fit


def test_fit_json_states_the_family_and_the_target(sqrt_fit: dict) -> None:
    mt = sqrt_fit["multiple_testing"]
    assert mt["method"] == "Holm" and mt["n_tests"] == 12  # 3 targets (no history) × 4
    assert sqrt_fit["verdict"]["target"] == "lambda_star"
    for t in ("lambda_star", "onset", "collapse"):
        for r in sqrt_fit["targets"][t]["rules"].values():
            assert r["p_holm"] >= r["p_value"]
    # Compatibility is decided on the adjusted p.
    for r in sqrt_fit["rules"].values():
        assert r["compatible"] == (r["p_holm"] >= 0.05)
    assert sqrt_fit["verdict"]["rule"] == "sqrt"


def test_the_design_residual_dof_give_the_tests_never_the_seeds(sqrt_fit: dict) -> None:
    assert sqrt_fit["dof"] == 7 - 1 - 3 and sqrt_fit["test_dof"] == sqrt_fit["dof"]
    assert "residuals" in sqrt_fit["scale_from"]


def _cells(ln_d: np.ndarray, se: float, b: np.ndarray, T: np.ndarray) -> pd.DataFrame:
    n = len(ln_d)
    return pd.DataFrame({"cell": [f"c{i}" for i in range(n)], "d_star": np.exp(ln_d),
                         "batch_size": b, "train_size": 5000.0, "T": T, "edge": "",
                         "n_lambdas": 15, "n_seeds": 3, "low_acc": False, "se_ln_star": se,
                         "grid_step_ln": 0.35, "lambda_min": 0.01, "lambda_max": 3.0})


def test_few_residual_dof_cap_the_verdict_and_say_so() -> None:
    """Four cells on the sqrt law along b and T, tiny errors: the others are rejected hard,
    but one residual dof cannot check the error model -- at most weak, and why."""
    b = np.array([64.0, 128.0, 256.0, 64.0])
    T = np.array([385.0, 385.0, 385.0, 96.0])
    ln_d = np.log(1e-4 * np.sqrt(b / 64 / (T / 385))) + np.array([0.01, -0.01, 0.0, 0.005])
    fit = fit_rules(_cells(ln_d, 0.02, b, T))
    v = fit["verdict"]
    assert fit["dof"] == 1 and v["rule"] == "sqrt" and v["strength"] == "weak"
    assert "residual dof are too few to check the error model" in v["reason"]


def test_scatter_beyond_the_cells_errors_becomes_a_cell_effect() -> None:
    """Cells scattered by 0.3 in ln d* about a flat truth while each claims se 0.02: the
    fit estimates the cell effect instead of rejecting `constant` on made-up precision."""
    rng = np.random.default_rng(2)
    b = np.array([16.0, 32.0, 64.0, 128.0, 256.0, 64.0, 64.0, 64.0])
    T = np.array([100.0] * 5 + [25.0, 50.0, 200.0])
    fit = fit_rules(_cells(np.log(1e-4) + 0.3 * rng.standard_normal(8), 0.02, b, T))
    assert fit["cell_effect_sd_ln"] == pytest.approx(0.3, rel=0.6)
    assert fit["rules"]["constant"]["compatible"]
    assert fit["verdict"]["rule"] in (None, "constant")


@pytest.mark.parametrize("seed", range(3))
def test_one_noisy_cell_does_not_manufacture_a_rule(seed: int) -> None:
    """Truth: no effect; one cell's seeds scatter 5x more than the others'. The verdict
    may name `constant` or say it cannot tell, never a moving rule."""
    quiet = make_study(FLAT, seeds=3, noise=0.02, seed_sd=0.1, seed=40 + seed)
    noisy = make_study(FLAT, cells=[(256, 4000, 50.0)], seeds=3, noise=0.05, seed_sd=0.5,
                       seed=80 + seed)
    df = pd.concat([quiet[quiet["batch_size"] != 256], noisy], ignore_index=True)
    v = analyze(df, sensitivity=False).fit["verdict"]
    assert v["rule"] in (None, "constant"), v


def test_within_run_onset_recovers_a_fixed_total_decay() -> None:
    """The synthetic history reaches half its final accuracy after 0.003/d steps: λ·step
    = 0.003/lr = 3 in every cell and every λ (no grid in it)."""
    res = make_study(SQRT, seeds=3, seed=9)
    res = res.assign(config_hash=[f"h{i:05d}" for i in range(len(res))])
    hist = make_history(res, n_evals=200, every=10)
    df = hist.merge(res[["config_hash", "epochs", "status"]], on="config_hash")
    a = analyze(df, sensitivity=False)
    c = a.cells.dropna(subset=["total_decay_within"])
    assert len(c) >= 5
    assert ((c["total_decay_within_ci_low"] <= 3.0 * 1.05)
            & (3.0 / 1.05 <= c["total_decay_within_ci_high"])).mean() >= 0.8
    assert np.allclose(c["total_decay_within"], 3.0, rtol=0.15)
    w = a.fit["within_run_onset"]
    assert w["n_cells"] == len(c) and "fraction_of_run" in w["verdict"]["compatible"]
    assert a.fit["multiple_testing"]["n_tests"] == 16
    assert math.isfinite(a.fit["targets"]["within_run_onset"]["rules"]["sqrt"]["p_value"])
