"""Adaptive refinement: spend member-steps where the answer is uncertain, stop when it is known.

A rule study on a fixed λ grid spends most of its compute far from anything that matters
(flat near-zero accuracy below the onset edge, flat collapse above the collapse edge).
Refinement runs in rounds -- run what is planned, analyze, propose, extend the study -- and
this module is the decision core (pure: DataFrames in, dataclasses out; no I/O):

    propose(results, *, cell_keys, seeds, target, budget_left, steps,
            metric="test_acc", decay_col="weight_decay", max_points_per_cell=48,
            bounds=None) -> Proposal
        results: one row per finished member -- the cell axes, `decay_col`, `seed` and the
          final metric (`metric`, else `last_<metric>` or `final_<metric>`; the collapse
          edge also needs the matching train metric, `test_` -> `train_`). λ = 0 rows are
          the cell's baseline: used, never proposed.
        cell_keys: the axes that make a cell (neither λ nor seed).
        seeds: the seeds a cell may grow into, in order (a cell's own seeds are kept).
        target: the 95% half-width in ln λ each cell's λ*, onset and collapse must reach.
        budget_left: member-steps left; the proposal never costs more.
        steps(point) -> member-steps of one proposed member (a point dict).
        bounds: (λ_lo, λ_hi) the λ range may grow into; None: the range the results span.
      Proposal.points: new members (the cell's axes, `decay_col`, `seed`), never one that
        exists; .cells: each cell's CellState; .stop: "target" (every cell met), "budget"
        (nothing useful fits in budget_left), "no_gain" (nothing more would help: the reason
        names what the data cannot tell) or None (run the points, then propose again);
        .cost: member-steps of the points; .reason: one line.

    refine(evaluate, results, *, budget, rounds, **propose_kw) -> Refinement
        The loop itself around a callable evaluate(points) -> DataFrame (new result rows);
        stops on the proposal's stop, or "rounds".

What is estimated: the analysis' own per-cell estimates and intervals
(`_estimate.cells_and_seeds`), nothing else. A target is *not identified* (half-width inf,
CellState.why says why) when the data cannot tell it: the cell never learned, λ does not
change the accuracy (ANOVA over the λ levels, p ≥ 1e-3), the top or the edge lies past an
end of the range (then, within `bounds`, points past that end are proposed), the edge does
not exist (accuracy at λ = 0 already above half the best). How points are chosen and what
each is predicted to gain: `_refine_plan`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analysis import _refine_plan, _refine_state
from analysis._refine_state import TARGETS
from trainer.errors import BadInput

STOPS = ("target", "budget", "no_gain")


@dataclass(frozen=True)
class CellState:
    """One cell (a combination of the non-λ, non-seed axes) as the last analysis saw it."""

    cell: dict[str, Any]
    halfwidths: dict[str, float]  # "opt", "onset", "collapse" -> 95% half-width in ln λ
    met: bool  # every half-width ≤ target
    estimates: dict[str, float] = field(default_factory=dict)  # ln λ of each target (NaN)
    why: dict[str, str] = field(default_factory=dict)  # target -> why it is not identified
    seeds: int = 0


@dataclass(frozen=True)
class Proposal:
    points: list[dict[str, Any]]  # each: the cell's axes + decay_col + seed
    cells: list[CellState]
    stop: str | None  # "target" | "budget" | "no_gain" | None (continue)
    cost: float  # member-steps of `points`
    reason: str  # one line a person reads


@dataclass(frozen=True)
class Refinement:
    results: pd.DataFrame  # the input rows plus every evaluated point
    proposals: list[Proposal]  # one per round, the last one the final state (no points run)
    stop: str  # "target" | "budget" | "no_gain" | "rounds"
    spent: float  # member-steps of the points run


def _check(results: pd.DataFrame, cell_keys: Sequence[str], target: float, budget_left: float,
           decay_col: str, cap: int, bounds: tuple[float, float] | None) -> None:
    if not (isinstance(target, int | float) and math.isfinite(target) and target > 0):
        raise BadInput("target", f"must be a half-width in ln λ > 0, got {target!r}")
    if not (isinstance(budget_left, int | float) and not math.isnan(budget_left)
            and budget_left >= 0):
        raise BadInput("budget", f"must be member-steps ≥ 0, got {budget_left!r}")
    if not (isinstance(cap, int) and cap >= 1):
        raise BadInput("max_points_per_cell", f"must be an integer ≥ 1, got {cap!r}")
    if bounds is not None and not (len(bounds) == 2 and 0 < bounds[0] < bounds[1] < math.inf):
        raise BadInput("bounds", f"must be (λ_lo, λ_hi) with 0 < λ_lo < λ_hi, got {bounds!r}")
    for k in cell_keys:
        if k in (decay_col, "seed"):
            raise BadInput("cell_keys", f"{k!r} is the λ or seed axis, not a cell axis")
    missing = [c for c in (*cell_keys, decay_col, "seed") if c not in results]
    if missing:
        raise BadInput("results", f"no column named {', '.join(missing)}")
    lam = pd.to_numeric(results[decay_col], errors="coerce")
    if lam.isna().any() or (lam < 0).any():
        raise BadInput(decay_col, "must be a number ≥ 0 in every row")


def _column(results: pd.DataFrame, metric: str) -> str | None:
    return next((c for c in (metric, f"last_{metric}", f"final_{metric}") if c in results), None)


def _runs(results: pd.DataFrame, cell_keys: Sequence[str], metric: str, decay_col: str
          ) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The estimators' per-run frame (cell label, seed, lam, units, final accuracies)."""
    test = _column(results, metric)
    if test is None:
        raise BadInput("metric", f"no column {metric!r} (nor last_/final_{metric}) in results")
    train = _column(results, metric.replace("test", "train", 1)) if "test" in metric else None
    keys = list(cell_keys)
    cells = (results[keys].apply(lambda r: repr(tuple(r)), axis=1) if keys
             else pd.Series("all", index=results.index))
    lam = results[decay_col].astype(float)
    runs = pd.DataFrame({"cell": cells, "seed": results["seed"].astype(int), "lam": lam,
                         "weight_decay": lam, "decay_per_step": lam, "lambda_norm": lam,
                         "final_test_acc": results[test].astype(float)})
    if train is not None:
        runs["final_train_acc"] = results[train].astype(float)
    first = ~cells.duplicated()
    axes = {c: {k: _py(results.loc[i, k]) for k in keys} for c, i in
            zip(cells[first], results.index[first])}
    return runs.reset_index(drop=True), axes


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _state(c: _refine_state.Cell, target: float) -> CellState:
    hw = {k: c.targets[k].hw for k in TARGETS}
    return CellState(dict(c.axes), hw, all(v <= target for v in hw.values()),
                     {k: c.targets[k].est for k in TARGETS},
                     {k: c.targets[k].why for k in TARGETS if c.targets[k].why},
                     len(c.designs))


def _name(c: CellState) -> str:
    return ", ".join(f"{k}={v}" for k, v in c.cell.items()) or "the cell"


def propose(results: pd.DataFrame, *, cell_keys: Sequence[str], seeds: Sequence[int],
            target: float, budget_left: float, steps: Callable[[dict[str, Any]], float],
            metric: str = "test_acc", decay_col: str = "weight_decay",
            max_points_per_cell: int = 48, bounds: tuple[float, float] | None = None
            ) -> Proposal:
    """The next round's new members (see the module's docstring)."""
    _check(results, cell_keys, target, budget_left, decay_col, max_points_per_cell, bounds)
    runs, axes = _runs(results, cell_keys, metric, decay_col)
    if not (runs["lam"] > 0).any() or not np.isfinite(runs["final_test_acc"]).any():
        raise BadInput("results", "no finished member with λ > 0 and a finite metric")
    cells = _refine_state.cells(runs, axes)
    states = [_state(c, target) for c in cells]
    if all(s.met for s in states):
        widest = max(v for s in states for v in s.halfwidths.values())
        return Proposal([], states, "target", 0.0,
                        f"target met in every cell: widest half-width {widest:.3g} ≤ {target:g}")
    lnb = None if bounds is None else (math.log(bounds[0]), math.log(bounds[1]))

    def point(c: _refine_state.Cell, u: float, s: int) -> dict[str, Any]:
        return {**c.axes, decay_col: float(f"{math.exp(u):.6g}"), "seed": int(s)}

    actions: list[tuple[_refine_state.Cell, _refine_plan.Action]] = []
    stuck: list[str] = []
    for c, st in zip(cells, states):
        if st.met:
            continue
        def cost(pts: list[tuple[float, int]], c: _refine_state.Cell = c) -> float:
            return float(sum(_steps(steps, point(c, u, s)) for u, s in pts))
        acts, why = _refine_plan.plan(c, target=target, pool=list(seeds), bounds=lnb, cost=cost,
                                      cap=max_points_per_cell)
        actions += [(c, a) for a in acts]
        if not acts:
            told = "; ".join(f"{k}: {v}" for k, v in st.why.items())
            stuck.append(f"{_name(st)}: " + "; ".join(v for v in (told, why) if v))
    # The budget: structural steps first, then the most predicted gain per member-step.
    actions.sort(key=lambda ca: -(ca[1].gain / max(ca[1].cost, 1e-300)))
    chosen, spend = [], 0.0
    for c, a in actions:
        if spend + a.cost <= budget_left:
            chosen.append((c, a))
            spend += a.cost
    # Never a member that exists (finished, failed or NaN alike), compared as it is written.
    have = set(zip(runs["cell"], runs["seed"], (f"{v:.6g}" for v in runs["lam"])))
    points = []
    for c, a in chosen:
        for u, s in a.points:
            p = point(c, u, s)
            key = (c.label, int(s), f"{p[decay_col]:.6g}")
            if key not in have:
                have.add(key)
                points.append(p)
    cost = float(sum(_steps(steps, p) for p in points))
    if points:
        n = len({c.label for c, _ in chosen})
        widest = max((v, k, _name(s)) for s in states if not s.met
                     for k, v in s.halfwidths.items() if math.isfinite(v) and v > target) \
            if any(math.isfinite(v) and v > target for s in states if not s.met
                   for v in s.halfwidths.values()) else None
        more = f"; widest {widest[1]} {widest[0]:.3g} in {widest[2]}" if widest else ""
        left = f"; {len(actions) - len(chosen)} steps left out for the budget" \
            if len(chosen) < len(actions) else ""
        return Proposal(points, states, None, cost,
                        f"{len(points)} members ({cost:.4g} member-steps) in {n} cells{more}{left}")
    if actions:
        cheapest = min(a.cost for _, a in actions)
        return Proposal([], states, "budget", 0.0,
                        f"budget: the cheapest useful step costs {cheapest:.4g} member-steps, "
                        f"{budget_left:.4g} left")
    return Proposal([], states, "no_gain", 0.0, "no gain: " + " | ".join(stuck))


def _steps(steps: Callable[[dict[str, Any]], float], p: dict[str, Any]) -> float:
    v = float(steps(p))
    if not (math.isfinite(v) and v >= 0):
        raise BadInput("steps", f"must give member-steps ≥ 0 for every point, got {v!r} for {p}")
    return v


def refine(evaluate: Callable[[list[dict[str, Any]]], pd.DataFrame], results: pd.DataFrame, *,
           budget: float, rounds: int, **kw: Any) -> Refinement:
    """Propose, evaluate, extend, until a proposal stops or `rounds` have run. `budget`:
    member-steps the rounds may spend beyond `results`; `kw` as for `propose`."""
    if not (isinstance(rounds, int) and rounds >= 0):
        raise BadInput("rounds", f"must be an integer ≥ 0, got {rounds!r}")
    proposals: list[Proposal] = []
    spent = 0.0
    for _ in range(rounds):
        p = propose(results, budget_left=max(budget - spent, 0.0), **kw)
        proposals.append(p)
        if p.stop:
            return Refinement(results, proposals, p.stop, spent)
        new = evaluate(p.points)
        results = pd.concat([results, new], ignore_index=True)
        spent += p.cost
    p = propose(results, budget_left=max(budget - spent, 0.0), **kw)
    proposals.append(p)
    return Refinement(results, proposals, p.stop or "rounds", spent)
