"""The report's figures (matplotlib, Agg, imported lazily). Each returns None when
the data cannot support it; the report then says why it is absent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis._fit import RULES, predict, usable
from trainer import units

if TYPE_CHECKING:
    from analysis._analysis import Analysis

_RULE_STYLE = {"sqrt": ("tab:blue", "o"), "epoch_timescale": ("tab:orange", "s"),
               "fraction_of_run": ("tab:green", "^"), "constant": ("tab:gray", "D")}


def _log_x(ax: Any) -> None:
    """A log x axis whose labels never collide: under two decades matplotlib labels
    every minor tick; there, label 1-2-5 ticks plainly and leave the minor ones bare."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    if hi / lo < 100:
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _colors(n: int) -> list[Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10" if n <= 10 else "viridis")
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def _save(fig: Any, path: Path) -> Path:
    """PNG for the report, and an SVG beside it for papers."""
    fig.savefig(path, dpi=100, bbox_inches="tight")
    fig.savefig(path.with_suffix(".svg"), bbox_inches="tight")
    _plt().close(fig)
    return path


def _legend(fig: Any, ax: Any) -> None:
    """One legend under the panels, so it never hides a curve."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncol=min(4, len(handles)), fontsize=8 if len(handles) <= 12 else 6)


def _cells(a: Analysis, present: pd.Series) -> list[str]:
    """Cells in the per-cell table's order, so a cell keeps its color in every figure."""
    have = set(present)
    return [c for c in a.cells["cell"] if c in have]


def _marks(ax: Any, r: pd.Series, col: Any, y: float) -> None:
    """λ* (▼, with its interval) at the best accuracy; the onset (▶) and collapse (◀)
    edges as vertical ticks at the bottom, where they never hide the curves."""
    for key, mk, yy in (("lambda_star", "v", y), ("lambda_onset", ">", 0.02),
                        ("lambda_collapse", "<", 0.02)):
        v = r.get(key, np.nan)
        if not np.isfinite(v):
            continue
        lo, hi = r.get(f"{key}_ci_low", np.nan), r.get(f"{key}_ci_high", np.nan)
        err = np.nan_to_num([[v - lo], [hi - v]], nan=0.0)
        ax.errorbar(v, yy, xerr=err, fmt=mk, color=col, ms=8, mec="k", capsize=3, zorder=4)


def acc_vs_lambda(a: Analysis, path: Path) -> Path | None:
    cur = a.curves
    if not (cur["lam"] > 0).any():  # nothing to put on a log axis
        return None
    plt = _plt()
    cells = _cells(a, cur["cell"])
    metrics = [m for m in ("final_test_acc", "final_train_acc") if (cur["metric"] == m).any()]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.6), squeeze=False)
    runs = a.runs[a.runs["lam"] > 0]
    for ax, m in zip(axes[0], metrics):
        for cell, col in zip(cells, _colors(len(cells))):
            c = cur[(cur["cell"] == cell) & (cur["metric"] == m)].sort_values("lam")
            pos, zero = c[c["lam"] > 0], c[c["lam"] == 0]
            ax.plot(pos["lam"], pos["mean"], "-", lw=1.5, color=col, label=cell)
            seeds = runs[runs["cell"] == cell]  # every seed's own point, not only a band
            ax.plot(seeds["lam"], seeds[m], ".", ms=4, alpha=0.6, color=col)
            for v in zero["mean"]:  # λ = 0 is off the log axis: a dashed level instead
                ax.axhline(v, color=col, ls="--", lw=1)
            row = a.cells[a.cells["cell"] == cell]
            if m == "final_test_acc" and len(row):
                _marks(ax, row.iloc[0], col, float(row["best_acc"].iloc[0]))
        _log_x(ax)
        ax.set_ylim(-0.02, 1.04)
        ax.set_xlabel(f"λ ({a.unit_label}, log scale)")
        what = m[6:].replace("_acc", "")
        ax.set_ylabel(f"{what} accuracy (fraction, mean over the final window)")
        ax.set_title(f"{what} accuracy vs λ; dots: seeds; dashed: λ = 0" +
                     ("\n▼ λ*, ▶ onset, ◀ collapse (95% intervals)" if what == "test" else ""))
    _legend(fig, axes[0][0])
    return _save(fig, path)


def _chosen_runs(a: Analysis) -> pd.DataFrame:
    """Runs of one cell (the first) and seed: λ = 0, the smallest, λ* and the largest λ."""
    cell = a.cells["cell"].iloc[0]
    r = a.runs[(a.runs["cell"] == cell)]
    r = r[r["seed"] == r["seed"].min()].sort_values("lam")
    pos = r[r["lam"] > 0]
    picks = list(r.index[r["lam"] == 0][:1])
    if len(pos):
        star = a.cells["lambda_star"].iloc[0]
        near = (np.log(pos["lam"]) - np.log(star)).abs().idxmin() if np.isfinite(star) else None
        picks += [pos.index[0], *([near] if near is not None else []), pos.index[-1]]
    return r.loc[list(dict.fromkeys(picks))]


def training_curves(a: Analysis, path: Path) -> Path | None:
    if not a.has_curves or a.cells.empty:
        return None
    plt = _plt()
    runs = _chosen_runs(a)
    cols = set(a.hist.columns)
    panels = [p for p in (("acc", "accuracy (fraction)"), ("loss", "loss (MSE, log scale)"),
                          ("weight_norm", "weight norm (Σ per-tensor L2)"))
              if {p[0], f"train_{p[0]}", f"test_{p[0]}"} & cols]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for (_, run), col in zip(runs.iterrows(), _colors(len(runs))):
        h = a.hist[a.hist["run"] == run["run"]].sort_values("step")
        lab = f"λ = {run['lam']:.3g}"
        for ax, (kind, _) in zip(axes[0], panels):
            if kind == "weight_norm":
                ax.plot(h["step"], h["weight_norm"], color=col, label=lab)
                continue
            for split, ls in (("train", "-"), ("test", "--")):
                if f"{split}_{kind}" in h:
                    ax.plot(h["step"], h[f"{split}_{kind}"], ls, color=col,
                            label=f"{lab} ({split})")
    for ax, (kind, ylab) in zip(axes[0], panels):
        ax.set_xlabel("training step")
        ax.set_ylabel(ylab)
        if kind == "loss":
            ax.set_yscale("log")
    _legend(fig, axes[0][0])
    fig.suptitle(f"Training curves, {a.cells['cell'].iloc[0]}, seed {runs['seed'].iloc[0]} "
                 "(solid: train, dashed: test)")
    return _save(fig, path)


def dstar_fit(a: Analysis, path: Path) -> Path | None:
    c = a.cells
    if "d_star" not in c or not np.isfinite(c["d_star"]).any() or not a.fit.get("rules"):
        return None
    plt = _plt()
    c = c[np.isfinite(c["d_star"]) & np.isfinite(c["T"])].copy()
    c["x"] = units.norm_factor(c["batch_size"], c["train_size"], c["T"])
    c = c.sort_values("x")
    fig, ax = plt.subplots(figsize=(7, 5))
    inner = usable(c)
    for sel, face, lab in ((inner, "k", "d* (mean of the seeds' optima, 95% CI)"),
                           (~inner, "none", "d* not fitted (grid edge or low accuracy)")):
        s = c[sel]
        if s.empty:
            continue
        err = np.nan_to_num([s["d_star"] - s["d_star_ci_low"], s["d_star_ci_high"] - s["d_star"]])
        ax.errorbar(s["x"], s["d_star"], yerr=err, fmt="o", mfc=face, mec="k", color="k",
                    capsize=3, label=lab, zorder=3)
    for rule in RULES:  # the sqrt rule is a line here; the others scatter about it
        k = a.fit["rules"][rule]["constant"]["estimate"]
        col, mk = _RULE_STYLE[rule]
        pred = predict(rule, k, c["batch_size"], c["train_size"], c["T"])
        p = a.fit["rules"][rule].get("p_value")
        ax.plot(c["x"], pred, ls=":" if rule == "sqrt" else "none", marker=mk, mfc="none",
                color=col, ms=8, label=f"{rule} {RULES[rule]} (F test p = "
                                       f"{'–' if p is None else f'{p:.2g}'})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    # A narrow log range gets a label on every minor tick and they collide: label
    # the cells' own x values instead.
    from matplotlib.ticker import NullFormatter

    xs = sorted(set(c["x"].round(12)))
    ax.set_xticks(xs, [f"{v:.3g}" for v in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("sqrt(b / (B·T))  (b batch, B train examples, T epochs)")
    ax.set_ylabel("best per-step decay d* = lr·wd*  (fraction per step)")
    ax.set_title("d* against the sqrt rule's variable, with each rule's prediction")
    ax.legend(fontsize=8)
    return _save(fig, path)


def collapse_view(a: Analysis, path: Path) -> Path | None:
    r = a.runs[(a.runs["lam"] > 0) & np.isfinite(a.runs["final_test_acc"])]
    r = r[np.isfinite(r["decay_per_step"]) & np.isfinite(r["T"]) & np.isfinite(r["lr"])]
    if r.empty:
        return None
    plt = _plt()
    r = r.assign(tau_epoch=r["batch_size"] / (r["train_size"] * r["decay_per_step"]))
    r = r.assign(tau_frac=r["tau_epoch"] / r["T"])
    xs = [("weight_decay", "PyTorch weight_decay"), ("lambda_norm", "λ_norm (sqrt rule)"),
          ("tau_epoch", "τ_epoch = b/(B·d), epochs (epoch rule)"),
          ("tau_frac", "τ_iter/S = b/(B·T·d) (fraction rule)")]
    cells = _cells(a, r["cell"])
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4), sharey=True)
    g = r.groupby(["cell", "lam"], sort=False)
    m = g[[x for x, _ in xs]].first().join(g["final_test_acc"].mean()).reset_index()
    for ax, (x, lab) in zip(axes, xs):
        for cell, col in zip(cells, _colors(len(cells))):
            s = m[m["cell"] == cell].sort_values(x)
            ax.plot(s[x], s["final_test_acc"], "-o", ms=3, color=col, label=cell)
        _log_x(ax)
        ax.set_xlabel(lab)
    axes[0].set_ylabel("test accuracy (fraction, mean over seeds)")
    _legend(fig, axes[0])
    fig.suptitle("Collapse check: under the right rule the cells' curves line up")
    return _save(fig, path)


def bn_collapses(a: Analysis, path: Path) -> Path | None:
    if a.events.empty:
        return None
    plt = _plt()
    runs = a.runs
    if "batch_norm" in runs:
        runs = runs[runs["batch_norm"].astype(str).str.lower().isin(("true", "1", "1.0"))]
    top = runs[runs["n_collapses"] > 0].nlargest(4, "n_collapses")
    if top.empty:
        return None
    rows = [c for c in ("test_acc", "train_loss", "weight_norm") if c in a.hist]
    fig, axes = plt.subplots(len(rows), 1, figsize=(11, 2.6 * len(rows)), sharex=True,
                             squeeze=False)
    for (_, run), col in zip(top.iterrows(), _colors(len(top))):
        h = a.hist[a.hist["run"] == run["run"]].sort_values("step")
        ev = a.events[a.events["run"] == run["run"]]
        lab = f"{run['cell']}, λ={run['lam']:.3g}, seed {run['seed']}: {len(ev)} events"
        for ax, c in zip(axes[:, 0], rows):
            ax.plot(h["step"], h[c], color=col, lw=1, label=lab)
            at = h.set_index("step")[c].reindex(ev["step"])
            ax.plot(ev["step"], at, "x", color="red", ms=7)
    for ax, c in zip(axes[:, 0], rows):
        ax.set_ylabel({"test_acc": "test accuracy", "train_loss": "train loss (log)",
                       "weight_norm": "weight norm"}[c])
        if c == "train_loss":
            ax.set_yscale("log")
    axes[-1, 0].set_xlabel("training step")
    _legend(fig, axes[0, 0])
    axes[0, 0].set_title("Collapse events (red ×) in the batch-norm runs with the most events")
    return _save(fig, path)


def delay(a: Analysis, path: Path) -> Path | None:
    r = a.runs.dropna(subset=["step_to_0.9", "decay_per_step"])
    r = r[r["decay_per_step"] > 0]
    if len(r) < 3 or r["decay_per_step"].nunique() < 2:
        return None
    plt = _plt()
    slope, icpt = np.polyfit(np.log(r["decay_per_step"]), np.log(r["step_to_0.9"]), 1)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.loglog(r["decay_per_step"], r["step_to_0.9"], "o", ms=4, alpha=0.7, label="runs")
    xs = np.geomspace(r["decay_per_step"].min(), r["decay_per_step"].max(), 50)
    ax.plot(xs, np.exp(icpt) * xs**slope, "k--", label=f"fit: slope {slope:.2f} (Omnigrok: -1)")
    ax.set_xlabel("per-step decay d = lr·wd (fraction per step)")
    ax.set_ylabel("step at which test accuracy first reaches 0.9")
    ax.set_title("Grokking delay against the decay")
    ax.legend(fontsize=8)
    return _save(fig, path)


FIGURES: dict[str, Callable[[Analysis, Path], Path | None]] = {
    "acc_vs_lambda": acc_vs_lambda, "training_curves": training_curves,
    "dstar_fit": dstar_fit, "collapse_view": collapse_view, "bn_collapses": bn_collapses,
    "delay": delay,
}


def all_figures(a: Analysis, out: Path) -> dict[str, Path]:
    made = {name: fn(a, out / f"{name}.png") for name, fn in FIGURES.items()}
    return {k: p for k, p in made.items() if p is not None}
