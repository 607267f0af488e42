"""Where each cell of a study stands for adaptive refinement (`_refine`): per target (λ*,
onset, collapse) its estimate and 95% half-width in ln λ from the analysis' own estimators
(`_estimate.cells_and_seeds`: `_best`, `_edges`, `_curve`), the variance parts they are
made of (seed spread, fit, grid), the fitted transitions that inform it, and -- when it is
not identified -- why, and whether growing the λ range could identify it.

Pure: DataFrames in, dataclasses out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis import _curve, _estimate
from analysis._best import LEVEL, LOW_ACC
from analysis._edges import FRACTION

TARGETS = ("opt", "onset", "collapse")
ALPHA = 1e-3  # "λ changes this accuracy": one-way ANOVA over the λ levels, p below this
LN9 = math.log(9.0)  # a logistic is between 10% and 90% within ±ln 9 widths of its centre
MIN_WIDTH = 0.03  # ln λ: the narrowest slope points are spaced on (a fit at its bound)


@dataclass
class Target:
    """One target of one cell. hw: the estimator's 95% half-width in ln λ (inf when not
    identified); n, s2, dof, fit, grid: the parts of its variance (see `_best.cell_interval`);
    slopes: (centre, width, key) in ln λ of the fitted transitions that set it, `key`
    naming the per-seed fit parameter ('a', 'c', 'k') that places the centre per seed."""

    name: str
    est: float = math.nan
    hw: float = math.inf
    n: int = 0
    s2: float = math.nan
    dof: int = 0
    fit: float = 0.0
    grid: float = 0.0
    why: str = ""  # "" when identified, else the reason, as a person reads it
    extend: str = ""  # "below" | "above" when a wider λ range could identify it
    fill: dict[int, str] = field(default_factory=dict)  # seed -> side it lacks points on
    slopes: list[tuple[float, float, str]] = field(default_factory=list)  # + fit key


@dataclass
class Cell:
    """One cell: its label, axes, targets and per-seed designs (ln λ > 0, sorted) and fits."""

    label: str
    axes: dict[str, Any]
    targets: dict[str, Target]
    designs: dict[int, np.ndarray]  # seed -> ln λ it has (λ > 0)
    fits: dict[int, dict[str, float]]  # seed -> a, wa, c, wc (test) and k, wk (train)
    lo: float  # ln of the smallest and largest λ > 0 in the cell
    hi: float
    base: tuple[float, float] = (math.nan, math.nan)  # ln λ of the nearest base either side
    # ln λ of the best λ (seed mean) of a cell that has not learned at any of its λ while λ
    # changes its accuracy, when that best is inside the range: a peak narrower than the
    # grid would hide there (`_refine_plan.probe`); NaN otherwise.
    peak: float = math.nan


def halfwidth(n: int, s2: float, fit: float, grid: float, dof: int) -> float:
    """The 95% half-width `_best.cell_interval` gives these parts."""
    if n <= 0:
        return math.inf
    seeds = s2 if dof and math.isfinite(s2) else 0.0
    seeds = max(seeds, fit) if math.isfinite(fit) else seeds
    var = seeds / n + (grid if math.isfinite(grid) else 0.0)
    q = float(stats.t.ppf(0.5 + LEVEL / 2, dof)) if dof else float(stats.norm.ppf(0.975))
    return q * math.sqrt(var) if var > 0 else math.inf


def _arrays(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One seed's (ln λ, test, train) as the estimators build them (mean per λ, sorted)."""
    cols = ["final_test_acc", *(["final_train_acc"] if "final_train_acc" in g else [])]
    m = g.groupby("lam")[cols].mean().sort_index()
    train = m["final_train_acc"].to_numpy(float) if len(cols) > 1 else None
    return np.log(m.index.to_numpy(float)), m["final_test_acc"].to_numpy(float), train


def _fits(g: pd.DataFrame) -> dict[str, float]:
    """The seed's fitted transitions (the curve estimator's own fits, cached there)."""
    x, test, train = _arrays(g)
    if len(x) < _curve.MIN_POINTS:
        return {}
    base, top, a, wa, c, wc = _curve._fit_test(x.tobytes(), np.ascontiguousarray(test).tobytes())[0]
    out = dict(a=a, wa=wa, c=c, wc=wc)
    if train is not None and np.isfinite(train).all():
        i = int(np.argmax(train))
        if (train[i:] < FRACTION * train[i]).any():
            _, _, k, wk = _curve._fit_train(x.tobytes(), np.ascontiguousarray(train).tobytes())[0]
            out.update(k=k, wk=wk)
    return out


def effect(cell_runs: pd.DataFrame, col: str) -> float:
    """p of 'λ changes `col`': one-way ANOVA over the λ levels (λ = 0 among them), seeds as
    replicates; without replicates, the range of the curve against its point-to-point
    noise (p 0 or 1). NaN when the column is absent."""
    if col not in cell_runs or not cell_runs[col].notna().any():
        return math.nan
    groups = [g.to_numpy(float) for _, g in cell_runs.dropna(subset=[col]).groupby("lam")[col]]
    n, k = sum(len(g) for g in groups), len(groups)
    if k < 2:
        return 1.0
    if n - k >= 2:
        if all(np.ptp(g) == 0 for g in groups):  # no scatter at all: exact values
            return 0.0 if np.ptp([g[0] for g in groups]) > 0 else 1.0
        return float(stats.f_oneway(*groups).pvalue)
    y = np.array([g.mean() for g in groups])
    noise = float(np.median(np.abs(np.diff(y)))) / (0.6745 * math.sqrt(2))
    return 0.0 if np.ptp(y) > 6 * max(noise, 1e-12) else 1.0


def _var_parts(per: pd.DataFrame, est: str, fit: str, grid: str) -> tuple[int, float, float]:
    n = int(per[est].count()) if est in per else 0
    f = float(per[fit].mean()) if fit in per and per[fit].notna().any() else 0.0
    g = float(per[grid].mean()) if grid in per and per[grid].notna().any() else 0.0
    return n, f, g


def _ln_hw(row: pd.Series, col: str) -> tuple[float, float]:
    lo, hi = row.get(f"{col}_ci_low", math.nan), row.get(f"{col}_ci_high", math.nan)
    est = row.get(col, math.nan)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo > 0 and hi > lo):
        return (math.log(est) if np.isfinite(est) and est > 0 else math.nan), math.inf
    return math.log(est), 0.5 * (math.log(hi) - math.log(lo))


def cells(runs: pd.DataFrame, axes: dict[str, dict[str, Any]]) -> list[Cell]:
    """Every cell's state. `runs`: cell, seed, lam, the decay units, final_test_acc and
    (optionally) final_train_acc; `axes`: cell label -> its axis values."""
    table, seeds, spreads = _estimate.cells_and_seeds(runs, [])
    out = []
    for _, row in table.iterrows():
        label = row["cell"]
        mine = runs[runs["cell"] == label]
        per = seeds[seeds["cell"] == label]
        pos = mine[(mine["lam"] > 0) & np.isfinite(mine["final_test_acc"])]
        designs = {int(s): np.unique(np.log(g["lam"].to_numpy(float)))
                   for s, g in pos.groupby("seed")}
        fits = {int(s): _fits(g) for s, g in pos.groupby("seed")}
        lo, hi = float(np.log(pos["lam"].min())), float(np.log(pos["lam"].max()))
        targets = _targets(row, per, spreads, mine, fits)
        out.append(Cell(label, axes[label], targets, designs, fits, lo, hi,
                        _base(pos, targets, float(row.get("best_acc", math.nan))),
                        _peak(mine, pos, targets, lo, hi)))
    return out


def _peak(mine: pd.DataFrame, pos: pd.DataFrame, targets: dict[str, Target], lo: float,
          hi: float) -> float:
    """Cell.peak: where to look for a top the grid stepped over."""
    if not targets["opt"].why.startswith("not learned") or pos.empty:
        return math.nan
    p = effect(mine, "final_test_acc")
    if not (np.isfinite(p) and p < ALPHA):
        return math.nan  # flat at chance: nothing to look for
    u = math.log(float(pos.groupby("lam")["final_test_acc"].mean().idxmax()))
    return u if lo + 1e-9 < u < hi - 1e-9 else math.nan


def _base(pos: pd.DataFrame, targets: dict[str, Target], best: float) -> tuple[float, float]:
    """ln λ of the data's nearest points where every seed's curve is at its base: below the
    lowest fitted transition by 4.4 of its widths and two seed spreads (a seed's curve is
    shifted), with mean test accuracy under a quarter of the best; above the highest
    likewise, with mean train accuracy under 40% of its plateau (test, without train).
    Where the data have no such point: that margin itself (the cell's end beyond it)."""
    sl = [(c - (2 * LN9 * max(w, MIN_WIDTH) + 2 * (math.sqrt(t.s2) if t.s2 > 0 else 0.0)),
           c + (2 * LN9 * max(w, MIN_WIDTH) + 2 * (math.sqrt(t.s2) if t.s2 > 0 else 0.0)))
          for t in targets.values() if math.isfinite(t.hw) for c, w, _ in t.slopes
          if math.isfinite(c)]
    if not sl or not np.isfinite(best):
        return math.nan, math.nan
    lo, hi = min(v[0] for v in sl), max(v[1] for v in sl)
    m = pos.groupby("lam")[[c for c in ("final_test_acc", "final_train_acc") if c in pos]].mean()
    x = np.log(m.index.to_numpy(float))
    low = (m["final_test_acc"] < 0.5 * FRACTION * best).to_numpy()
    high = low
    if "final_train_acc" in m and m["final_train_acc"].notna().any():
        high = (m["final_train_acc"] < 0.8 * FRACTION * m["final_train_acc"].max()).to_numpy()
    left, right = x[(x <= lo) & low], x[(x >= hi) & high]
    return (float(left.max()) if len(left) else lo, float(right.min()) if len(right) else hi)


def _median(fits: dict[int, dict[str, float]], k: str) -> float:
    v = [f[k] for f in fits.values() if k in f]
    return float(np.median(v)) if v else math.nan


def _inside(per: pd.DataFrame, mine: pd.DataFrame, col: str, side: str, end: float
            ) -> dict[int, str]:
    """The censored seeds, when every one of them is censored only by its own design (it
    starts above the cell's smallest λ, or ends below its largest) and another seed has the
    edge inside: those seeds need points the cell already has, not a wider range."""
    bad = per.loc[per[col] == side, "seed"].astype(int).tolist()
    if not bad or len(bad) == len(per):
        return {}
    pos = mine[(mine["lam"] > 0) & np.isfinite(mine["final_test_acc"])]
    ends = pos.groupby("seed")["lam"].agg("min" if side == "below" else "max")
    inside = [s for s in bad if s in ends and (ends[s] > end * (1 + 1e-9) if side == "below"
                                               else ends[s] < end * (1 - 1e-9))]
    return {s: side for s in inside} if len(inside) == len(bad) else {}


def _targets(row: pd.Series, per: pd.DataFrame, spreads: dict, mine: pd.DataFrame,
             fits: dict[int, dict[str, float]]) -> dict[str, Target]:
    t = {name: Target(name) for name in TARGETS}
    best, base = float(row.get("best_acc", math.nan)), float(row.get("baseline_acc", math.nan))
    p_test, p_train = effect(mine, "final_test_acc"), effect(mine, "final_train_acc")
    w = {k: max(_median(fits, k), MIN_WIDTH) for k in ("wa", "wc", "wk")}
    a, c, k = (_median(fits, k) for k in ("a", "c", "k"))
    spec = {"opt": ("lambda_star", "ln_lambda_star", "star_fit_var", "star_grid_var"),
            "onset": ("lambda_onset", "ln_onset", "onset_fit_var", "onset_grid_var"),
            "collapse": ("lambda_collapse", "ln_collapse", "collapse_fit_var",
                         "collapse_grid_var")}
    pool = {"opt": spreads["lambda_star"], "onset": spreads["onset"],
            "collapse": spreads["collapse"]}
    for name, (col, est, fv, gv) in spec.items():
        x = t[name]
        x.est, x.hw = _ln_hw(row, col)
        x.n, x.fit, x.grid = _var_parts(per, est, fv, gv)
        sd, x.dof = pool[name]["sd_ln"], int(pool[name]["dof"])
        x.s2 = sd**2 if np.isfinite(sd) else math.nan
    learned = bool(np.isfinite(best) and best >= LOW_ACC)
    no_effect = not (np.isfinite(p_test) and p_test < ALPHA)
    # λ*: the centre of the fitted top -- told only when the top ends inside the data.
    o = t["opt"]
    o.slopes = [(u, w[f"w{k}"], k) for u, k in ((a, "a"), (c, "c")) if np.isfinite(u)]
    if not learned:
        o.why = f"not learned: best test accuracy {best:.3g} < {LOW_ACC} at every λ"
    elif no_effect:
        o.why = f"no effect of λ on test accuracy (ANOVA p = {p_test:.2g}): the data cannot tell"
    elif row.get("edge") == "zero":
        o.why = "λ = 0 beats every λ > 0: no decay is best"
    elif row.get("edge") in ("low", "both") or row["lambda_lo"] <= row["lambda_min"]:
        o.why, o.extend = f"the top reaches the smallest λ ({row['lambda_min']:.3g})", "below"
    elif row.get("edge") == "high" or row["lambda_hi"] >= row["lambda_max"]:
        o.why, o.extend = f"the top reaches the largest λ ({row['lambda_max']:.3g})", "above"
    elif not math.isfinite(o.hw):
        o.why = "no interval (one seed, or none fitted)"
    on, cens = t["onset"], str(row.get("onset_censored", "") or "")
    on.slopes = [(on.est, w["wa"], "a")] if np.isfinite(on.est) else []
    if not learned or no_effect:
        on.why = o.why
    elif "never" in cens:
        on.why = "test accuracy never reaches half its best"
    elif "below" in cens and np.isfinite(base) and base >= FRACTION * best:
        on.why = (f"no onset: at λ = 0 test accuracy ({base:.3g}) is already above half the "
                  f"best ({best:.3g})")
    elif "below" in cens:
        on.fill = _inside(per, mine, "onset_censored", "below", row["lambda_min"])
        on.why, on.extend = ((f"seeds {sorted(on.fill)} have no λ below their onset", "")
                             if on.fill else (f"the onset lies below the smallest λ "
                                              f"({row['lambda_min']:.3g})", "below"))
    elif not math.isfinite(on.hw):
        on.why = "no interval (one seed, or none fitted)"
    co, cens = t["collapse"], str(row.get("collapse_censored", "") or "")
    co.slopes = [(co.est, w["wk"], "k")] if np.isfinite(co.est) else []
    top_train = float(mine.groupby("lam")["final_train_acc"].mean().max()) \
        if "final_train_acc" in mine and mine["final_train_acc"].notna().any() else math.nan
    if "no train accuracy" in cens or not np.isfinite(top_train):
        co.why = "no train accuracy in the results"
    elif top_train < LOW_ACC:
        co.why = f"train accuracy never reaches {LOW_ACC} (best {top_train:.3g})"
    elif "above" in cens:
        co.fill = _inside(per, mine, "collapse_censored", "above", row["lambda_max"])
        co.why, co.extend = ((f"seeds {sorted(co.fill)} have no λ above their collapse", "")
                             if co.fill else (f"train accuracy has not collapsed at the "
                                              f"largest λ ({row['lambda_max']:.3g})", "above"))
    elif not (np.isfinite(p_train) and p_train < ALPHA):
        co.why = f"no effect of λ on train accuracy (ANOVA p = {p_train:.2g})"
    elif not math.isfinite(co.hw):
        co.why = "no interval (one seed, or none fitted)"
    for x in t.values():
        if x.why:
            x.hw = math.inf
    return t
