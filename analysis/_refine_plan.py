"""The actions adaptive refinement (`_refine`) can take in one cell, and the greedy choice
among them. Every λ it proposes lies on one lattice in ln λ (multiples of 1/128), placed
from the fitted curves, never from the starting grid's spacing.

Actions, each a list of (ln λ, seed) for one cell:
* densify: a seed with fewer λ than the curve model needs gets the midpoints of its widest
  gaps (before anything else: without them the seed's estimate is the coarse one);
* fill: a seed censored at an edge only by its own design (it starts above the onset
  that other seeds resolve) gets the cell's two nearest λ past its end;
* extend: a target censored at an end of the λ range (onset below it, collapse or the top
  above it) gets points past that end, ×2 and ×4 in λ, within `bounds` only;
* probe: a cell that learned at none of its λ although λ changes its accuracy, its best λ
  inside the range, gets the midpoints of the two gaps beside that best λ in every seed (a
  top narrower than a coarse grid sits between two points; bisecting finds it or rules it
  out), until those gaps are narrower than PROBE_MIN;
* slope points, per target and seed: on a transition no point of the seed resolves (none
  between its 10% and 90%), the midpoint of the gap around it (bisection in ln λ); on a
  resolved one, points 0.75 widths apart across its slope where the seed has none near;
* a new seed: three points across each fitted transition, the top and one point at the
  base past each side (a new seed's curve needs both sides), when the seed spread
  dominates the interval.

Resolution is judged per seed as the estimator judges it, on the seed's own fit (centre
and width of each transition); the cell's median fit places what a seed has not fitted.

Their effect is predicted on the interval's parts (`_refine_state.halfwidth`): slope points
quarter the grid variance of an unresolved transition and divide the fit variance by the
ratio of points on the slope after and before; a seed adds one to n and to the pooled dof
and, its slopes sampled, none to the grid variance (the cell's mean falls by n/(n+1)).
The greedy choice takes, until the cell is predicted to meet the target or its point cap,
the action with the largest fall in Σ max(half-width − target, 0) per member-step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from analysis._curve import MIN_POINTS
from analysis._refine_state import LN9, MIN_WIDTH, Cell, Target, halfwidth

LATTICE = 128  # proposed ln λ are multiples of 1/LATTICE
STEP = 0.75  # slope points, in widths of the transition
EXTEND = (math.log(2.0), math.log(4.0))  # past the end of the range, in ln λ
MIN_GAIN = 0.01  # of the target: smaller predicted gains are not worth a step
PROBE_MIN = math.log(2.0) / 4  # ln λ: gaps beside a hidden top probed down to λ × 1.19


@dataclass
class Action:
    kind: str  # densify | fill | extend | probe | slope | seed
    target: str  # the target it serves ("" for densify, seed)
    points: list[tuple[float, int]]  # (ln λ, seed)
    cost: float = 0.0
    gain: float = math.inf  # predicted fall of the cell's total excess (inf: structural)


def snap(u: float) -> float:
    return round(u * LATTICE) / LATTICE


def _far(u: float, have: np.ndarray, sep: float) -> bool:
    return not len(have) or float(np.min(np.abs(have - u))) > sep


def _centre(cell: Cell, seed: int, slope: tuple[float, float, str]) -> tuple[float, float]:
    """The slope's centre and width for this seed: its own fit's where it has one (as the
    estimator judges resolution), else the cell's."""
    u, w, key = slope
    f = cell.fits.get(seed, {})
    med = [v[key] for v in cell.fits.values() if key in v]
    if key in f and med:
        u = u + f[key] - float(np.median(med))
        w = f.get("w" + key, w)
    return u, max(w, MIN_WIDTH)


def densify(cell: Cell) -> Action | None:
    pts = []
    for s, x in cell.designs.items():
        x = np.sort(x)
        while 1 < len(x) < MIN_POINTS:
            j = int(np.argmax(np.diff(x)))
            m = snap(0.5 * (x[j] + x[j + 1]))
            if not _far(m, x, 0.5 / LATTICE):
                break
            pts.append((m, s))
            x = np.sort(np.r_[x, m])
    return Action("densify", "", pts) if pts else None


def fill(cell: Cell) -> Action | None:
    """Seeds censored at an edge by their own design: the cell's two nearest λ past their
    end on that side (points other seeds already have)."""
    union = np.unique(np.concatenate(list(cell.designs.values())))
    pts = []
    for t in cell.targets.values():
        for s, side in t.fill.items():
            x = cell.designs.get(s)
            if x is None or not len(x):
                continue
            past = union[union < x.min() - 1e-9][-2:] if side == "below" \
                else union[union > x.max() + 1e-9][:2]
            pts += [(float(u), s) for u in past if (float(u), s) not in pts]
    return Action("fill", "", pts) if pts else None


def extend(cell: Cell, direction: str, bounds: tuple[float, float] | None) -> Action | None:
    if bounds is None:
        return None
    lo, hi = bounds
    us = [cell.lo - d for d in EXTEND] if direction == "below" else [cell.hi + d for d in EXTEND]
    us = [snap(min(max(u, lo), hi)) for u in us]
    us = sorted({u for u in us if (u < cell.lo - 0.5 / LATTICE if direction == "below"
                                   else u > cell.hi + 0.5 / LATTICE)})
    pts = [(u, s) for s in cell.designs for u in us]
    return Action("extend", direction, pts) if pts else None


def probe(cell: Cell) -> Action | None:
    """Bisect the gaps on both sides of a not-learned cell's interior best λ (Cell.peak)."""
    if not math.isfinite(cell.peak):
        return None
    union = np.unique(np.concatenate(list(cell.designs.values())))
    left, right = union[union < cell.peak - 1e-9], union[union > cell.peak + 1e-9]
    mids = [snap(0.5 * (cell.peak + n)) for n in (left[-1:].tolist() + right[:1].tolist())
            if abs(cell.peak - n) >= 2 * PROBE_MIN]
    pts = [(u, s) for s, x in cell.designs.items() for u in mids
           if not np.any(np.abs(x - u) < 0.5 / LATTICE)]
    return Action("probe", "opt", pts) if pts else None


def slope(cell: Cell, t: Target) -> tuple[Action | None, float, float]:
    """Slope points for target t in every seed; (action, predicted fit, grid variance)."""
    pts: list[tuple[float, int]] = []
    on_before = on_after = 0
    bisect = False
    for s, x in cell.designs.items():
        for sl in t.slopes:
            u, w = _centre(cell, s, sl)
            on = int(np.sum(np.abs(x - u) < LN9 * w))
            on_before += on
            mine = [p for p, q in pts if q == s]
            have = np.r_[x, mine]
            if on == 0:  # unresolved: bisect the gap that holds the transition
                j = int(np.searchsorted(x, u))
                if 0 < j < len(x):
                    m = snap(0.5 * (x[j - 1] + x[j]))
                    if _far(m, have, 0.5 / LATTICE):
                        pts.append((m, s))
                        bisect = True
                        on_after += 1
                continue
            new = [snap(u + i * STEP * w) for i in (-2, -1, 0, 1, 2)]
            new = [v for v in new if cell.lo <= v <= cell.hi]
            for v in new:
                if _far(v, have, 0.5 * STEP * w):
                    pts.append((v, s))
                    have = np.r_[have, v]
                    on_after += 1
            on_after += on
    if not pts:
        return None, t.fit, t.grid
    fit = t.fit * on_before / on_after if on_before and on_after else t.fit
    return Action("slope", t.name, pts), fit, (t.grid / 4 if bisect else t.grid)


def new_seed(cell: Cell, seed: int) -> Action | None:
    """A new seed: three points across each fitted transition of an identified target
    (centre, ±0.75 widths), the top (λ*), and one point past each side where the curve is
    at its base (`Cell.base`), all within the range."""
    us: list[float] = []
    slopes = [(u, max(w, MIN_WIDTH)) for t in cell.targets.values() if math.isfinite(t.hw)
              for u, w, _ in t.slopes if math.isfinite(u)]
    if not slopes:
        return None
    for u, w in slopes:
        us += [u - STEP * w, u, u + STEP * w]
    opt = cell.targets["opt"]
    if math.isfinite(opt.hw):
        us.append(opt.est)
    us += [v for v in cell.base if math.isfinite(v)]  # the base either side (_refine_state)
    design: list[float] = []
    for u in sorted(snap(min(max(u, cell.lo), cell.hi)) for u in us):
        if _far(u, np.array(design), 0.5 * STEP * MIN_WIDTH):
            design.append(u)
    union = np.unique(np.concatenate(list(cell.designs.values())))
    for u in union[np.argsort(np.abs(union - float(np.median(design))))]:
        if len(design) >= MIN_POINTS + 2:  # a curve the model can fit, whatever the slopes
            break
        if _far(float(u), np.array(design), 0.5 / LATTICE):
            design.append(float(u))
    return Action("seed", "", [(u, seed) for u in sorted(design)])


def _excess(hw: dict[str, float], target: float) -> float:
    return sum(max(h - target, 0.0) for h in hw.values())


def plan(cell: Cell, *, target: float, pool: Sequence[int], bounds: tuple[float, float] | None,
         cost: Callable[[list[tuple[float, int]]], float], cap: int) -> tuple[list[Action], str]:
    """The actions for this cell this round, and (when none) why nothing would help."""
    out: list[Action] = []
    used = 0

    def take(a: Action | None) -> bool:
        nonlocal used
        if a is None or used + len(a.points) > cap:
            return False
        a.cost = cost(a.points)
        out.append(a)
        used += len(a.points)
        return True

    if take(densify(cell)):
        return out, ""
    take(fill(cell))
    if take(probe(cell)):
        return out, ""
    blocked = []
    for d in ("below", "above"):
        if any(t.extend == d for t in cell.targets.values()):
            if not take(extend(cell, d, bounds)):
                blocked.append(d)
    parts = {k: [t.n, t.s2, t.fit, t.grid, t.dof] for k, t in cell.targets.items()
             if math.isfinite(t.hw)}
    hw = {k: cell.targets[k].hw for k in parts}
    free = [s for s in pool if s not in cell.designs]
    sloped: set[str] = set()
    while _excess(hw, target) > 0:
        options: list[tuple[float, Action, dict]] = []
        for k in parts:
            if k in sloped or hw[k] <= target:
                continue
            a, fit, grid = slope(cell, cell.targets[k])
            if a is None:
                continue
            p = dict(parts, **{k: [*parts[k][:2], fit, grid, parts[k][4]]})
            options.append((0.0, a, p))
        if free:
            a = new_seed(cell, free[0])
            if a is not None:
                # One more seed; its curve sampled across the slopes adds no grid variance.
                p = {k: [v[0] + 1, v[1], v[2], v[3] * v[0] / (v[0] + 1), v[4] + 1]
                     for k, v in parts.items()}
                options.append((0.0, a, p))
        best = None
        for _, a, p in options:
            after = {k: halfwidth(*v) for k, v in p.items()}
            a.gain = _excess(hw, target) - _excess(after, target)
            a.cost = cost(a.points)
            useful = a.gain > MIN_GAIN * target or (a.gain > 0 and _excess(after, target) == 0)
            if useful and len(a.points) + used <= cap:
                score = a.gain / max(a.cost, 1e-300)
                if best is None or score > best[0]:
                    best = (score, a, p, after)
        if best is None:
            break
        _, a, parts, hw = best
        take(a)
        if a.kind == "slope":
            sloped.add(a.target)
        else:
            free.pop(0)
    if out:
        return out, ""
    if blocked:
        return out, ("the λ range cannot grow " + " or ".join(blocked) +
                     (" (no bounds given)" if bounds is None else " (at its bounds)"))
    if _excess(hw, target) > 0:
        k = max(hw, key=hw.get)
        return out, (f"{k} half-width {hw[k]:.3g} > {target:g}: no λ point or seed left that "
                     "would narrow it" + ("" if free else " (seed pool used up)"))
    return out, ""
