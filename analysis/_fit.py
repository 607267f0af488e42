"""Across cells: a per-step decay (d* or an edge) against b, B, T, and four rules.

Pure: a table of cells in, JSON-ready numbers out. Model (a mixed model with a cell
random effect): ln d_i = c + x ln b_i + y ln B_i + z ln T_i + u_i + e_i, u_i ~ N(0, τ²)
the cell effect, e_i ~ N(0, se_i²) the cell's own error (seed spread, plus the grid where
a transition is unresolved; see `_best`, `_curve`). τ² is estimated from the residuals,
and the fit is weighted by 1/(se_i² + τ²).

* Tests and intervals use the residual dof the design has (n − 1 − rank) and the scale
  RSS/dof at those dof (Knapp-Hartung): the cells' errors are never trusted beyond what
  the scatter between cells checks. With no residual dof nothing is tested.
* An axis whose exponent the cells' errors cannot pin down (it does not vary, or only
  together with another, or far less than the errors resolve) is not identified: its
  exponent is null and rules are compared along the identified directions only.
* Rules (sqrt, the two timescale rules, and the null rule `constant`) are nested in the
  free fit: each is an F test of the extra weighted RSS its fixed exponents cost. A rule is
  compatible at p ≥ 0.05 (after the Holm correction of `_decide`). AICc weights are
  reported as relative support only: they never say that a rule fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from trainer import units

AXIS_NAMES = ("b", "B", "T")
COLUMNS = ("batch_size", "train_size", "T")
RULES: dict[str, tuple[float, float, float]] = {
    "sqrt": (0.5, -0.5, -0.5),  # Loshchilov & Hutter: d = λ_norm sqrt(b/(B T))
    "epoch_timescale": (1.0, -1.0, 0.0),  # Wang & Aitchison: τ_epoch = b/(B d) fixed
    "fraction_of_run": (1.0, -1.0, -1.0),  # Bergsma et al.: τ_iter / S fixed
    "constant": (0.0, 0.0, 0.0),  # the null rule: d* does not move with b, B, T
}
# Each rule's constant: which quantity it holds fixed, as a function of the intercept c.
CONSTANTS = {
    "sqrt": ("lambda_norm = d* / sqrt(b/(B·T))", 1.0),
    "epoch_timescale": ("tau_epoch = b/(B·d*) in epochs", -1.0),
    "fraction_of_run": ("tau_iter/S = b/(B·T·d*)", -1.0),
    "constant": ("d* (per-step decay)", 1.0),
}
LEVEL = 0.95
ALPHA = 1 - LEVEL  # a rule with p below this is rejected


@dataclass(frozen=True)
class Regression:
    beta: np.ndarray  # exponents (b, B, T); meaningful where `ident`
    cov: np.ndarray
    ident: np.ndarray  # which exponents the design identifies
    rank: int
    rss: float  # weighted residual sum of squares of the free fit
    dof: int  # residual dof: n - 1 - rank
    s2: float  # residual scale used for intervals and tests
    dof_q: int  # dof of the quantiles: the residual dof (0: nothing to test against)
    source: str  # where the error model came from, in words
    w: np.ndarray  # the weights used: 1/(se_i² + tau2)
    tau2: float  # the cell random effect's variance (NaN when it cannot be estimated)
    dof_ci: int  # dof of the exponents' intervals: residual, else the seeds' (unchecked)


def usable(cells: pd.DataFrame, col: str = "d_star", interior: bool = True) -> pd.Series:
    """Cells whose estimate is finite (interior λ* unless `interior` is False), convertible
    to d, from ≥ 3 λ > 0, and from a cell that learned (best test accuracy ≥ 0.5)."""
    need = [col, *COLUMNS]
    if any(c not in cells for c in need):
        return pd.Series(False, index=cells.index)
    ok = np.isfinite(cells[need].astype(float)).all(axis=1) & (cells[col] > 0)
    low = cells["low_acc"].fillna(True).astype(bool) if "low_acc" in cells else False
    if interior:
        ok &= cells["edge"].fillna("") == ""
    return ok & (cells["n_lambdas"] >= 3) & ~low


def _q(dof: int) -> float:
    return float(stats.t.ppf(0.5 + LEVEL / 2, dof))


def _ci(est: float, se: float, q: float | None, fn: Any = float) -> dict[str, float | None]:
    ok = q is not None and math.isfinite(est) and math.isfinite(se)
    return {"estimate": fn(est), "ci_low": fn(est - q * se) if ok else None,  # type: ignore
            "ci_high": fn(est + q * se) if ok else None}  # type: ignore


# A direction of the design is identified when the cells' own errors pin the exponent
# along it to better than this standard error. Relative to the noise, not to float eps:
# an axis that is constant up to rounding (T = 512.82 in every cell, centred to 1e-13)
# has a singular value of ~1e-12 in units of the errors, i.e. an exponent known to
# ±1e12, and must not be reported. Rules differ by 0.5-1 per axis; an exponent with a
# standard error above 2 cannot tell any of them apart.
MAX_EXPONENT_SE = 2.0
MIN_SPREAD_LN = 1e-3  # an axis varying by less than 0.1% across cells does not vary


def _identified(Xw: np.ndarray, X: np.ndarray | None = None
                ) -> tuple[np.ndarray, int, np.ndarray]:
    """(which axes' exponents the weighted, centred design pins down, its rank, the basis
    of the identified directions). Weights are 1/se², so a singular value sv of Xw means
    an exponent known to ±1/sv along its direction."""
    k = Xw.shape[1]
    if Xw.shape[0] == 0:
        return np.zeros(k, bool), 0, np.zeros((k, 0))
    keep = np.ones(k, bool) if X is None else np.ptp(X, axis=0) >= MIN_SPREAD_LN
    Xk = np.where(keep[None, :], Xw, 0.0)
    _, sv, Vt = np.linalg.svd(Xk, full_matrices=False)
    r = int((sv > 1.0 / MAX_EXPONENT_SE).sum())
    V = Vt[:r].T
    resid = np.eye(k) - V @ V.T  # an axis is estimable iff it lies in the row space
    return np.linalg.norm(resid, axis=0) < 1e-6, r, V


def _why(j: int, X: np.ndarray) -> str:
    if np.ptp(X[:, j]) < MIN_SPREAD_LN:
        return f"not identified: {AXIS_NAMES[j]} does not vary across the usable cells"
    return (f"not identified: {AXIS_NAMES[j]} varies too little against the cells' errors, "
            "or only together with another axis")


def _wrss(r: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """(weighted RSS after the best constant, that constant)."""
    c = float(np.sum(w * r) / np.sum(w))
    return float(np.sum(w * (r - c) ** 2)), c


def _free(y: np.ndarray, X: np.ndarray, w: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, int, float, np.ndarray, np.ndarray]:
    """Weighted fit along the identified directions: (beta, ident, rank, rss, Z, V)."""
    sw = np.sqrt(w)
    Xc, yc = X - (w @ X) / w.sum(), y - (w @ y) / w.sum()
    Xw, yw = Xc * sw[:, None], yc * sw
    ident, rank, V = _identified(Xw, X)
    # Fit along the identified directions only: a near-null direction left in the
    # pseudo-inverse would take a huge, meaningless exponent (the bn_eps T of 1e-13).
    Z = Xw @ V
    gamma = np.linalg.lstsq(Z, yw, rcond=None)[0] if rank else np.zeros(0)
    beta = V @ gamma
    return beta, ident, rank, float(np.sum((yw - Xw @ beta) ** 2)), Z, V


def _tau2(rss: float, dof: int, w: np.ndarray, Z: np.ndarray) -> float:
    """Method-of-moments variance of a cell random effect (DerSimonian-Laird for a
    regression): the excess of the weighted RSS over its dof, in units of the weights."""
    sw = np.sqrt(w)
    Zt = np.column_stack([sw, Z])  # the intercept and the identified directions, weighted
    H = Zt @ np.linalg.pinv(Zt.T @ Zt) @ Zt.T  # hat matrix of the weighted fit
    trace_p = float(np.sum(w) - np.sum(np.diag(H) * w))
    return max(0.0, (rss - dof) / trace_p) if trace_p > 0 else 0.0


def regress(y: np.ndarray, X: np.ndarray, se2: np.ndarray, seed_dof: int = 0) -> Regression:
    """The free fit under a mixed model: ln d_i = c + X_i·β + u_i + e_i, with the cell
    effect u_i ~ N(0, τ²) estimated from the data and e_i ~ N(0, se_i²) the cell's own
    error (seed spread, and the grid where a transition is unresolved).

    Tests use the residual dof the design really has (n − 1 − rank), never the seeds':
    whether the cells' errors explain the scatter between cells is what the residuals
    check, and with few of them the check is weak (the verdict says so). The scale is
    RSS/dof at those dof (Knapp-Hartung): τ² in the weights absorbs scatter beyond the
    cells' errors; a floor at the cells' errors (tried) made the 95% intervals cover 100%
    of synthetic truths and cost most of the power (docs/analysis.md). Cells without an
    error of their own (one seed, nothing unresolved) weigh alike and τ² carries all
    their scatter. With no residual dof the exponents' intervals rest on the cells'
    errors alone (the seeds' dof, unchecked: `source` says so) and no rule is tested."""
    n = len(y)
    own = np.isfinite(se2) & (se2 > 0)
    se2 = np.where(own, se2, 0.0)
    w0 = 1.0 / se2 if own.all() else np.ones(n)
    beta, ident, rank, rss, Z, V = _free(y, X, w0)
    dof = n - 1 - rank
    tau2 = math.nan
    if dof > 0:
        tau2 = _tau2(rss, dof, w0, Z) if own.all() else rss / dof
        w = 1.0 / (se2 + tau2) if (tau2 > 0 or own.all()) else np.ones(n)
        beta, ident, rank, rss, Z, V = _free(y, X, w)
        dof = n - 1 - rank
    else:
        w = w0
    if dof > 0:
        s2, dof_q = rss / dof, dof
        src = (f"the residuals ({dof} dof): cells' own errors plus a cell effect "
               f"τ = {math.sqrt(tau2):.3g} in ln d")
    else:
        s2, dof_q, src = 1.0, 0, "nothing: no residual dof to estimate the error model"
    k = X.shape[1]
    cov = s2 * (V @ np.linalg.inv(Z.T @ Z) @ V.T) if rank else np.zeros((k, k))
    dof_ci = dof_q or (seed_dof if own.all() else 0)
    if not dof_q and dof_ci:
        src = (f"the cells' own errors alone ({seed_dof} seed dof): no residual dof to "
               "check them, so no rule is tested")
    return Regression(beta, cov, ident, rank, rss, dof, s2, dof_q, src, w, tau2, dof_ci)


def _aicc(rss: float, n: int, k: int = 2) -> float:
    """AICc of a rule (constant + profiled scale, floored at the cells' own errors)."""
    s2 = max(rss / n, 1.0)
    ll = -0.5 * (rss / s2 + n * math.log(s2))
    return -2 * ll + 2 * k + (2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else math.inf)


def score_rule(name: str, y: np.ndarray, X: np.ndarray, w: np.ndarray, reg: Regression,
               shape: float = 0.0, shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
               ) -> dict[str, Any]:
    """A rule's F test against the free fit, its constant, AICc and held-out error.

    `shape` (ln units) widens the constant's interval each way: where on a grid of step h
    an asymmetric peak's optimum sits is uncertain by up to a step, the same in every
    cell, so it moves the constant (λ_norm) and never the exponents."""
    e = np.array(RULES[name]) + np.array(shift)
    r = y - X @ e
    n = len(y)
    rss, c = _wrss(r, w)
    p = None
    if reg.rank and reg.dof_q > 0:
        F = max(rss - reg.rss, 0.0) / (reg.rank * reg.s2)
        p = float(stats.f.sf(F, reg.rank, reg.dof_q))
    elif reg.rank == 0 or math.isclose(rss, reg.rss, rel_tol=1e-12, abs_tol=1e-12):
        p = 1.0  # nothing identified: the rule costs nothing against the free fit
    # Leave one cell out: the held-out cell's error with the constant fitted on the rest.
    loco = [r[i] - np.sum(np.delete(w * r, i)) / np.sum(np.delete(w, i)) for i in range(n)
            ] if n > 1 else []
    s2r = max(rss / (n - 1), 1.0) if n > 1 else 1.0
    dq = n - 1  # the rule leaves only its constant free: its residual dof, always
    label, sign = CONSTANTS[name] if not any(shift) else (
        "D* / (b^x B^y T^z) at the rule's exponents", 1.0)
    const = _ci(c * sign, math.sqrt(s2r / np.sum(w)), _q(dq) if dq > 0 else None)
    const = {k: None if v is None else math.exp(v + shape * (k == "ci_high") -
                                               shape * (k == "ci_low"))
             for k, v in const.items()}
    return {"exponents": dict(zip(AXIS_NAMES, e.tolist())), "weighted_rss": rss,
            "aicc": _aicc(rss, n), "p_value": p, "compatible": p is None or p >= ALPHA,
            "loco_rmse_ln": float(np.sqrt(np.mean(np.square(loco)))) if n > 1 else None,
            "constant": {"name": label, **const}}


def _weights(rules: dict[str, dict[str, Any]]) -> None:
    a = np.array([r["aicc"] for r in rules.values()])
    wt = (np.exp(-(a - a.min()) / 2) if np.isfinite(a).all() else np.ones(len(a)))
    for r, v in zip(rules.values(), wt / wt.sum()):
        r["weight"] = float(v)


def exponents(reg: Regression, X: np.ndarray) -> dict[str, dict[str, Any]]:
    q = _q(reg.dof_ci) if reg.dof_ci > 0 else None
    null = {"estimate": None, "ci_low": None, "ci_high": None}
    return {a: (_ci(float(reg.beta[j]), math.sqrt(max(reg.cov[j, j], 0.0)), q) if reg.ident[j]
                else {**null, "note": _why(j, X)}) for j, a in enumerate(AXIS_NAMES)}


@dataclass(frozen=True)
class Design:
    """What a fit saw: ln d, ln (b, B, T), weights, the free fit, the cells used."""
    y: np.ndarray
    X: np.ndarray
    w: np.ndarray
    reg: Regression
    cells: pd.DataFrame


def fit(cells: pd.DataFrame, col: str, se_col: str, interior: bool = True, seed_dof: int = 0,
        shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
        ) -> tuple[dict[str, Any], Design | None]:
    """The free fit and every rule for one per-step quantity (d*, d_onset, d_collapse).
    `shift`: added to every rule's exponents, for a quantity that is the per-step decay
    times a power of (b, B, T) (the integrated decay D = d·S, S = T·B/b: (-1, 1, 1))."""
    use = cells[usable(cells, col, interior)]
    n = len(use)
    out: dict[str, Any] = {"n_cells": n, "n_cells_total": len(cells), "notes": []}
    if n < 2:
        out["notes"].append(f"{n} usable cell(s) for {col}: no fit (a cell needs an interior "
                            "estimate, ≥ 3 λ > 0 and a best test accuracy ≥ 0.5)")
        out.update(exponents={a: {"estimate": None, "ci_low": None, "ci_high": None,
                                  "note": "too few usable cells"} for a in AXIS_NAMES},
                   rules={}, identified=[], dof=None, residual_scale=None)
        return out, None
    y = np.log(use[col].to_numpy(float))
    X = np.log(use[list(COLUMNS)].to_numpy(float))
    se = use[se_col].to_numpy(float)
    reg = regress(y, X, se**2, seed_dof)
    w = reg.w
    out["exponents"] = exponents(reg, X)
    out.update(dof=reg.dof, residual_scale=reg.s2, scale_from=reg.source, test_dof=reg.dof_q,
               cell_effect_sd_ln=math.sqrt(reg.tau2) if math.isfinite(reg.tau2) else None,
               identified=[a for a, i in zip(AXIS_NAMES, reg.ident) if i])
    h = float(np.nanmedian(use["grid_step_ln"])) if "grid_step_ln" in use else 0.0
    out["constant_shape_allowance_ln"] = h if math.isfinite(h) else 0.0
    out["rules"] = {k: score_rule(k, y, X, w, reg, out["constant_shape_allowance_ln"],
                                  shift) for k in RULES}
    _weights(out["rules"])
    if reg.rank and reg.dof_q <= 0:
        out["notes"].append(f"{col}: no residual degrees of freedom ({n} cells, {reg.rank} "
                            "exponents): nothing to test the rules against (add cells)")
    return out, Design(y, X, w, reg, use)


def predict(rule: str, constant: float, b: np.ndarray, B: np.ndarray, T: np.ndarray
            ) -> np.ndarray:
    """d* the rule predicts for cells (b, B, T), given its fitted constant."""
    x, y, z = RULES[rule]
    sign = CONSTANTS[rule][1]
    return constant**sign * np.power(b, x) * np.power(B, y) * np.power(T, z)


def to_weight_decay(lambda_norm: float, lr: float, batch_size: float, train_size: float,
                    epochs: float) -> float:
    """λ_norm in PyTorch's AdamW weight_decay for this lr, b, B, T (via trainer.units)."""
    return float(units.to_weight_decay(lambda_norm, lr, batch_size, train_size, epochs))
