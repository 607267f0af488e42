"""The two edges of the good region of λ, per seed and then per cell.

On tasks that grok (the seed task among them) the λ axis has two edges that follow
different laws, and a single optimum between them mixes the two:

* onset: the smallest λ at which test accuracy first reaches half of the cell's best
  (scanning λ upwards). Generalization needs enough total decay, so this edge moves
  with the run's length.
* collapse: the λ above the seed's best train accuracy at which train accuracy first
  falls below half of its plateau (the seed's maximum): decay too strong to fit the
  training set, roughly fixed in per-step decay.

Both come from the seed's fitted curves (`_curve`, 7 λ or more), else are interpolated
linearly in ln λ between grid points. An edge outside the grid is censored: onset below
the smallest λ (test accuracy is already high there) or collapse above the largest
(train accuracy never falls); the cell then reports no value for it, and the bound in
`*_censored`. Cell values are means over seeds with the same interval as λ* (pooled seed
spread floored at the fits' own variance, plus the grid where unresolved; see `_best`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import _curve
from analysis._best import _cross, cell_interval, pooled_sd, step_of

EDGES = ("onset", "collapse")
FRACTION = 0.5  # of the cell's best test accuracy (onset) / the seed's train plateau


def onset(x: np.ndarray, test: np.ndarray, best: float) -> tuple[float, str]:
    """(ln λ where test accuracy first reaches FRACTION·best, censoring: '', 'below', 'never')."""
    thr = FRACTION * best
    hit = np.flatnonzero(test >= thr)
    if not len(hit):
        return math.nan, "never"
    j = int(hit[0])
    if j == 0:
        return math.nan, "below"
    return _cross(x[j - 1], test[j - 1], x[j], test[j], thr), ""


def collapse(x: np.ndarray, train: np.ndarray) -> tuple[float, str]:
    """(ln λ where train accuracy falls below FRACTION of its plateau, censoring: '', 'above')."""
    i = int(np.argmax(train))
    thr = FRACTION * train[i]
    fall = np.flatnonzero(train[i:] < thr)
    if not len(fall):
        return math.nan, "above"
    k = i + int(fall[0])
    return _cross(x[k - 1], train[k - 1], x[k], train[k], thr), ""


def seed_edges(runs: pd.DataFrame, cells: pd.DataFrame, estimator: str = "curve"
               ) -> pd.DataFrame:
    """One row per (cell, seed): ln λ of each edge, its grid variance and its censoring.
    `curve` takes both from the seed's fitted curves (`_curve`, 7 λ or more); otherwise
    they are interpolated between grid points (grid variance h²/12)."""
    best = cells.set_index("cell")["best_acc"]
    pos = runs[(runs["lam"] > 0) & np.isfinite(runs["final_test_acc"])]
    has_train = "final_train_acc" in pos and pos["final_train_acc"].notna().any()
    rows = []
    for (cell, seed), g in pos.groupby(["cell", "seed"], sort=False):
        g = g.groupby("lam")[["final_test_acc", *(["final_train_acc"] if has_train else [])]]
        g = g.mean().sort_index()
        if len(g) < 3:
            continue
        x = np.log(g.index.to_numpy(float))
        test = g["final_test_acc"].to_numpy(float)
        train = g["final_train_acc"].to_numpy(float) if has_train else None
        if estimator == "curve" and len(x) >= _curve.MIN_POINTS:
            f = _curve.fit_seed(x, test, train)
            rows.append(dict(cell=cell, seed=seed, **{k: f[k] for k in _COLS[2:]}))
            continue
        v = step_of(x) ** 2 / 12
        on, on_c = onset(x, test, float(best[cell]))
        co, co_c = (collapse(x, train) if train is not None
                    else (math.nan, "no train accuracy"))
        rows.append(dict(cell=cell, seed=seed, ln_onset=on, onset_censored=on_c,
                         onset_fit_var=math.nan, onset_grid_var=v, ln_collapse=co,
                         collapse_censored=co_c, collapse_fit_var=math.nan,
                         collapse_grid_var=v))
    return pd.DataFrame(rows, columns=list(_COLS))


_COLS = ("cell", "seed", "ln_onset", "onset_censored", "onset_fit_var", "onset_grid_var",
         "ln_collapse", "collapse_censored", "collapse_fit_var", "collapse_grid_var")


def cell_edges(per: pd.DataFrame, cells: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Per cell, each edge: λ and interval (NaN when any seed's edge is censored), the
    censoring, d at the edge, and λ*/λ_collapse. Also the pooled seed spreads."""
    out = cells[["cell"]].copy()
    pooled = {}
    for e in EDGES:
        s, dof = pooled_sd(per[per[f"{e}_censored"] == ""], f"ln_{e}")
        pooled[e] = {"sd_ln": s, "dof": dof}
        vals = []
        for _, c in cells.iterrows():
            mine = per[per["cell"] == c["cell"]]
            cens = sorted(set(mine[f"{e}_censored"]) - {""})
            ci = cell_interval(mine[f"ln_{e}"], s, dof,
                               float(mine[f"{e}_grid_var"].mean()) if len(mine) else math.nan,
                               float(mine[f"{e}_fit_var"].mean()) if len(mine) else math.nan)
            if cens or not len(mine):
                ci = dict(mean=math.nan, se=math.nan, lo=math.nan, hi=math.nan)
            vals.append({f"lambda_{e}": math.exp(ci["mean"]),
                         f"lambda_{e}_ci_low": math.exp(ci["lo"]),
                         f"lambda_{e}_ci_high": math.exp(ci["hi"]),
                         f"se_ln_{e}": ci["se"], f"{e}_censored": ",".join(cens),
                         f"n_{e}_seeds": int(mine[f"ln_{e}"].count())})
        out = out.join(pd.DataFrame(vals, index=cells.index))
    # Per-step decay at each edge: within a cell d is proportional to λ.
    f = cells["d_star"] / cells["lambda_star"]
    for e in EDGES:
        out[f"d_{e}"] = f * out[f"lambda_{e}"]
    out["star_over_collapse"] = cells["lambda_star"] / out["lambda_collapse"]
    return out, pooled
