"""Across cells: the best per-step decay d* against b, B, T, and the three rules.

Pure: a table of cells in, JSON-ready numbers out. Model: ln d* = c + x ln b +
y ln B + z ln T + noise, fitted by weighted least squares with weights
1/sd², sd = each cell's bootstrap spread of ln d* (floored at a quarter of its
grid step, so one seed or a lucky bootstrap cannot claim infinite weight).
The residual scale s² = max(RSS/dof, 1): the larger of the per-cell noise and
the scatter the data show. An axis that does not vary (or varies only together
with another) has an exponent that is not identified: reported as null, and
the rules are compared only along identified directions -- automatically, as
each rule keeps a free intercept (its constant) which absorbs the rest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

AXIS_NAMES = ("b", "B", "T")
COLUMNS = ("batch_size", "train_size", "T")
RULES: dict[str, tuple[float, float, float]] = {
    "sqrt": (0.5, -0.5, -0.5),  # Loshchilov & Hutter: d = λ_norm sqrt(b/(B T))
    "epoch_timescale": (1.0, -1.0, 0.0),  # Wang & Aitchison: τ_epoch = b/(B d) fixed
    "fraction_of_run": (1.0, -1.0, -1.0),  # Bergsma et al.: τ_iter / S fixed
}
# Each rule's constant: which quantity it holds fixed, as a function of the intercept c.
CONSTANTS = {
    "sqrt": ("lambda_norm = d* / sqrt(b/(B·T))", 1.0),
    "epoch_timescale": ("tau_epoch = b/(B·d*) in epochs", -1.0),
    "fraction_of_run": ("tau_iter/S = b/(B·T·d*)", -1.0),
}
LEVEL = 0.95


def strength(ratio: float) -> str:
    """Evidence ratio between the best rule and the best distinguishable other."""
    return ("strong" if ratio >= 100 else "moderate" if ratio >= 10 else
            "weak" if ratio >= 3 else "indistinguishable")


def _q(dof: int) -> float:
    return float(stats.t.ppf(0.5 + LEVEL / 2, dof) if dof > 0 else stats.norm.ppf(0.5 + LEVEL / 2))


def _ci(est: float, se: float, q: float, fn: Any = float) -> dict[str, float | None]:
    ok = math.isfinite(est) and math.isfinite(se)
    return {"estimate": fn(est), "ci_low": fn(est - q * se) if ok else None,
            "ci_high": fn(est + q * se) if ok else None}


def usable(cells: pd.DataFrame) -> pd.Series:
    """Cells whose λ* is interior and convertible to d*: the ones the fit may use."""
    need = ["d_star", *COLUMNS]
    if any(c not in cells for c in need):
        return pd.Series(False, index=cells.index)
    ok = np.isfinite(cells[need].astype(float)).all(axis=1) & (cells["d_star"] > 0)
    return ok & (cells["edge"].fillna("") == "") & (cells["n_lambdas"] >= 3)


def _identified(Xw: np.ndarray) -> tuple[np.ndarray, int]:
    """Which axes' exponents the (weighted, centred) design pins down, and its rank."""
    if Xw.shape[0] == 0:
        return np.zeros(Xw.shape[1], bool), 0
    _, sv, Vt = np.linalg.svd(Xw, full_matrices=False)
    r = int((sv > 1e-8 * max(sv.max(), 1e-300)).sum())
    V = Vt[:r].T
    resid = np.eye(Xw.shape[1]) - V @ V.T  # an axis is estimable iff it lies in the row space
    return np.linalg.norm(resid, axis=0) < 1e-6, r


def _why(j: int, X: np.ndarray) -> str:
    if np.ptp(X[:, j]) < 1e-12:
        return f"not identified: {AXIS_NAMES[j]} does not vary across the usable cells"
    return f"not identified: {AXIS_NAMES[j]} varies only together with another axis"


def _rule(name: str, y: np.ndarray, X: np.ndarray, w: np.ndarray, s2: float,
          rss_free: float, rank: int) -> dict[str, Any]:
    e = np.array(RULES[name])
    r = y - X @ e
    c = float(np.sum(w * r) / np.sum(w))
    rss = float(np.sum(w * (r - c) ** 2))
    n = len(y)
    # Leave one cell out: the held-out cell's error with the constant fitted on the rest.
    loco = [r[i] - np.sum(np.delete(w * r, i)) / np.sum(np.delete(w, i)) for i in range(n)
            ] if n > 1 else []
    s2r = max(rss / (n - 1), 1.0) if n > 1 else 1.0
    label, sign = CONSTANTS[name]
    const = _ci(c * sign, math.sqrt(s2r / np.sum(w)), _q(n - 1), math.exp)
    p = float(stats.chi2.sf(max(rss - rss_free, 0.0) / s2, rank)) if rank else None
    return {"exponents": dict(zip(AXIS_NAMES, e.tolist())), "log_likelihood": -0.5 * rss / s2,
            "weighted_rss": rss, "loco_rmse_ln": float(np.sqrt(np.mean(np.square(loco))))
            if n > 1 else None, "p_value": p, "constant": {"name": label, **const}}


def _preference(rules: dict[str, dict[str, Any]], Xw: np.ndarray) -> dict[str, Any]:
    names = sorted(rules, key=lambda k: -rules[k]["log_likelihood"])
    best = names[0]
    ll = np.array([rules[k]["log_likelihood"] for k in RULES])
    wts = np.exp(ll - ll.max()) / np.exp(ll - ll.max()).sum()
    for k, wt in zip(RULES, wts):
        rules[k]["weight"] = float(wt)

    def same(a: str, b: str) -> bool:  # predictions equal along every identified direction
        diff = Xw @ (np.array(RULES[a]) - np.array(RULES[b]))
        return bool(np.allclose(diff, 0, atol=1e-9))

    tied = [k for k in names[1:] if same(best, k)]
    others = [k for k in names[1:] if k not in tied]
    if not others:
        return {"preferred_rule": None, "strength": "indistinguishable", "tied_with": tied,
                "runner_up": None, "evidence_ratio": None}
    ratio = math.exp(min(rules[best]["log_likelihood"] - rules[others[0]]["log_likelihood"], 700))
    return {"preferred_rule": best, "strength": strength(ratio), "tied_with": tied,
            "runner_up": others[0], "evidence_ratio": ratio}


def fit_rules(cells: pd.DataFrame) -> dict[str, Any]:
    """Exponents with intervals, each rule's score, the preferred rule, λ_norm."""
    use = cells[usable(cells)]
    n = len(use)
    out: dict[str, Any] = {"n_cells": n, "n_cells_total": len(cells), "notes": []}
    null = {"estimate": None, "ci_low": None, "ci_high": None}
    if n == 0:
        out["notes"].append("no cell has an interior best λ convertible to d* = lr·λ*: "
                            "no fit (see lambda_star.csv's edge and extend columns)")
        out.update(exponents={a: {**null, "note": "no usable cells"} for a in AXIS_NAMES},
                   rules={}, preferred_rule=None, preference=None,
                   lambda_norm={**null, "units": "lambda_norm"})
        return out
    y = np.log(use["d_star"].to_numpy(float))
    X = np.log(use[list(COLUMNS)].to_numpy(float))
    floor = 0.25 * use["grid_step_ln"].to_numpy(float)
    sd = np.fmax(use["sd_ln_center"].to_numpy(float), floor)
    sd = np.where(np.isfinite(sd), sd, np.nanmax(np.r_[floor, 0.1]))
    w = 1.0 / sd**2
    sw = np.sqrt(w)
    Xc = X - (w @ X) / w.sum()
    yc = y - (w @ y) / w.sum()
    Xw, yw = Xc * sw[:, None], yc * sw
    ident, rank = _identified(Xw)
    beta = np.linalg.pinv(Xw) @ yw
    rss = float(np.sum((yw - Xw @ beta) ** 2))
    dof = n - 1 - rank
    s2 = max(rss / dof, 1.0) if dof > 0 else 1.0
    cov = s2 * np.linalg.pinv(Xw.T @ Xw)
    q = _q(dof)
    out["exponents"] = {
        a: (_ci(float(beta[j]), math.sqrt(max(cov[j, j], 0.0)), q) if ident[j]
            else {**null, "note": _why(j, X)}) for j, a in enumerate(AXIS_NAMES)}
    out.update(dof=dof, residual_scale=s2, identified=[a for a, i in zip(AXIS_NAMES, ident) if i])
    if dof <= 0 and rank:
        out["notes"].append("no residual degrees of freedom: intervals use the per-cell "
                            "bootstrap spread only")
    out["rules"] = {k: _rule(k, y, X, w, s2, rss, rank) for k in RULES}
    if rank == 0:
        out["notes"].append("b, B and T do not vary across usable cells: rules cannot be told "
                            "apart (only λ_norm is estimated)")
        for k in RULES:
            out["rules"][k]["weight"] = 1 / len(RULES)
        out.update(preferred_rule=None, preference=None)
    else:
        pref = _preference(out["rules"], Xw)
        out.update(preferred_rule=pref["preferred_rule"], preference=pref)
        best = pref["preferred_rule"] or max(out["rules"], key=lambda k:
                                             out["rules"][k]["log_likelihood"])
        p = out["rules"][best]["p_value"]
        if p is not None and p < 0.01:
            out["notes"].append(f"even the best rule ({best}) misfits the data (p = {p:.2g}): "
                                "see the free exponents")
    lam = out["rules"]["sqrt"]["constant"]
    out["lambda_norm"] = {k: lam[k] for k in ("estimate", "ci_low", "ci_high")}
    out["lambda_norm"]["units"] = "paper's normalized decay: d = lambda_norm·sqrt(b/(B·T))"
    out["lambda_norm"]["weight_decay"] = _in_pytorch_units(out["lambda_norm"], use)
    return out


def _in_pytorch_units(lam: dict[str, Any], use: pd.DataFrame) -> dict[str, Any] | None:
    """λ_norm as PyTorch weight_decay at the study's most common lr, b, B, T."""
    cols = ("lr", *COLUMNS)
    if any(c not in use or not use[c].notna().any() for c in cols):
        return None
    at = {c: float(use[c].mode().iloc[0]) for c in cols}
    conv = {k: None if lam[k] is None else to_weight_decay(lam[k], *at.values())
            for k in ("estimate", "ci_low", "ci_high")}
    return {**conv, "units": "PyTorch AdamW weight_decay", "lr": at["lr"],
            "batch_size": at["batch_size"], "train_size": at["train_size"], "epochs": at["T"]}


def predict(rule: str, constant: float, b: np.ndarray, B: np.ndarray, T: np.ndarray
            ) -> np.ndarray:
    """d* the rule predicts for cells (b, B, T), given its fitted constant."""
    x, y, z = RULES[rule]
    sign = CONSTANTS[rule][1]
    return constant**sign * np.power(b, x) * np.power(B, y) * np.power(T, z)


def to_weight_decay(lambda_norm: float, lr: float, batch_size: float, train_size: float,
                    epochs: float) -> float:
    """λ_norm in PyTorch's AdamW weight_decay for this lr, b, B, T."""
    return lambda_norm * math.sqrt(batch_size / (train_size * epochs)) / lr
