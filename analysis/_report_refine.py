"""The report's "Refinement" section of a refined study: member-steps per round and per
cell, against a full grid at the resolution each cell reached, and the intervals reached
(the numbers: analysis._refine_report)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis import _refine_report
from analysis._cells_fmt import ordered, table, true, with_ci
from analysis._verdict import MISSING, g

if TYPE_CHECKING:
    from analysis._analysis import Analysis

_STOPS = {"target": "every cell met the target", "budget": "the budget was spent",
          "no_gain": "nothing more would help", "rounds": "the rounds were used up"}


def _hw(v: Any) -> str:
    return g(float(v), 3) if isinstance(v, (int, float)) and math.isfinite(v) else MISSING


def _steps(v: float) -> str:
    return f"{v:,.0f}" if math.isfinite(v) else MISSING


def _censored(one: pd.DataFrame | None, col: str) -> str:
    v = one[col].iloc[0] if one is not None and col in one else ""
    return v if isinstance(v, str) else ""


def refinement(a: Analysis) -> dict[str, Any] | None:
    """The "Refinement" section of a refined study (None for any other): member-steps per
    round and per cell from the tables, against a full grid at the resolution each cell
    reached, and the intervals reached (analysis._refine_report)."""
    if not isinstance(a.refine, dict):  # an ordinary study: not even its members counted
        return None
    spend = _refine_report.summarize(_refine_report.members(a.hist), a.cells, a.refine)
    if spend is None:
        return None
    total = spend.spent
    rounds = pd.DataFrame({
        "round": spend.rounds["label"], "experiment": spend.rounds["experiment"],
        "members": spend.rounds["members"], "cells": spend.rounds["cells"],
        "member-steps": [_steps(v) for v in spend.rounds["member_steps"]],
        "share": [f"{v / total:.0%}" if total > 0 else MISSING
                  for v in spend.rounds["member_steps"]]})
    labels = dict(zip(spend.rounds["experiment"], spend.rounds["label"]))
    order = list(ordered(a.cells, a.keys)["cell"])
    order += [c for c in spend.cells["cell"] if c not in order]
    per = spend.per_cell.pivot_table(index="cell", columns="experiment",
                                     values="member_steps", aggfunc="sum", fill_value=0.0)
    per = per.reindex([c for c in order if c in per.index])
    by_round = pd.DataFrame({"cell": per.index.astype(str)})
    for e in per.columns:
        by_round[f"{labels.get(e, e)} ({e})"] = [_steps(float(v)) for v in per[e]]
    cells = spend.cells.set_index("cell").reindex([c for c in order if c in
                                                   set(spend.cells["cell"])])
    info = a.cells.set_index("cell")
    rows = []
    for c, r in cells.iterrows():
        row = {"cell": str(c), "seeds": r["seeds"], "members": r["members"],
               "member-steps": _steps(r["member_steps"]),
               "spacing reached (ln λ)": _hw(r["spacing_ln"]),
               "grid's spacing (ln λ)": _hw(r["grid_spacing_ln"]),
               "full grid: λ × seeds": f"{int(r['dense_lambdas'])} × {int(r['seeds'])}"
               if r["dense_lambdas"] else MISSING,
               "full grid member-steps": _steps(r["dense_member_steps"]),
               "spent / full grid": g(r["ratio"], 2)}
        one = info.loc[[c]].reset_index() if c in info.index else None
        for k, col, name in (("opt", "lambda_star", "λ*"), ("onset", "lambda_onset", "onset"),
                             ("collapse", "lambda_collapse", "collapse")):
            cens = _censored(one, f"{k}_censored")
            row[f"{name} [95%]"] = (f"censored: {cens}" if cens else
                                    with_ci(one, col)[0] if one is not None else MISSING)
            row[f"{name} half-width"] = _hw(r[f"hw_{k}"])
        if spend.target is not None:
            row["target met"] = "yes" if true(r["met"]) else "no"
        rows.append(row)
    n = int((spend.rounds["label"] != "grid").sum())
    grid = float(spend.rounds.loc[spend.rounds["label"] == "grid", "member_steps"].sum())
    return {"rounds": table(rounds), "by_round": table(by_round),
            "cells": table(pd.DataFrame(rows)), "n_rounds": n,
            "spent": _steps(total), "grid": _steps(grid),
            "after": _steps(total - grid), "dense": _steps(spend.dense),
            "ratio": g(spend.ratio, 2) if math.isfinite(spend.ratio) else "",
            "target": g(spend.target, 3) if spend.target is not None else "",
            "stop": _STOPS.get(spend.stop or "", spend.stop or ""),
            "reason": spend.reason or "", "unit": a.unit_label,
            "earlier": _earlier(a.refine)}


def _earlier(refine: dict[str, Any]) -> dict[str, Any] | str:
    """The table of other specs' refinements of the study ("" when there are none)."""
    e = _refine_report.earlier(refine)
    if e.empty:
        return ""
    return table(pd.DataFrame({
        "record": e["record"], "rounds": e["rounds"], "experiments": e["experiments"],
        "member-steps spent": [_steps(v) for v in e["spent"]],
        "target (ln λ)": [_hw(v) for v in e["target"]],
        "stopped": [_STOPS.get(s or "", s or MISSING) for s in e["stop"]],
        "reason": [r or MISSING for r in e["reason"]]}))
