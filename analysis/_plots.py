"""The report's figures (matplotlib, Agg, imported lazily). Each returns None when
the data cannot support it; the report then says why it is absent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis import _panels
from analysis._fit import RULES, predict, usable
from analysis._panels import log_x as _log_x
from analysis._panels import plt_ as _plt
from analysis._panels import save as _save
from analysis._plot_acc import acc_vs_lambda
from trainer import units

if TYPE_CHECKING:
    from analysis._analysis import Analysis

_RULE_STYLE = {"sqrt": ("tab:blue", "o"), "epoch_timescale": ("tab:orange", "s"),
               "fraction_of_run": ("tab:green", "^"), "constant": ("tab:gray", "D")}


def _colors(n: int) -> list[Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10" if n <= 10 else "viridis")
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def _legend(fig: Any, ax: Any) -> None:
    """One legend under the panels, so it never hides a curve."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncol=min(4, len(handles)), fontsize=8 if len(handles) <= 12 else 6)


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
    fig = dstar_figure(a)
    return None if fig is None else _save(fig, path)


def _legend_below(fig: Any, ax: Any, ncol: int = 2) -> None:
    """The axes' legend under the figure, outside every axes: it can hide no point."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncol=min(ncol, len(handles)), fontsize=8, frameon=False)


def dstar_figure(a: Analysis) -> Any:
    """d* per cell against sqrt(b/(B·T)) with each rule's prediction (None: nothing to
    draw); the legend sits under the axes, never over a point."""
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
        test = "not tested" if p is None else f"F test p = {p:.2g}"
        ax.plot(c["x"], pred, ls=":" if rule == "sqrt" else "none", marker=mk, mfc="none",
                color=col, ms=8, label=f"{rule} {RULES[rule]} ({test})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    # A narrow log range gets a label on every minor tick and they collide: label
    # the cells' own x values instead.
    from matplotlib.ticker import NullFormatter

    xs = sorted(set(c["x"].round(12)))
    if len(xs) <= 12:  # more would collide: matplotlib's log ticks then
        ax.set_xticks(xs, [f"{v:.3g}" for v in xs])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("sqrt(b / (B·T))  (b batch, B train examples, T epochs)")
    ax.set_ylabel("best per-step decay d* = lr·wd*  (fraction per step)")
    ax.set_title("d* against the sqrt rule's variable, with each rule's prediction")
    _legend_below(fig, ax)
    return fig


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
    st = _panels.style(a.cells, a.keys, set(r["cell"]))
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.4), sharey=True, squeeze=False)
    g = r.groupby(["cell", "lam"], sort=False)
    m = g[[x for x, _ in xs]].first().join(g["final_test_acc"].mean()).reset_index()
    per = dict(tuple(m.groupby("cell", sort=False)))
    names = [n for n in st.color if n in per]
    cols = [st.color[n] for n in names]
    for ax, (x, lab) in zip(axes[0], xs):
        cur = [per[n].sort_values(x) for n in names]
        _panels.lines(ax, [(c[x].to_numpy(), c["final_test_acc"].to_numpy()) for c in cur],
                      cols, lw=1.2 if st.few else 0.6)
        _panels.points(ax, m[x].to_numpy(), m["final_test_acc"].to_numpy(),
                       [st.color[n] for n in m["cell"]], s=9 if st.few else 2, linewidths=0)
        _log_x(ax)
        ax.set_xlabel(lab)
    axes[0][0].set_ylabel("test accuracy (fraction, mean over seeds)")
    _panels.finish(fig, axes, st, [])
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
    ax.loglog(r["decay_per_step"], r["step_to_0.9"], "o", ms=4, alpha=0.7, label="runs",
              rasterized=len(r) > _panels.RASTER)
    xs = np.geomspace(r["decay_per_step"].min(), r["decay_per_step"].max(), 50)
    ax.plot(xs, np.exp(icpt) * xs**slope, "k--", label=f"fit: slope {slope:.2f} (Omnigrok: -1)")
    ax.set_xlabel("per-step decay d = lr·wd (fraction per step)")
    ax.set_ylabel("step at which test accuracy first reaches 0.9")
    ax.set_title("Grokking delay against the decay")
    _legend_below(fig, ax)
    return _save(fig, path)


FIGURES: dict[str, Callable[[Analysis, Path], Path | None]] = {
    "acc_vs_lambda": acc_vs_lambda, "training_curves": training_curves,
    "dstar_fit": dstar_fit, "collapse_view": collapse_view, "bn_collapses": bn_collapses,
    "delay": delay,
}


def all_figures(a: Analysis, out: Path) -> dict[str, Path]:
    made = {name: fn(a, out / f"{name}.png") for name, fn in FIGURES.items()}
    return {k: p for k, p in made.items() if p is not None}
