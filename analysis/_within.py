"""The within-run onset: λ·(step at which test accuracy first reaches half its best).

No λ grid is involved: each run that learns gives its own number. If generalization needs
a fixed total decay K = λ·steps (study 2 of docs/results.md), the product is the same for
every λ on the rising side of a cell, and the λ at which a run of S steps would just reach
half its best at its end is K/S. That λ, times lr, is the within-run onset's per-step
decay d_within = lr·K/S, fitted against b, B, T like λ* and the edges (a fixed K makes
d_within ∝ b/(B·T), the fraction-of-run rule).

Which runs: λ > 0, best test accuracy ≥ 0.5 (the run learned), λ ≤ the cell's λ* (the
rising side, where total decay governs; past λ* the collapse does), and half its best
reached after its first evaluation (else it may have been reached earlier: censored).
Per seed: the mean of ln(λ·step) over its runs; per cell: the mean over seeds, with the
seed spread pooled over cells (as for λ*, with no grid term).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis._best import LOW_ACC, cell_interval, pooled_sd

NEED = ("step_to_half_best", "best_test_acc", "first_step")


def seed_within(runs: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, seed): ln(λ·step to half best), averaged over its eligible runs."""
    cols = ["cell", "seed", "ln_within", "n_within_runs"]
    if any(c not in runs for c in NEED) or not runs["step_to_half_best"].notna().any():
        return pd.DataFrame(columns=cols)
    star = runs["cell"].map(cells.set_index("cell")["lambda_star"])
    ok = ((runs["lam"] > 0) & (runs["best_test_acc"] >= LOW_ACC)
          & (runs["lam"] <= star * (1 + 1e-9))
          & (runs["step_to_half_best"] > runs["first_step"]))
    r = runs[ok].assign(ln_within=lambda d: np.log(d["lam"] * d["step_to_half_best"]))
    g = r.groupby(["cell", "seed"], sort=False)["ln_within"]
    out = g.agg(ln_within="mean", n_within_runs="size").reset_index()
    return out[cols]


def cell_within(per: pd.DataFrame, cells: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Per cell: the total decay λ·step (geometric mean, interval), d_within = lr·K/S and
    its se in ln; the pooled seed spread."""
    s, dof = pooled_sd(per, "ln_within")
    rows = []
    for _, c in cells.iterrows():
        mine = per[per["cell"] == c["cell"]]
        ci = cell_interval(mine["ln_within"], s, dof, 0.0)
        steps = c["T"] * c["train_size"] / c["batch_size"] if "T" in c else math.nan
        # lr·λ is the per-step decay: d_star / lambda_star holds lr in the study's unit.
        f = c["d_star"] / c["lambda_star"] if c.get("lambda_star", 0) else math.nan
        rows.append({"total_decay_within": math.exp(ci["mean"]),
                     "total_decay_within_ci_low": math.exp(ci["lo"]),
                     "total_decay_within_ci_high": math.exp(ci["hi"]),
                     "lambda_within": math.exp(ci["mean"]) / steps,
                     "d_within": f * math.exp(ci["mean"]) / steps, "se_ln_within": ci["se"],
                     "n_within_seeds": int(mine["ln_within"].count()),
                     "n_within_runs": int(mine["n_within_runs"].sum())})
    return pd.DataFrame(rows, index=cells.index), {"sd_ln": s, "dof": dof}
