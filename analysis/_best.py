"""Per cell: accuracy against λ over seeds, and the best λ as a robust estimate.

The seed task has a broad plateau (a wide range of λ scores nearly the same),
so a bare grid argmax jumps around with seed noise. Reported instead, all in
log λ: the plateau's left and right edges (where the mean curve crosses
best - tol, interpolated between grid points), its log-center, and the argmax
of a Gaussian-kernel smoothing of the mean curve; each with a percentile
bootstrap interval over seeds (resample seeds within the cell, recompute the
mean curve and the estimates). λ = 0 cannot sit in log space: it is the
cell's baseline, reported beside the curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis._schema import DECAY_UNITS

_SHORT = {"weight_decay": "wd", "decay_per_step": "d", "lambda_norm": "lambda_norm"}
ESTIMATES = ("lo", "hi", "center", "smooth")


@dataclass(frozen=True)
class Estimate:
    lo: float  # ln λ of the plateau's left edge
    hi: float
    lo_cens: bool  # the plateau reaches the end of the grid: the edge is unknown
    hi_cens: bool
    smooth: float  # ln λ at the smoothed curve's maximum
    best: float  # the best mean accuracy on the grid
    imax: int

    @property
    def center(self) -> float:
        return (self.lo + self.hi) / 2


def _cross(x0: float, y0: float, x1: float, y1: float, thr: float) -> float:
    return x0 + (thr - y0) / (y1 - y0) * (x1 - x0) if y1 != y0 else (x0 + x1) / 2


def plateau(x: np.ndarray, y: np.ndarray, tol: float) -> tuple[float, float, bool, bool, int]:
    """Contiguous run of grid points within tol of the max, edges interpolated."""
    i = int(np.argmax(y))
    thr = y[i] - tol
    j, k = i, i
    while j > 0 and y[j - 1] >= thr:
        j -= 1
    while k < len(y) - 1 and y[k + 1] >= thr:
        k += 1
    lo = x[0] if j == 0 else _cross(x[j - 1], y[j - 1], x[j], y[j], thr)
    hi = x[-1] if k == len(y) - 1 else _cross(x[k], y[k], x[k + 1], y[k + 1], thr)
    return lo, hi, j == 0, k == len(y) - 1, i


def kernel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fine grid, Gaussian weights fine x grid) for smoothing curves over x."""
    h = 1.5 * float(np.median(np.diff(x))) if len(x) > 1 else 1.0
    fine = np.linspace(x[0], x[-1], 256) if len(x) > 1 else x.copy()
    return fine, np.exp(-0.5 * ((fine[:, None] - x[None, :]) / h) ** 2)


def smooth_argmax(Y: np.ndarray, fine: np.ndarray, K: np.ndarray) -> np.ndarray:
    """ln λ at the maximum of each row of Y (curves over x, NaN = missing) smoothed by K."""
    ok = np.isfinite(Y)
    with np.errstate(invalid="ignore", divide="ignore"):
        sm = (np.where(ok, Y, 0.0) @ K.T) / (ok.astype(float) @ K.T)
    return fine[np.argmax(np.nan_to_num(sm, nan=-np.inf), axis=1)]


def estimate(x: np.ndarray, y: np.ndarray, tol: float) -> Estimate:
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    lo, hi, lc, hc, i = plateau(x, y, tol)
    fine, K = kernel(x)
    return Estimate(lo, hi, lc, hc, float(smooth_argmax(y[None], fine, K)[0]), float(y[i]), i)


def _boot(M: np.ndarray, x: np.ndarray, tol: float, n: int, rng: np.random.Generator
          ) -> dict[str, np.ndarray]:
    """Bootstrap replicates (ln λ) of each estimate; M is seeds x λ (NaN = missing)."""
    S = M.shape[0]
    take = M[rng.integers(0, S, size=(n, S))]  # n x S x L
    cnt = np.isfinite(take).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        Y = np.nansum(take, axis=1) / cnt
    out = {k: np.full(n, np.nan) for k in ESTIMATES}
    for r in range(n):
        ok = np.isfinite(Y[r])
        if ok.any():
            lo, hi, *_ = plateau(x[ok], Y[r, ok], tol)
            out["lo"][r], out["hi"][r], out["center"][r] = lo, hi, (lo + hi) / 2
    fine, K = kernel(x)
    out["smooth"] = smooth_argmax(Y, fine, K)
    return out


def _edge(e: Estimate, n_lam: int, lam_min: float, lam_max: float, base: float, tol: float
          ) -> tuple[str, str]:
    if math.isfinite(base) and base > e.best + tol:
        return "zero", f"λ = 0 beats every λ > 0 ({base:.3f} vs {e.best:.3f}): no decay is best"
    if n_lam == 1:
        return "both", "one λ only: search a range of λ around it"
    if e.lo_cens and e.hi_cens:
        return "both", f"plateau spans the whole grid: extend below {lam_min:.3g} and above " \
                       f"{lam_max:.3g}"
    if e.lo_cens:
        ok0 = math.isfinite(base) and base >= e.best - tol
        why = " (λ = 0 also scores within tol)" if ok0 else ""
        return "low", f"best at the low edge: extend below {lam_min:.3g}{why}"
    if e.hi_cens:
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


def _cell(g: pd.DataFrame, metric: str, tol: float, n_boot: int, rng: np.random.Generator
          ) -> dict[str, object]:
    pos, zero = g[g["lam"] > 0], g[g["lam"] == 0]
    # Replicates: seeds, and data seeds where they vary on their own.
    rep = ["seed", "data_seed"] if "data_seed" in g and g["data_seed"].notna().all() else ["seed"]
    mat = pos.pivot_table(index=rep, columns="lam", values=metric, aggfunc="mean")
    x, M = np.log(mat.columns.to_numpy(float)), mat.to_numpy(float)
    base = float(zero[metric].mean()) if len(zero) else math.nan
    row: dict[str, object] = dict(n_runs=len(g), n_seeds=len(g.drop_duplicates(rep)),
                                  n_lambdas=len(x),
                                  baseline_acc=base)
    if not len(x):
        return {**row, "edge": "zero", "extend": "no λ > 0 in this cell"}
    e = estimate(x, np.nanmean(M, axis=0), tol)
    lam_min, lam_max = float(np.exp(x[0])), float(np.exp(x[-1]))
    edge, extend = _edge(e, len(x), lam_min, lam_max, base, tol)
    row.update(lambda_min=lam_min, lambda_max=lam_max, best_acc=e.best,
               lambda_argmax=float(np.exp(x[e.imax])), edge=edge, extend=extend)
    boot = _boot(M, x, tol, n_boot, rng) if M.shape[0] > 1 else None
    for k in ESTIMATES:
        row[f"lambda_{k}"] = math.exp(getattr(e, k))
        lo, hi = np.nanpercentile(boot[k], [2.5, 97.5]) if boot else (math.nan, math.nan)
        row[f"lambda_{k}_ci_low"], row[f"lambda_{k}_ci_high"] = math.exp(lo), math.exp(hi)
    # Spread of ln(center) over seeds: the weight of this cell in the fit.
    row["sd_ln_center"] = float(np.nanstd(boot["center"], ddof=1)) if boot else math.nan
    row["grid_step_ln"] = float(np.median(np.diff(x))) if len(x) > 1 else math.nan
    # The same optimum in every unit: within a cell the units are proportional.
    for u in DECAY_UNITS:
        f = float((pos[u] / pos["lam"]).median())
        for sfx in ("", "_ci_low", "_ci_high"):
            row[f"{_SHORT[u]}_star{sfx}"] = f * row[f"lambda_center{sfx}"]  # type: ignore[operator]
    return row


def best_lambda(runs: pd.DataFrame, keys: list[str], metric: str = "final_test_acc",
                tol: float = 0.02, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """One row per cell: keys, plateau edges and center, smoothed optimum, intervals, flags."""
    rng = np.random.default_rng(seed)
    good = runs[np.isfinite(runs[metric])]
    axes = [a for a in ("lr", "batch_size", "train_size", "T") if a in runs]
    rows = []
    for cell, g in good.groupby("cell", sort=False):
        head = {"cell": cell, **{k: g[k].iloc[0] for k in keys},
                **{a: float(g[a].median()) for a in axes if a not in keys}}
        rows.append({**head, **_cell(g, metric, tol, n_boot, rng)})
    out = pd.DataFrame(rows)
    # Cells without λ > 0 have no estimates: keep every column anyway, as NaN.
    for c in (*(f"lambda_{k}{s}" for k in ESTIMATES for s in ("", "_ci_low", "_ci_high")),
              *(f"{u}_star{s}" for u in _SHORT.values() for s in ("", "_ci_low", "_ci_high")),
              "lambda_min", "lambda_max", "best_acc", "lambda_argmax", "sd_ln_center",
              "grid_step_ln"):
        if c not in out:
            out[c] = np.nan
    return out
