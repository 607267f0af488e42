"""A spec's `[refine]` section: closed-loop refinement of a rule study (Ray-free).

    [refine]
    target = 0.15      # 95% half-width in ln λ for λ*, the onset and the collapse edge, per cell
    budget = 3e6       # member-steps, every member in the spec's cells (its grid included)
    rounds = 6         # at most, after the grid
    seeds = [0, 1, 2, 3, 4, 5]   # the seeds a cell may grow into (default: the grid's + 3)
    range = [1e-4, 10]           # the λ (in the grid's decay unit) points may reach
                                 # (default: the grid's own range)

Each round is a plain experiment of the study (`exp-NNN`), planned from explicit points
(`Spec.points`), so resume, status, export/import and the analysis see ordinary members;
what each round proposed, spent and reached is recorded in study.json (`refine`).
The loop refines the cells of the spec's own grid: a spec that extends a study (an
imported one, an earlier sitting's) with new cells spends its rounds and its budget on
those, and the study's other cells are neither proposed to nor counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from trainer.config import MAX_INT
from trainer.errors import SpecError

KEYS = ("target", "budget", "rounds", "seeds", "range")


@dataclass(frozen=True)
class Refine:
    budget: float  # member-steps
    target: float = 0.15  # 95% half-width in ln λ
    rounds: int = 6
    seeds: tuple[int, ...] = ()  # () : the grid's seeds and three more
    range: tuple[float, float] | None = None  # in the grid's decay unit

    def as_dict(self) -> dict[str, Any]:
        return dict(target=self.target, budget=self.budget, rounds=self.rounds,
                    seeds=list(self.seeds), range=list(self.range) if self.range else None)


def _num(t: dict[str, Any], k: str, default: Any, *, lo: float, integer: bool = False,
         strict: bool = True) -> Any:
    v = t.get(k, default)
    ok = (isinstance(v, int) if integer else isinstance(v, int | float)) \
        and not isinstance(v, bool) and math.isfinite(v) and (v > lo if strict else v >= lo)
    if not ok or (integer and v > MAX_INT):
        kind = "an integer" if integer else "a number"
        raise SpecError(f"refine.{k}", f"got {v!r}; allowed: {kind} "
                        f"{'>' if strict else '>='} {lo:g}")
    return v


def parse_refine(t: Any) -> Refine | None:
    """The `[refine]` table checked (one line naming the key), or None without one."""
    if t is None:
        return None
    if not isinstance(t, dict):
        raise SpecError("refine", "allowed: a table with " + ", ".join(KEYS))
    odd = sorted(set(t) - set(KEYS))
    if odd:
        raise SpecError(f"refine.{odd[0]}", f"unknown key; allowed: {', '.join(KEYS)}")
    if "budget" not in t:
        raise SpecError("refine.budget", "missing; allowed: the member-steps all rounds may "
                        "spend together, e.g. budget = 3e6")
    seeds = t.get("seeds", [])
    if not (isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool)
                                            and 0 <= s <= MAX_INT for s in seeds)
            and len(set(seeds)) == len(seeds)):
        raise SpecError("refine.seeds", f"got {str(seeds)[:40]}; allowed: a list of distinct "
                        "non-negative integers")
    rng = t.get("range")
    if rng is not None and not (
            isinstance(rng, list) and len(rng) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool)
                    and math.isfinite(x) and x > 0 for x in rng) and rng[0] < rng[1]):
        raise SpecError("refine.range", f"got {str(rng)[:40]}; allowed: [lo, hi], "
                        "0 < lo < hi, in the grid's decay unit")
    return Refine(budget=float(_num(t, "budget", None, lo=0)),
                  target=float(_num(t, "target", Refine.target, lo=0)),
                  rounds=int(_num(t, "rounds", Refine.rounds, lo=0, integer=True, strict=False)),
                  seeds=tuple(seeds), range=(float(rng[0]), float(rng[1])) if rng else None)
