"""Calibration of the analysis on synthetic studies with a known truth.

Each replicate is a fresh synthetic study (`tests/analysis/synth.py`: two-edge accuracy
curves over ln λ, seed shifts, accuracy noise) of 7 cells one axis at a time (b, B, T a
factor 4 each way), 3 seeds, λ on a √2 grid, analyzed by the same pipeline as
`wdsweep analyze` (curve estimator, cell random effect, Holm over 3 targets × 4 rules;
the sensitivity reruns are left out: they do not change the verdict, only call it
fragile). Per truth it counts how often each verdict is reached, and the coverage of the
95% intervals of λ*, the onset and collapse edges (per cell, against the noiseless
curve's values) and of the λ* exponents (per axis) -- with the per-seed noise the same
in every cell (``homoscedastic``), different per cell (``heteroscedastic``: seed shift sd
0.1-0.5 and accuracy noise 0.02-0.08 across the cells), or one cell 4x noisier than the
rest (``noisy_cell``)::

    python benchmarks/calibrate_verdict.py --condition homoscedastic --reps 40
    python benchmarks/calibrate_verdict.py --condition heteroscedastic --reps 40
    python benchmarks/calibrate_verdict.py --condition noisy_cell --reps 40

Prints markdown tables and the wall time.
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import _estimate, load  # noqa: E402
from analysis._summary import summarize  # noqa: E402
from tests.analysis import synth  # noqa: E402

TRUTHS = {"constant": (0.0, 0.0, 0.0), "sqrt": (0.5, -0.5, -0.5),
          "epoch_timescale": (1.0, -1.0, 0.0), "fraction_of_run": (1.0, -1.0, -1.0)}
CONDITIONS = ("homoscedastic", "heteroscedastic", "noisy_cell")
TARGETS = ("lambda_star", "onset", "collapse")


def study(e: tuple[float, float, float], condition: str, rep: int) -> pd.DataFrame:
    """One replicate: per cell its own seed-shift sd and accuracy noise."""
    n = len(synth.ONE_AT_A_TIME)
    if condition == "homoscedastic":
        sd, noise = [0.3] * n, [0.05] * n
    elif condition == "heteroscedastic":
        sd, noise = list(np.linspace(0.1, 0.5, n)), list(np.linspace(0.02, 0.08, n))
        order = np.random.default_rng(1000 + rep).permutation(n)  # which cell is noisy
        sd, noise = [sd[i] for i in order], [noise[i] for i in order]
    else:
        k = rep % n
        sd = [1.2 if i == k else 0.3 for i in range(n)]
        noise = [0.1 if i == k else 0.05 for i in range(n)]
    parts = [synth.make_study(e, cells=[c], seeds=3, noise=noise[i], seed_sd=sd[i],
                              seed=10_000 * rep + i)
             for i, c in enumerate(synth.ONE_AT_A_TIME)]
    return pd.concat(parts, ignore_index=True)


def truth(e: tuple[float, float, float], b: float, B: float, T: float) -> dict[str, float]:
    x_on = math.log(synth.d_edge(synth.D_ONSET, e, b, B, T) / synth.LR)
    d_col = synth.d_edge(synth.D_ONSET * math.exp(synth.GAP), e, b, B, T)
    return synth.true_targets(x_on, math.log(d_col / synth.LR))


def one(e: tuple[float, float, float], condition: str, rep: int) -> dict:
    f = load(study(e, condition, rep))
    runs, _ = summarize(f.hist, f.keys, f.curves)
    cells, _, fit = _estimate.estimate(runs, f.keys)
    out: dict = {"verdict": (fit["verdict"]["rule"], fit["verdict"]["strength"])}
    for t in TARGETS:
        col = "lambda_star" if t == "lambda_star" else f"lambda_{t}"
        hit = n = 0
        for _, c in cells.iterrows():
            tr = truth(e, c["batch_size"], c["train_size"], c["T"])[t]
            lo, hi = c[f"{col}_ci_low"], c[f"{col}_ci_high"]
            if np.isfinite(lo) and np.isfinite(hi):
                hit += math.log(lo) <= tr <= math.log(hi)
                n += 1
        out[t] = (hit, n)
    ex = fit["exponents"]
    out["exponents"] = (sum(ex[a]["ci_low"] is not None and ex[a]["ci_low"] <= v <=
                            ex[a]["ci_high"] for a, v in zip("bBT", e)), 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--condition", choices=CONDITIONS, default="homoscedastic")
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--truths", nargs="+", choices=list(TRUTHS), default=list(TRUTHS))
    a = ap.parse_args()
    t0 = time.perf_counter()
    verdicts: dict[str, collections.Counter] = {}
    cover: dict[str, dict[str, list[int]]] = {}
    for name in a.truths:
        verdicts[name] = collections.Counter()
        cover[name] = {k: [0, 0] for k in (*TARGETS, "exponents")}
        for rep in range(a.reps):
            r = one(TRUTHS[name], a.condition, rep)
            rule, strength = r["verdict"]
            verdicts[name][f"{rule} ({strength})" if rule else "inconclusive"] += 1
            for k in cover[name]:
                cover[name][k][0] += r[k][0]
                cover[name][k][1] += r[k][1]
    print(f"## {a.condition}: {a.reps} replicates per truth, 7 cells, 3 seeds\n")
    print("| truth | " + " | ".join(f"{k} coverage" for k in (*TARGETS, "exponents")) + " |")
    print("|---" * 5 + "|")
    for name in a.truths:
        cells = [f"{h / n:.3f} ({h}/{n})" if n else "–" for h, n in cover[name].values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n| truth | verdicts reached (count of " + str(a.reps) + ") |\n|---|---|")
    for name in a.truths:
        s = ", ".join(f"{k}: {v}" for k, v in verdicts[name].most_common())
        print(f"| {name} | {s} |")
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
