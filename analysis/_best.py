"""Per cell: accuracy against λ over seeds, and the best λ -- per seed first, then the cell.

Per seed, ln λ* comes from a fit of the seed's whole test-accuracy curve over ln λ
(`_curve`: the centre of the fitted top), so no single point and no grid step decides
it; a seed with fewer than 7 λ falls back to the smoothed argmax (a Gaussian one grid
step wide, the earlier estimator, kept as `estimator="smoothed"` for the sensitivity
report). Locating the optimum per seed makes the seed-to-seed spread real. The cell's
ln λ* is the mean over seeds, with a variance of two parts:

* seeds: the spread of ln λ* between seeds, pooled over cells (s²_pool / n_seeds), never
  below the seeds' own curve-fit variance / n_seeds -- with 2-3 seeds a cell's own spread
  is too noisy to weigh cells by, and a lucky small pool is not trusted beyond the fits;
* grid: only where the data leave a transition unresolved (no grid point on its slope),
  the gap's uniform variance, shared by the seeds (the smoothed estimator: h²/12 always).

The plateau (every λ whose mean accuracy is within a relative `tol` of the best) is
reported alongside; λ = 0 cannot sit in log space: it is the cell's baseline.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from analysis import _curve
from analysis._schema import DECAY_UNITS

_SHORT = {"weight_decay": "wd", "decay_per_step": "d", "lambda_norm": "lambda_norm"}
LEVEL = 0.95
LOW_ACC = 0.5  # a cell whose best test accuracy stays below this has not learned the task


def _cross(x0: float, y0: float, x1: float, y1: float, thr: float) -> float:
    return x0 + (thr - y0) / (y1 - y0) * (x1 - x0) if y1 != y0 else (x0 + x1) / 2


def plateau(x: np.ndarray, y: np.ndarray, tol: float) -> tuple[float, float, bool, bool, int]:
    """Contiguous grid points within a relative tol of the max, edges interpolated."""
    i = int(np.argmax(y))
    thr = y[i] * (1.0 - tol)
    j, k = i, i
    while j > 0 and y[j - 1] >= thr:
        j -= 1
    while k < len(y) - 1 and y[k + 1] >= thr:
        k += 1
    lo = x[0] if j == 0 else _cross(x[j - 1], y[j - 1], x[j], y[j], thr)
    hi = x[-1] if k == len(y) - 1 else _cross(x[k], y[k], x[k + 1], y[k + 1], thr)
    return lo, hi, j == 0, k == len(y) - 1, i


def step_of(x: np.ndarray) -> float:
    """The grid step in ln λ (median spacing); NaN for a single λ."""
    return float(np.median(np.diff(x))) if len(x) > 1 else math.nan


def smooth_argmax(x: np.ndarray, y: np.ndarray) -> float:
    """ln λ at the maximum of y over x after a Gaussian smoothing one grid step wide."""
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) == 1:
        return float(x[0])
    fine = np.linspace(x[0], x[-1], 512)
    K = np.exp(-0.5 * ((fine[:, None] - x[None, :]) / step_of(x)) ** 2)
    return float(fine[np.argmax(K @ y / K.sum(axis=1))])


ESTIMATORS = ("curve", "smoothed")


def seed_optima(runs: pd.DataFrame, metric: str = "final_test_acc",
                estimator: str = "curve") -> pd.DataFrame:
    """One row per (cell, seed): ln λ*, its grid variance, whether it sits at the end of
    the grid, and the estimator used. `curve` fits the whole curve (`_curve`; a seed with
    fewer than 7 λ falls back to `smoothed`, the smoothed argmax, whose grid variance is
    h²/12 whatever the data)."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    rows = []
    pos = runs[(runs["lam"] > 0) & np.isfinite(runs[metric])]
    # The train curve rides along so that `_edges` finds this seed's fit already made.
    train = "final_train_acc" if metric == "final_test_acc" and "final_train_acc" in pos \
        and pos["final_train_acc"].notna().any() else None
    for (cell, seed), g in pos.groupby(["cell", "seed"], sort=False):
        both = g.groupby("lam")[[metric, *([train] if train else [])]].mean().sort_index()
        g = both[metric]
        x = np.log(g.index.to_numpy(float))
        if len(x) < 3:
            continue
        h = step_of(x)
        if estimator == "curve" and len(x) >= _curve.MIN_POINTS:
            f = _curve.fit_seed(x, g.to_numpy(float),
                                both[train].to_numpy(float) if train else None)
            u, var, how = float(f["ln_lambda_star"]), float(f["star_grid_var"]), "curve"
            fv = float(f["star_fit_var"])
        else:
            u, var, how = smooth_argmax(x, g.to_numpy(float)), h**2 / 12, "smoothed"
            fv = math.nan
        rows.append(dict(cell=cell, seed=seed, ln_lambda_star=u, star_grid_var=var,
                         star_fit_var=fv, estimator=how,
                         censored=bool(u <= x[0] + h / 2 or u >= x[-1] - h / 2)))
    return pd.DataFrame(rows, columns=["cell", "seed", "ln_lambda_star", "star_grid_var",
                                       "star_fit_var", "estimator", "censored"])


def pooled_sd(per: pd.DataFrame, col: str) -> tuple[float, int]:
    """(pooled within-cell sd of `col`, its degrees of freedom) over cells with ≥ 2 values."""
    v = per.dropna(subset=[col]).groupby("cell")[col]
    dof = int((v.count() - 1).clip(lower=0).sum())
    if dof == 0:
        return math.nan, 0
    ss = float(v.apply(lambda s: ((s - s.mean()) ** 2).sum()).sum())
    return math.sqrt(ss / dof), dof


def cell_interval(lns: pd.Series, s_pool: float, dof: int, grid_var: float,
                  fit_var: float = math.nan) -> dict[str, float]:
    """Mean of ln values over seeds and its interval: the seeds' scatter (s²_pool/n, never
    below the curve fits' own mean variance/n: a lucky small spread from 2-3 seeds is not
    trusted beyond what each seed's fit says) plus the grid variance the seeds share (it
    does not shrink with more seeds)."""
    n = int(lns.count())
    if n == 0:
        return dict(mean=math.nan, se=math.nan, lo=math.nan, hi=math.nan)
    seeds = s_pool**2 if dof else 0.0
    seeds = max(seeds, fit_var) if math.isfinite(fit_var) else seeds
    var = seeds / n + (grid_var if math.isfinite(grid_var) else 0.0)
    se = math.sqrt(var) if var > 0 else math.nan  # one resolved seed: no interval
    q = float(stats.t.ppf(0.5 + LEVEL / 2, dof)) if dof else float(stats.norm.ppf(0.975))
    m = float(lns.mean())
    return dict(mean=m, se=se, lo=m - q * se, hi=m + q * se)


def _flag(best: float, base: float, lo_c: bool, hi_c: bool, n_lam: int, lam_min: float,
          lam_max: float) -> tuple[str, str]:
    """Where the grid must grow: edge ('zero', 'low', 'high', 'both' or '') and advice."""
    if math.isfinite(base) and base > best:
        return "zero", f"λ = 0 beats every λ > 0 ({base:.3f} vs {best:.3f}): no decay is best"
    if n_lam < 3:
        return "both", "fewer than 3 λ > 0: search a range of λ around them"
    if lo_c and hi_c:
        return "both", (f"the best λ spans the whole grid: extend below {lam_min:.3g} and "
                        f"above {lam_max:.3g}")
    if lo_c:
        return "low", f"best at the low edge: extend below {lam_min:.3g}"
    if hi_c:
        return "high", f"best at the high edge: extend above {lam_max:.3g}"
    return "", ""


def curve_table(runs: pd.DataFrame, metrics: tuple[str, ...] = ("final_test_acc",
                "final_train_acc")) -> pd.DataFrame:
    """Mean and 95% t-band over seeds of each metric at each (cell, λ), λ = 0 included."""
    rows = []
    for m in (m for m in metrics if m in runs):
        g = runs.dropna(subset=[m]).groupby(["cell", "lam"])[m]
        t = g.agg(["mean", "std", "count"]).reset_index()
        half = stats.t.ppf(0.975, np.maximum(t["count"] - 1, 1)) * t["std"] / np.sqrt(t["count"])
        rows.append(t.assign(metric=m, lo=t["mean"] - half, hi=t["mean"] + half, n=t["count"]))
    cols = ["cell", "lam", "metric", "mean", "lo", "hi", "n"]
    return pd.concat(rows, ignore_index=True)[cols] if rows else pd.DataFrame(columns=cols)


def _cell(g: pd.DataFrame, per: pd.DataFrame, metric: str, tol: float, s_pool: float,
          dof: int) -> dict[str, object]:
    pos, zero = g[g["lam"] > 0], g[g["lam"] == 0]
    mean = pos.groupby("lam")[metric].mean().sort_index()
    x, y = np.log(mean.index.to_numpy(float)), mean.to_numpy(float)
    base = float(zero[metric].mean()) if len(zero) else math.nan
    row: dict[str, object] = dict(n_runs=len(g), n_seeds=int(g["seed"].nunique()),
                                  n_lambdas=len(x), baseline_acc=base)
    if not len(x):
        return {**row, "edge": "zero", "extend": "no λ > 0 in this cell", "low_acc": True}
    lo, hi, lo_c, hi_c, i = plateau(x, y, tol)
    h = step_of(x)
    mine = per[per["cell"] == g["cell"].iloc[0]]
    star = cell_interval(mine["ln_lambda_star"], s_pool, dof,
                         float(mine["star_grid_var"].mean()) if len(mine) else math.nan,
                         float(mine["star_fit_var"].mean()) if len(mine) else math.nan)
    # The optimum is at an end when the seeds' mean optimum is within half a step of it.
    lo_c = lo_c and (not math.isfinite(star["mean"]) or star["mean"] <= x[0] + h / 2)
    hi_c = hi_c and (not math.isfinite(star["mean"]) or star["mean"] >= x[-1] - h / 2)
    edge, extend = _flag(float(y[i]), base, lo_c, hi_c, len(x), math.exp(x[0]), math.exp(x[-1]))
    row.update(lambda_min=math.exp(x[0]), lambda_max=math.exp(x[-1]), best_acc=float(y[i]),
               low_acc=bool(y[i] < LOW_ACC), lambda_argmax=math.exp(x[i]),
               lambda_lo=math.exp(lo), lambda_hi=math.exp(hi),
               lambda_center=math.exp((lo + hi) / 2), edge=edge, extend=extend,
               n_seed_optima=int(mine["ln_lambda_star"].count()),
               lambda_star=math.exp(star["mean"]), lambda_star_ci_low=math.exp(star["lo"]),
               lambda_star_ci_high=math.exp(star["hi"]), se_ln_star=star["se"],
               grid_step_ln=h)
    # The same optimum in every unit: within a cell the units are proportional.
    for u in DECAY_UNITS:
        f = float((pos[u] / pos["lam"]).median())
        for sfx in ("", "_ci_low", "_ci_high"):
            row[f"{_SHORT[u]}_star{sfx}"] = f * row[f"lambda_star{sfx}"]  # type: ignore[operator]
    return row


STAR_COLUMNS = (
    "lambda_min", "lambda_max", "best_acc", "lambda_argmax", "lambda_lo", "lambda_hi",
    "lambda_center", "lambda_star", "lambda_star_ci_low", "lambda_star_ci_high", "se_ln_star",
    "grid_step_ln", *(f"{u}_star{s}" for u in _SHORT.values() for s in ("", "_ci_low",
                                                                          "_ci_high")))


def best_lambda(runs: pd.DataFrame, keys: list[str], metric: str = "final_test_acc",
                tol: float = 0.02, estimator: str = "curve"
                ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """(one row per cell, one row per cell and seed, pooled seed spread of ln λ*)."""
    good = runs[np.isfinite(runs[metric])]
    per = seed_optima(good, metric, estimator)
    s_pool, dof = pooled_sd(per[~per["censored"].astype(bool)], "ln_lambda_star")
    axes = [a for a in ("lr", "batch_size", "train_size", "T", "decay_steps") if a in runs]
    rows = []
    for cell, g in good.groupby("cell", sort=False):
        head = {"cell": cell, **{k: g[k].iloc[0] for k in keys},
                **{a: float(g[a].median()) for a in axes if a not in keys}}
        rows.append({**head, **_cell(g, per, metric, tol, s_pool, dof)})
    out = pd.DataFrame(rows)
    for c in STAR_COLUMNS:  # cells without λ > 0 have no estimates: NaN, never missing
        if c not in out:
            out[c] = np.nan
    return out, per, {"sd_ln_lambda_star": s_pool, "dof": dof}
