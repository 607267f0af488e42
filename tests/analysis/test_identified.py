"""Which exponents a design identifies: a rank test relative to the cells' errors.

Failed before the fix: bn_eps (b, B, T constant; T = 512.82 in every cell, centred to
~1e-13 by floating point) reported a T exponent of -0.66 (or +1.34 on another run).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import fit_rules

BASE = (64.0, 5000.0, 512.8205128205128)  # bn_eps's T = 40,000 steps / (5000/64)


def _cells(points: list[tuple[float, float, float]], seed: int = 0) -> pd.DataFrame:
    """Cells on a sqrt law with small noise, se 0.1 in ln d*."""
    rng = np.random.default_rng(seed)
    b, B, T = (np.array(v, float) for v in zip(*points))
    d = 1e-4 * np.sqrt(b / B / T) / np.sqrt(BASE[0] / BASE[1] / BASE[2])
    d = d * np.exp(0.05 * rng.standard_normal(len(b)))
    return pd.DataFrame({"cell": [f"c{i}" for i in range(len(b))], "d_star": d,
                         "batch_size": b, "train_size": B, "T": T, "edge": "",
                         "n_lambdas": 12, "n_seeds": 3, "low_acc": False,
                         "se_ln_star": 0.1, "grid_step_ln": 0.35,
                         "lambda_min": 0.01, "lambda_max": 3.0})


def _rounded(x: float, k: int) -> float:
    """x as another code path computes it: equal up to the last bits."""
    return float(np.nextafter(x, np.inf)) if k % 2 else x


def _design(varying: str, n: int = 6) -> list[tuple[float, float, float]]:
    pts = []
    for k in range(n):
        f = 2.0 ** (k - n // 2)
        b = BASE[0] * f if "b" in varying else _rounded(BASE[0], k)
        B = BASE[1] * f ** (1 if k % 2 else -1) if "B" in varying else _rounded(BASE[1], k)
        T = BASE[2] * 2.0 ** (k % 3) if "T" in varying else _rounded(BASE[2], k)
        pts.append((b, B, T))
    return pts


@pytest.mark.parametrize("varying", ["", "b", "T", "bT", "bB", "bBT"])
def test_exactly_the_varying_axes_get_exponents(varying: str) -> None:
    fit = fit_rules(_cells(_design(varying)), seed_dof=12, s_seed=0.1)
    got = {a for a, e in fit["exponents"].items() if e["estimate"] is not None}
    assert got == set(varying), fit["exponents"]
    assert fit["identified"] == [a for a in "bBT" if a in varying]
    for a in set("bBT") - set(varying):
        assert "does not vary" in fit["exponents"][a]["note"]
    truth = {"b": 0.5, "B": -0.5, "T": -0.5}
    for a in varying:
        e = fit["exponents"][a]
        assert e["ci_low"] <= truth[a] <= e["ci_high"], (a, e)


def test_no_varying_axis_gives_no_exponent_and_no_verdict() -> None:
    """The bn_eps case: four cells differing only in something else."""
    cells = _cells([BASE] * 4).assign(T=[BASE[2], BASE[2] * (1 + 1e-15), BASE[2],
                                         BASE[2] * (1 - 1e-15)])
    fit = fit_rules(cells, seed_dof=4, s_seed=0.3)
    assert all(e["estimate"] is None for e in fit["exponents"].values())
    assert fit["identified"] == []
    assert fit["verdict"]["rule"] is None and fit["verdict"]["strength"] == "inconclusive"


def test_an_axis_that_moves_together_with_another_is_not_identified() -> None:
    pts = [(64.0 * f, 5000.0, 100.0 * f) for f in (1, 2, 4, 8)]
    fit = fit_rules(_cells(pts), seed_dof=8, s_seed=0.1)
    assert fit["exponents"]["b"]["estimate"] is None and fit["exponents"]["T"]["estimate"] is None
    assert "together with another" in fit["exponents"]["b"]["note"]


def test_an_axis_varying_far_less_than_the_errors_resolve_is_not_identified() -> None:
    """T spread by 0.01% with errors of 0.1 in ln d*: an exponent known to ±1000."""
    pts = [(64.0 * 2**k, 5000.0, 100.0 * (1 + 1e-4 * (k % 2))) for k in range(4)]
    fit = fit_rules(_cells(pts), seed_dof=8, s_seed=0.1)
    assert fit["exponents"]["T"]["estimate"] is None
    assert fit["exponents"]["b"]["estimate"] is not None


def test_the_committed_bn_eps_study_reports_no_exponent() -> None:
    """docs/data/bn_eps: b, B and T are the same in every cell (only bn_eps differs)."""
    from pathlib import Path

    from analysis import analyze

    data = Path(__file__).resolve().parents[2] / "docs" / "data" / "bn_eps"
    fit = analyze(str(data), sensitivity=False).fit
    assert fit["identified"] == []
    assert all(e["estimate"] is None for e in fit["exponents"].values())
    for edge in fit["edges"].values():
        assert all(e["estimate"] is None for e in edge["exponents"].values())
