"""What a refined study spent, against a full grid at the resolution it reached (pure).

A refined study (`[refine]`, docs/analysis.md "Adaptive refinement") is a grid (its first
experiment) plus rounds, each a plain experiment of the study. Everything here comes from
the tables: one row per finished member with its `experiment`, cell, seed, λ and
`total_steps` (results.csv's columns; the canonical table carries them along). The
study's own record of the rounds (study.json's `refine`, handed in by the caller: the
analysis never reads it) only names the rounds and says why the loop stopped.

    members(hist) -> DataFrame
        One row per run: run, cell, seed, lam, experiment, member_steps (`total_steps`,
        else the run's last evaluated step).
    summarize(members, cells=None, refine=None) -> Spend | None
        None unless the members come from more than one experiment and `refine` is a
        dict (the caller says the study was refined). Spend.rounds: per experiment its
        members and member-steps; .per_cell: member-steps per experiment and cell;
        .cells: per cell what it spent, the ln λ spacing it reached, the λ range, its
        seeds, the member-steps of a full grid at that spacing over that range with those
        seeds, and (with `cells`, the analysis' lambda_star table) the half-widths in ln λ
        of its λ*, onset and collapse intervals.
    earlier(refine) -> DataFrame
        Other specs' refinements the record keeps (`earlier`), as the record says.

The dense grid a cell is compared with: every one of the cell's seeds on a uniform ln λ
grid over the cell's λ range (smallest to largest λ > 0 of any round) whose step is the
spacing the refinement reached, plus λ = 0 where the cell has it; each member costing the
cell's member-steps per member. The spacing: the median, over the cell's seeds, of the
gaps between a seed's adjacent ln λ that are finer than the first experiment's spacing
(the median of its gaps) -- the gaps the rounds made; the first experiment's spacing when
the rounds made none (then the dense grid is the grid itself). The median, not the
smallest gap: a proposal can land next to an existing point, and a grid at that one gap
everywhere would overstate the saving (the same definition as benchmarks/bench_refine.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TARGETS = {"opt": "lambda_star", "onset": "lambda_onset", "collapse": "lambda_collapse"}
_EPS = 1e-6  # a gap "finer" than the grid's spacing: by more than rounding


@dataclass(frozen=True)
class Spend:
    rounds: pd.DataFrame  # round, experiment, label, members, cells, member_steps
    per_cell: pd.DataFrame  # cell, experiment, members, member_steps
    cells: pd.DataFrame  # cell, seeds, members, member_steps, steps_per_member, spacing_ln,
    #                      grid_spacing_ln, lam_lo, lam_hi, dense_lambdas, dense_members,
    #                      dense_member_steps, ratio, hw_opt, hw_onset, hw_collapse, met
    spent: float  # member-steps of every finished member, the grid's included
    dense: float  # member-steps of the dense grids, summed over the cells that have one
    ratio: float  # spent / dense over those cells (NaN when no cell has a dense grid)
    target: float | None  # the record's target half-width (ln λ), if it says
    stop: str | None  # the record's stop ("target", "budget", "no_gain", "rounds")
    reason: str | None  # the record's one-line reason


def members(hist: pd.DataFrame) -> pd.DataFrame:
    """One row per run of the canonical table (`Analysis.hist`), with its member-steps."""
    cols = ["run", "cell", "seed", "lam"]
    if hist.empty or any(c not in hist for c in cols):
        return pd.DataFrame(columns=[*cols, "experiment", "member_steps"])
    last = hist.groupby("run", sort=False)["step"].max() if "step" in hist else None
    runs = hist.drop_duplicates("run").set_index("run", drop=False)
    out = runs[cols].copy()
    out["experiment"] = (runs["experiment"].astype("string").fillna("")
                         if "experiment" in runs else "")
    steps = pd.to_numeric(runs["total_steps"], errors="coerce") if "total_steps" in runs \
        else pd.Series(np.nan, index=runs.index)
    if "stopped_step" in runs:  # a member stopped early ran to its stop (trainer.early_stop)
        steps = pd.to_numeric(runs["stopped_step"], errors="coerce").fillna(steps)
    if last is not None:
        steps = steps.fillna(pd.to_numeric(last, errors="coerce").reindex(runs.index))
    out["member_steps"] = steps.astype(float)
    out["lam"] = pd.to_numeric(out["lam"], errors="coerce").astype(float)
    return out.reset_index(drop=True)


def refined(m: pd.DataFrame, refine: Any) -> bool:
    """The caller says the study was refined, and its members span several experiments."""
    return isinstance(refine, Mapping) and "experiment" in m \
        and m["experiment"].astype(str).replace("", np.nan).dropna().nunique() > 1


def summarize(m: pd.DataFrame, cells: pd.DataFrame | None = None,
              refine: Mapping[str, Any] | None = None) -> Spend | None:
    """See the module's docstring; `m` as `members` gives it."""
    if not refined(m, refine):
        return None
    assert refine is not None
    m = m[m["experiment"].astype(str) != ""].copy()
    m["experiment"] = m["experiment"].astype(str)
    order = sorted(m["experiment"].unique(), key=_exp_order)
    labels = _labels(order, refine)
    grid = {e for e in order if labels[e] == "grid"}
    steps = m["member_steps"].where(np.isfinite(m["member_steps"]), 0.0)
    m = m.assign(member_steps=steps)
    rounds = pd.DataFrame([{
        "round": i, "experiment": e, "label": labels[e],
        "members": int((m["experiment"] == e).sum()),
        "cells": int(m.loc[m["experiment"] == e, "cell"].nunique()),
        "member_steps": float(m.loc[m["experiment"] == e, "member_steps"].sum())}
        for i, e in enumerate(order)])
    per_cell = (m.groupby(["cell", "experiment"], sort=True)
                .agg(members=("run", "size"), member_steps=("member_steps", "sum"))
                .reset_index())
    target = _number(refine.get("settings"), "target")
    rows = [_cell(c, g, grid) for c, g in m.groupby("cell", sort=False)]
    table = pd.DataFrame(rows)
    if cells is not None and len(cells) and "cell" in cells:
        hw = halfwidths(cells)
        table = table.drop(columns=[f"hw_{k}" for k in TARGETS]).merge(hw, on="cell",
                                                                         how="left")
        if target is not None:
            table["met"] = [all(np.isfinite(r[f"hw_{k}"]) and r[f"hw_{k}"] <= target
                                for k in TARGETS) for _, r in table.iterrows()]
    spent = float(m["member_steps"].sum())
    has = np.isfinite(table["dense_member_steps"])
    dense = float(table.loc[has, "dense_member_steps"].sum())
    ratio = float(table.loc[has, "member_steps"].sum() / dense) if has.any() and dense > 0 \
        else math.nan
    stop, reason = refine.get("stop"), refine.get("stop_reason")
    return Spend(rounds, per_cell, table, spent, dense, ratio, target,
                 stop if isinstance(stop, str) else None,
                 reason if isinstance(reason, str) else None)


def earlier(refine: Mapping[str, Any] | None) -> pd.DataFrame:
    """Other specs' refinements of the study (the record's `earlier`: an imported study's,
    an earlier sitting's), oldest first, as their records say: rounds, experiments (named
    as in the study that ran them), member-steps spent, target and stop. Empty if none."""
    cols = ["record", "rounds", "experiments", "spent", "target", "stop", "reason"]
    recs = refine.get("earlier") if isinstance(refine, Mapping) else None
    rows = []
    for i, r in enumerate(recs if isinstance(recs, list) else [], 1):
        if not isinstance(r, Mapping):
            continue
        rounds = [x for x in r.get("rounds") or [] if isinstance(x, Mapping)]
        stop, reason = r.get("stop"), r.get("stop_reason")
        rows.append({"record": i, "rounds": len(rounds),
                     "experiments": ", ".join(str(x.get("experiment")) for x in rounds),
                     "spent": _number(r, "spent") or math.nan,
                     "target": _number(r.get("settings"), "target") or math.nan,
                     "stop": stop if isinstance(stop, str) else None,
                     "reason": reason if isinstance(reason, str) else None})
    return pd.DataFrame(rows, columns=cols)


def halfwidths(cells: pd.DataFrame) -> pd.DataFrame:
    """Per cell the 95% half-width in ln λ of λ*, onset and collapse (NaN: no interval)."""
    out = pd.DataFrame({"cell": cells["cell"].to_numpy()})
    for k, col in TARGETS.items():
        lo = pd.to_numeric(cells.get(f"{col}_ci_low"), errors="coerce")
        hi = pd.to_numeric(cells.get(f"{col}_ci_high"), errors="coerce")
        if lo is None or hi is None:
            out[f"hw_{k}"] = math.nan
            continue
        lo, hi = lo.to_numpy(dtype=float), hi.to_numpy(dtype=float)
        ok = np.isfinite(lo) & np.isfinite(hi) & (lo > 0) & (hi >= lo)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"hw_{k}"] = np.where(ok, 0.5 * (np.log(hi) - np.log(lo)), math.nan)
    return out


def seed_gaps(g: pd.DataFrame) -> np.ndarray:
    """The gaps between adjacent ln λ (λ > 0) within each seed, pooled."""
    pos = g[g["lam"] > 0]
    gaps = [np.diff(np.unique(np.log(s["lam"].to_numpy(dtype=float))))
            for _, s in pos.groupby("seed")]
    return np.concatenate(gaps) if gaps else np.array([])


def spacing(g: pd.DataFrame, grid: set[str]) -> tuple[float, float]:
    """(the spacing the cell reached, its grid's spacing), ln λ; NaN if none. `grid`: the
    experiments that ran the grid."""
    base = seed_gaps(g[g["experiment"].isin(grid)])
    grid = float(np.median(base)) if len(base) else math.nan
    gaps = seed_gaps(g)
    fine = gaps[gaps < grid * (1 - _EPS)] if math.isfinite(grid) else gaps
    if len(fine):
        return float(np.median(fine)), grid
    return grid, grid


def dense_lambdas(lo: float, hi: float, h: float) -> int:
    """λ > 0 of a uniform ln λ grid from lo to hi (both ends in) with step ≈ h."""
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(h) and h > 0
            and 0 < lo <= hi):
        return 0
    return max(1, int(round(math.log(hi / lo) / h))) + 1 if hi > lo else 1


def _cell(cell: Any, g: pd.DataFrame, grid: set[str]) -> dict[str, Any]:
    pos = g.loc[g["lam"] > 0, "lam"]
    lo, hi = (float(pos.min()), float(pos.max())) if len(pos) else (math.nan, math.nan)
    h, base = spacing(g, grid)
    per = float(g["member_steps"].median()) if len(g) else math.nan
    seeds = int(g["seed"].nunique())
    n = dense_lambdas(lo, hi, h)
    if n:
        n += int((g["lam"] == 0).any())  # the baseline, as the study has it
    spent = float(g["member_steps"].sum())
    dense = float(n * seeds * per) if n and math.isfinite(per) and per > 0 else math.nan
    return {"cell": cell, "seeds": seeds, "members": len(g), "member_steps": spent,
            "steps_per_member": per, "spacing_ln": h, "grid_spacing_ln": base,
            "lam_lo": lo, "lam_hi": hi, "dense_lambdas": n, "dense_members": n * seeds,
            "dense_member_steps": dense,
            "ratio": spent / dense if math.isfinite(dense) else math.nan,
            **{f"hw_{k}": math.nan for k in TARGETS}, "met": None}


def _labels(order: list[str], refine: Mapping[str, Any]) -> dict[str, str]:
    """Each experiment as what it was: the grid (everything before the first recorded
    round), "round N" for a recorded round, "round N (continued)" for an experiment the
    record does not name (a resume finishing the round before it, or an extension)."""
    rounds = refine.get("rounds")
    named = {}
    if isinstance(rounds, list):
        for i, r in enumerate(rounds, 1):
            if isinstance(r, Mapping) and isinstance(r.get("experiment"), str):
                named[r["experiment"]] = f"round {i}"
    out, now = {}, "grid"
    for e in order:
        if e in named:
            now = named[e]
            out[e] = now
        else:
            out[e] = now if now == "grid" else f"{now} (continued)"
    if not named and order:  # no round named: the first experiment is the grid
        out = {e: "grid" if i == 0 else f"experiment {e}" for i, e in enumerate(order)}
    return out


def _number(d: Any, key: str) -> float | None:
    v = d.get(key) if isinstance(d, Mapping) else None
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    try:
        x = float(v)  # a record's integer may be beyond a float (JSON allows it)
    except OverflowError:
        return None
    return x if math.isfinite(x) and x > 0 else None


def _exp_order(name: str) -> tuple[int, str]:
    """Experiments in the order they ran: exp-999 before exp-1000 (not as strings)."""
    num = name[4:] if name.startswith("exp-") else ""
    return (int(num) if num.isascii() and num.isdigit() else -1, name)
