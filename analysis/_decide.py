"""The verdict: which rules the data leave standing, how strongly, and what would decide.

A rule is named only when it is the one rule the free fit leaves compatible (F test,
p ≥ 0.05; `_fit`). Its strength is how hard the others are rejected -- decisive when every
other rule has p < 0.001, strong below 0.01, weak below 0.05 -- capped at weak with fewer
than 3 seeds in some used cell (a spread from 2 seeds is one degree of freedom) or fewer
than 3 cells. Otherwise the verdict is inconclusive and lists the rules still compatible,
with the design that would separate the hardest pair: two cells a factor 4 (or 16) apart
on the axis where they differ most, the seeds and λ grid that make the difference in
ln d* about 2.8 standard errors (a 5% test with 80% power), and its cost in member-steps.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from analysis import _fit
from analysis._fit import AXIS_NAMES, COLUMNS, RULES

Z = 1.96 + 0.84  # two-sided 5% test with 80% power
FINE_STEP = math.log(math.sqrt(2))  # ln of the finest λ ratio the design proposes


MIN_CHECK_DOF = 3  # residual dof below which the error model is not checked: at most weak


def _p(r: dict[str, Any]) -> float:
    """A rule's p for the verdict: Holm-adjusted where the family is known."""
    return r["p_holm"] if r.get("p_holm") is not None else r["p_value"]


def decide(rules: dict[str, dict[str, Any]], design: _fit.Design | None, min_seeds: int,
           n_cells: int) -> dict[str, Any]:
    """{rule, strength, compatible, reason}; rule is None unless one rule alone survives."""
    names = list(rules)
    if design is None or not rules:
        return dict(rule=None, strength="inconclusive", compatible=[],
                    reason="too few usable cells to fit")
    reg = design.reg
    if reg.rank == 0:
        return dict(rule=None, strength="inconclusive", compatible=names,
                    reason="b, B and T do not vary across the usable cells")
    if reg.dof_q <= 0:
        return dict(rule=None, strength="inconclusive", compatible=names,
                    reason=f"no residual degrees of freedom ({n_cells} cells, {reg.rank} "
                           "exponents): the rules cannot be tested; add cells")
    ok = [k for k in names if rules[k]["compatible"]]
    if len(ok) == 1:
        worst = max(_p(rules[k]) for k in names if k != ok[0])
        strength = "decisive" if worst < 1e-3 else "strong" if worst < 1e-2 else "weak"
        caps = [why for why, bad in (
            ("fewer than 3 seeds in some cell", min_seeds < 3),
            ("fewer than 3 cells", n_cells < 3),
            (f"{reg.dof} residual dof are too few to check the error model",
             reg.dof < MIN_CHECK_DOF)) if bad]
        if caps and strength != "weak":
            strength = "weak"
        reason = f"every other rule is rejected (largest p = {worst:.2g})"
        return dict(rule=ok[0], strength=strength, compatible=ok,
                    reason=reason + (f"; at most weak: {', '.join(caps)}" if caps else ""))
    if not ok:
        return dict(rule=None, strength="inconclusive", compatible=[],
                    reason="no rule fits: the free exponents differ from all four")
    return dict(rule=None, strength="inconclusive", compatible=ok,
                reason=f"{len(ok)} rules remain compatible with the free fit")


def _steps(b: float, B: float, T: float) -> float:
    return T * B / b  # a run's optimizer steps: T epochs of B/b steps


def separating_design(compatible: list[str], design: _fit.Design | None, s_seed: float,
                      cells: pd.DataFrame) -> dict[str, Any] | None:
    """Cells, seeds and λ grid that would separate the two hardest-to-tell compatible rules."""
    if len(compatible) < 2 or cells.empty:
        return None
    pairs = []
    for a, b in itertools.combinations(compatible, 2):
        diff = np.abs(np.subtract(RULES[a], RULES[b]))
        pairs.append((float(diff.max()), int(diff.argmax()), a, b))
    delta, j, ra, rb = min(pairs)
    base = cells if design is None else design.cells
    center = {c: float(np.exp(np.log(base[c].astype(float)).median())) for c in COLUMNS}
    h_now = float(np.nanmedian(cells["grid_step_ln"])) if "grid_step_ln" in cells else math.nan
    h = min(h_now, FINE_STEP) if math.isfinite(h_now) else FINE_STEP
    for factor in (4.0, 16.0):
        sigma = delta * math.log(factor) / (Z * math.sqrt(2))
        room = sigma**2 - h**2 / 12
        if room > 0:
            break
    else:
        return None
    n = max(3, math.ceil(s_seed**2 / room)) if math.isfinite(s_seed) else 3
    span = np.log(cells["lambda_max"] / cells["lambda_min"]).median()
    n_lam = int(math.ceil(span / h)) + 2 if math.isfinite(span) else 15  # + λ = 0
    lo, hi = dict(center), dict(center)
    lo[COLUMNS[j]] /= math.sqrt(factor)
    hi[COLUMNS[j]] *= math.sqrt(factor)
    cost = n * n_lam * sum(_steps(c["batch_size"], c["train_size"], c["T"]) for c in (lo, hi))
    return {"rules": [ra, rb], "axis": AXIS_NAMES[j], "exponent_difference": delta,
            "factor": factor, "cells": [{AXIS_NAMES[k]: c[COLUMNS[k]] for k in range(3)}
                                        for c in (lo, hi)],
            "seeds": n, "lambda_ratio": math.exp(h), "n_lambdas": n_lam,
            "member_steps": float(cost),
            "assumes": "the current seed spread of ln λ* and the median λ range"}


def lambda_norm(rules: dict[str, Any], use: pd.DataFrame) -> dict[str, Any]:
    """λ_norm from the sqrt rule's constant, and the same in PyTorch units at the study's
    most common lr, b, B, T."""
    null = {"estimate": None, "ci_low": None, "ci_high": None}
    lam = {k: v for k, v in rules["sqrt"]["constant"].items() if k != "name"} \
        if "sqrt" in rules else dict(null)
    lam["units"] = "paper's normalized decay: d = lambda_norm·sqrt(b/(B·T))"
    cols = ("lr", *COLUMNS)
    if lam["estimate"] is None or any(c not in use or not use[c].notna().any() for c in cols):
        lam["weight_decay"] = None
        return lam
    at = {c: float(use[c].mode().iloc[0]) for c in cols}
    conv = {k: None if lam[k] is None else _fit.to_weight_decay(lam[k], *at.values())
            for k in ("estimate", "ci_low", "ci_high")}
    lam["weight_decay"] = {**conv, "units": "PyTorch AdamW weight_decay", "lr": at["lr"],
                           "batch_size": at["batch_size"], "train_size": at["train_size"],
                           "epochs": at["T"]}
    return lam


def _fit_one(cells: pd.DataFrame, col: str, se_col: str, interior: bool, seed_dof: int = 0,
             shift: tuple[float, float, float] = (0.0, 0.0, 0.0)
             ) -> tuple[dict[str, Any], _fit.Design | None]:
    if se_col not in cells:
        cells = cells.assign(**{se_col: math.nan})
    return _fit.fit(cells, col, se_col, interior, seed_dof, shift)


def _finish(out: dict[str, Any], design: _fit.Design | None, cells: pd.DataFrame,
            s_seed: float) -> dict[str, Any]:
    """The verdict, the separating design and λ_norm from the rules' (adjusted) tests."""
    use = design.cells if design is not None else cells.iloc[:0]  # the cells the fit used
    min_seeds = int(use["n_seeds"].min()) if "n_seeds" in use and len(use) else 0
    v = decide(out["rules"], design, min_seeds, out["n_cells"])
    out["verdict"] = v
    out["preferred_rule"] = v["rule"]
    out["preference"] = {"preferred_rule": v["rule"], "strength": v["strength"],
                         "compatible": v["compatible"]}
    out["design"] = separating_design(v["compatible"], design, s_seed, cells)
    out["lambda_norm"] = lambda_norm(out["rules"], use)
    return out


def fit_rules(cells: pd.DataFrame, seed_dof: int = 0, s_seed: float = math.nan,
              col: str = "d_star", se_col: str = "se_ln_star", interior: bool = True
              ) -> dict[str, Any]:
    """Exponents with intervals, each rule's test, the verdict, a design, λ_norm (one
    target, no multiple-testing correction; `fit_targets` does all targets with Holm).
    The tests use the design's residual dof; `seed_dof` only gives the exponents'
    intervals when there are none (unchecked, and said so)."""
    out, design = _fit_one(cells, col, se_col, interior, seed_dof)
    return _finish(out, design, cells, s_seed)


# Each target: (column of d, column of its se in ln, interior λ* required, description).
TARGETS = {
    "lambda_star": ("d_star", "se_ln_star", True, "the optimum λ* (d* = lr·λ*)"),
    "onset": ("d_onset", "se_ln_onset", False, "the onset edge"),
    "collapse": ("d_collapse", "se_ln_collapse", False, "the collapse edge"),
    "within_run_onset": ("d_within", "se_ln_within", False,
                         "the within-run onset (λ·step to half the run's best)"),
}
VERDICT_TARGET = "lambda_star"  # what the headline verdict rests on: the rules are about λ*


def holm(ps: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """Holm's step-down adjustment of a family of p-values (monotone, capped at 1)."""
    order = sorted(ps, key=ps.get)  # type: ignore[arg-type]
    m, run, out = len(order), 0.0, {}
    for i, k in enumerate(order):
        run = max(run, min(1.0, (m - i) * ps[k]))
        out[k] = run
    return out


def fit_targets(cells: pd.DataFrame, spreads: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every target's fit and rule tests, Holm-corrected over targets × rules together;
    the headline verdict (on λ*) with the edges and the within-run onset beside it."""
    fits = {t: _fit_one(cells, col, se, interior, spreads.get(t, {}).get("dof", 0))
            for t, (col, se, interior, _) in TARGETS.items() if col in cells}
    raw = {(t, k): r["p_value"] for t, (f, _) in fits.items() for k, r in f["rules"].items()
           if r["p_value"] is not None}
    adj = holm(raw)
    for t, (f, _) in fits.items():
        for k, r in f["rules"].items():
            r["p_holm"] = adj.get((t, k))
            r["compatible"] = r["p_holm"] is None or r["p_holm"] >= _fit.ALPHA
    done = {t: _finish(f, d, cells, spreads.get(t, {}).get("sd_ln", math.nan))
            for t, (f, d) in fits.items()}
    main = done[VERDICT_TARGET]
    main["verdict"]["target"] = VERDICT_TARGET
    main["edges"] = {t: _trim(done[t], cells, t) for t in ("onset", "collapse") if t in done}
    if "within_run_onset" in done:
        main["within_run_onset"] = _trim(done["within_run_onset"], cells, "within_run_onset")
    main["multiple_testing"] = {
        "method": "Holm", "alpha": _fit.ALPHA, "n_tests": len(raw),
        "family": f"{len(fits)} targets × {len(_fit.RULES)} rules: "
                  + ", ".join(TARGETS[t][3] for t in fits),
        "note": "a rule is compatible when its Holm-adjusted p ≥ alpha; strengths use the "
                "adjusted p"}
    main["integrated"] = integrated(cells, spreads.get(VERDICT_TARGET, {}).get("dof", 0), raw)
    main["targets"] = {t: {"description": TARGETS[t][3], "n_cells": f["n_cells"],
                           "verdict": {k: f["verdict"][k] for k in ("rule", "strength",
                                                                   "compatible")},
                           "rules": {k: {"p_value": r["p_value"], "p_holm": r["p_holm"]}
                                     for k, r in f["rules"].items()}}
                       for t, f in done.items()}
    return main


# The integrated decay D = d·Σ_k f(k) against (b, B, T): with S = T·B/b steps, a rule
# d ∝ b^x B^y T^z reads D ∝ b^(x-1) B^(y+1) T^(z+1) when every cell's schedule has the
# same shape (then both fits test the same thing); cells whose schedules differ in shape
# (warmup in steps, lr_min, the kind) are compared by what they integrate.
D_SHIFT = (-1.0, 1.0, 1.0)


def integrated(cells: pd.DataFrame, seed_dof: int = 0,
               family: dict[tuple[str, str], float] | None = None) -> dict[str, Any] | None:
    """λ*'s fit with the integrated decay D* = d*·Σ_k f(k) as the rule variable: the free
    exponents of D*, each rule's test, the verdict and D* per cell. None when the cells do
    not say their schedules' integrals (decay_steps). The tests are λ*'s read in D, so
    they take λ*'s place in the Holm family of `family` (every target × rule's raw p):
    with one schedule shape the two views are then the same test, to the same verdict."""
    if "decay_steps" not in cells or not np.isfinite(cells["decay_steps"]).any():
        return None
    c = cells.assign(D_star=cells["d_star"] * cells["decay_steps"])
    f, design = _fit_one(c, "D_star", TARGETS[VERDICT_TARGET][1], True, seed_dof, D_SHIFT)
    mine = {(VERDICT_TARGET, k): r["p_value"] for k, r in f["rules"].items()
            if r["p_value"] is not None}
    adj = holm({**{t: p for t, p in (family or {}).items() if t[0] != VERDICT_TARGET},
                **mine})
    for k, r in f["rules"].items():
        r["p_holm"] = adj.get((VERDICT_TARGET, k))
        r["compatible"] = r["p_holm"] is None or r["p_holm"] >= _fit.ALPHA
    use = design.cells if design is not None else c.iloc[:0]
    min_seeds = int(use["n_seeds"].min()) if "n_seeds" in use and len(use) else 0
    v = decide(f["rules"], design, min_seeds, f["n_cells"])
    return {"variable": "D* = d*·Σ_k f(k), the total decay of the run at λ* "
                        "(trainer.units.integrated_decay)",
            "n_cells": f["n_cells"], "exponents": f["exponents"], "dof": f.get("dof"),
            "rules": {k: {"exponents_of_D": r["exponents"], "p_value": r["p_value"],
                          "p_holm": r["p_holm"], "compatible": r["compatible"]}
                      for k, r in f["rules"].items()},
            "verdict": {k: v[k] for k in ("rule", "strength", "compatible", "reason")
                        if k in v},
            "per_cell": [{"cell": r["cell"], "D_star": r["D_star"],
                          "decay_steps": r["decay_steps"]} for _, r in use.iterrows()],
            "notes": f["notes"]}


def _trim(f: dict[str, Any], cells: pd.DataFrame, target: str) -> dict[str, Any]:
    """One secondary target's regression, rule tests and per-cell values."""
    keep = ("n_cells", "exponents", "identified", "dof", "residual_scale", "scale_from",
            "test_dof", "verdict", "design", "notes")
    out = {**{k: f.get(k) for k in keep},
           "rules": {k: {"p_value": r["p_value"], "p_holm": r.get("p_holm"),
                         "compatible": r["compatible"], "weight": r["weight"]}
                     for k, r in f["rules"].items()}}
    if target in ("onset", "collapse"):
        out["per_cell"] = [{"cell": c["cell"], "lambda": c[f"lambda_{target}"],
                            "ci_low": c[f"lambda_{target}_ci_low"],
                            "ci_high": c[f"lambda_{target}_ci_high"], "d": c[f"d_{target}"],
                            "censored": c[f"{target}_censored"] or None,
                            "n_seeds": c[f"n_{target}_seeds"]} for _, c in cells.iterrows()]
    else:
        out["per_cell"] = [{"cell": c["cell"], "total_decay": c["total_decay_within"],
                            "ci_low": c["total_decay_within_ci_low"],
                            "ci_high": c["total_decay_within_ci_high"], "d": c["d_within"],
                            "n_runs": c["n_within_runs"]} for _, c in cells.iterrows()]
    return out


def fit_edge(cells: pd.DataFrame, edge: str, pooled: dict[str, Any]) -> dict[str, Any]:
    """One edge's regression on ln b, ln B, ln T, its rules' tests and per-cell values
    (uncorrected; `fit_targets` corrects all targets together)."""
    f = fit_rules(cells, pooled["dof"], pooled["sd_ln"], col=f"d_{edge}",
                  se_col=f"se_ln_{edge}", interior=False)
    return _trim(f, cells, edge)
