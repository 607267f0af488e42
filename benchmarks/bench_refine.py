"""Adaptive refinement (`analysis._refine`) against fixed grids, on a synthetic oracle.

``--oracle``: each replicate is a fresh oracle (`tests/analysis/synth_refine.py`: three
cells, T = 12.5, 50, 200 epochs, two-edge curves whose edges follow the sqrt rule, seed
shift sd 0.1 in ln λ, accuracy noise 0.02; members "train" instantly). From a coarse
initial grid (λ = 0 and ×3 steps from 1e-3 to 2.2, 3 seeds) the refinement loop runs
until it stops (target 0.15 in ln λ, at most 12 rounds, λ within [1e-3, 3]). It is
compared with

* a dense grid at the final resolution: every cell's final seeds on a uniform ln λ grid
  over the same range whose step is the median of the gaps the refinement made (those
  finer than the initial ×3 step), the brief's "same resolution everywhere";
* the coarse grid itself, with the final seeds (what the seeds alone buy), and the ×√2
  grid of the calibration (`benchmarks/calibrate_verdict.py`) with the final seeds;
* the refinement again from another initial grid (×2.5 from 1.6e-3): grid independence.

Reported: member-steps (initial grid included) and their ratio to the dense grid; the
coverage of the true λ*, onset and collapse (ln λ of the noiseless curve) by the 95%
intervals; how often every cell met the target; medians over replicates; agreement of
the two initial grids (|difference| within the two half-widths combined in quadrature)::

    python benchmarks/bench_refine.py --oracle --reps 40

Real training plugs in through `replicate(evaluate, initial, ...)`: any evaluate(points)
-> DataFrame of finished members works (the sweep adds `--real`).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import _refine  # noqa: E402
from tests.analysis.synth_refine import Oracle, log_grid  # noqa: E402

TARGETS = ("opt", "onset", "collapse")
BOUNDS = (1e-3, 3.0)
GRID_A = (1e-3, 3.0, 3.0)  # lo, hi, ratio
GRID_B = (1.6e-3, 3.0, 2.5)
SEEDS0 = (0, 1, 2)


def cost(df: pd.DataFrame, steps: Callable[[dict[str, Any]], float]) -> float:
    return float(sum(steps(r) for r in df.to_dict("records")))


def replicate(evaluate: Callable[[list[dict[str, Any]]], pd.DataFrame], initial: pd.DataFrame,
              *, steps: Callable[[dict[str, Any]], float], target: float, rounds: int,
              budget: float) -> tuple[_refine.Refinement, float]:
    """The refinement loop from `initial`; (its outcome, member-steps in all)."""
    r = _refine.refine(evaluate, initial, budget=budget, rounds=rounds, cell_keys=["T"],
                       seeds=list(range(64)), target=target, steps=steps, bounds=BOUNDS)
    return r, cost(initial, steps) + r.spent


def states(results: pd.DataFrame, steps: Callable[[dict[str, Any]], float], target: float
           ) -> list[_refine.CellState]:
    """The cells as the estimators see `results` (a proposal with no budget)."""
    return _refine.propose(results, cell_keys=["T"], seeds=[], target=target, budget_left=0.0,
                           steps=steps, bounds=BOUNDS).cells


def resolution(results: pd.DataFrame, T: float, initial_step: float) -> float:
    """Median, over the cell's seeds, of the gaps between a seed's adjacent ln λ that are
    finer than the initial step: the spacing each curve was refined to (NaN if none)."""
    mine = results[(results["T"] == T) & (results["weight_decay"] > 0)]
    gaps = [np.diff(np.unique(np.log(g["weight_decay"]))) for _, g in mine.groupby("seed")]
    fine = np.concatenate(gaps) if gaps else np.array([])
    fine = fine[fine < initial_step * (1 - 1e-6)]
    return float(np.median(fine)) if len(fine) else math.nan


def score(cells: list[_refine.CellState], oracle: Oracle) -> dict[str, Any]:
    hit = {t: [0, 0] for t in TARGETS}
    for c in cells:
        truth = oracle.truth(c.cell["T"])
        for t in TARGETS:
            hw, u = c.halfwidths[t], c.estimates[t]
            if math.isfinite(hw):
                hit[t][0] += abs(u - truth[t]) <= hw
                hit[t][1] += 1
    return {"hit": hit, "met": all(c.met for c in cells),
            "widest": max(v for c in cells for v in c.halfwidths.values())}


def one(rep: int, target: float, rounds: int, budget: float) -> dict[str, Any]:
    o = Oracle(rep=rep)
    init = o.grid(log_grid(*GRID_A), SEEDS0)
    ref, spent = replicate(o.evaluate, init, steps=o.steps, target=target, rounds=rounds,
                           budget=budget)
    final = ref.proposals[-1].cells
    out: dict[str, Any] = {"stop": ref.stop, "rounds": len(ref.proposals) - 1,
                           "adaptive": spent, "a": score(final, o),
                           "seeds": [c.seeds for c in final]}
    dense, coarse, sqrt2 = [], [], []
    res = []
    for c in final:
        T, n = c.cell["T"], c.seeds
        h = resolution(ref.results, T, math.log(GRID_A[2]))
        res.append(h)
        h = h if math.isfinite(h) else math.log(GRID_A[2])
        k = int(round(math.log(GRID_A[1] / GRID_A[0]) / h))
        lams = np.exp(np.linspace(math.log(GRID_A[0]), math.log(GRID_A[1]), k + 1))
        one_cell = Oracle(cells=(T,), rep=rep)
        dense.append(one_cell.grid(lams, range(n)))
        coarse.append(one_cell.grid(log_grid(*GRID_A), range(n)))
        sqrt2.append(one_cell.grid(log_grid(GRID_A[0], GRID_A[1], 2**0.5), range(n)))
    for key, parts in (("d", dense), ("c", coarse), ("s", sqrt2)):
        df = pd.concat(parts, ignore_index=True)
        out[key + "_cost"] = cost(df, o.steps)
        out[key] = score(states(df, o.steps, target), o)
    out.update(dense=out["d_cost"], resolution=np.nanmedian(res))
    ref_b, spent_b = replicate(o.evaluate, o.grid(log_grid(*GRID_B), SEEDS0), steps=o.steps,
                               target=target, rounds=rounds, budget=budget)
    agree = [0, 0]
    for ca, cb in zip(final, ref_b.proposals[-1].cells):
        for t in TARGETS:
            ha, hb = ca.halfwidths[t], cb.halfwidths[t]
            if math.isfinite(ha) and math.isfinite(hb):
                agree[0] += abs(ca.estimates[t] - cb.estimates[t]) <= math.hypot(ha, hb)
                agree[1] += 1
    out.update(agree=agree, adaptive_b=spent_b, b=score(ref_b.proposals[-1].cells, o))
    return out


def _cov(rows: list[dict], key: str, t: str) -> str:
    h = sum(r[key]["hit"][t][0] for r in rows)
    n = sum(r[key]["hit"][t][1] for r in rows)
    return f"{h / n:.3f} ({h}/{n})" if n else "–"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--oracle", action="store_true", help="the synthetic oracle (no training)")
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--target", type=float, default=0.15)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--budget", type=float, default=1e9, help="member-steps per replicate")
    a = ap.parse_args()
    t0 = time.perf_counter()
    rows = [one(rep, a.target, a.rounds, a.budget) for rep in range(a.reps)]
    med = statistics.median
    print(f"## bench_refine --oracle: {a.reps} replicates, 3 cells, target {a.target:g}, "
          f"at most {a.rounds} rounds\n")
    print("| design | member-steps (median) | ratio to dense (median) | ratio to ×√2 (median) "
          "| every cell met | λ* coverage | onset coverage | collapse coverage |\n"
          "|---|---|---|---|---|---|---|---|")
    for name, key, cost_key in (("adaptive (×3 start)", "a", "adaptive"),
                                ("adaptive (×2.5 start)", "b", "adaptive_b"),
                                ("dense, final resolution", "d", "d_cost"),
                                ("coarse ×3, final seeds", "c", "c_cost"),
                                ("×√2 grid, final seeds", "s", "s_cost")):
        ratio = med(r[cost_key] / r["dense"] for r in rows)
        vs = med(r[cost_key] / r["s_cost"] for r in rows)
        met = sum(r[key]["met"] for r in rows)
        print(f"| {name} | {med(r[cost_key] for r in rows):.3g} | {ratio:.3f} | {vs:.3f} | "
              f"{met}/{len(rows)} | " + " | ".join(_cov(rows, key, t) for t in TARGETS) + " |")
    stops: dict[str, int] = {}
    for r in rows:
        stops[r["stop"]] = stops.get(r["stop"], 0) + 1
    ag, n = sum(r["agree"][0] for r in rows), sum(r["agree"][1] for r in rows)
    print(f"\nstops: {', '.join(f'{k}: {v}' for k, v in sorted(stops.items()))}; rounds "
          f"median {med(r['rounds'] for r in rows):g} (max {max(r['rounds'] for r in rows)}); "
          f"final resolution median {med(r['resolution'] for r in rows):.3f} in ln λ; "
          f"widest final half-width median {med(r['a']['widest'] for r in rows):.3f}; "
          f"final seeds per cell median {med(n for r in rows for n in r['seeds']):g} "
          f"(range {min(n for r in rows for n in r['seeds'])}-"
          f"{max(n for r in rows for n in r['seeds'])})")
    print(f"two initial grids agree within their intervals: {ag}/{n}"
          f" ({ag / n:.3f})" if n else "two initial grids: nothing to compare")
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
