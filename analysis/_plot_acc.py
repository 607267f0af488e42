"""The accuracy-against-λ figure: one panel per metric for a few cells, small multiples
with a colourbar for many (see `_panels`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis._panels import FEW, RASTER, finish, lines, log_x, plt_, points, save, style

if TYPE_CHECKING:
    from analysis._analysis import Analysis


def _marks(ax: Any, r: pd.DataFrame, colors: list[Any]) -> None:
    """λ* (▼, with its interval) at each cell's best accuracy; the onset (▶) and collapse
    (◀) edges as ticks at the bottom, where they never hide the curves. One errorbar and
    one scatter per kind, whatever the number of cells."""
    for key, mk, top in (("lambda_star", "v", True), ("lambda_onset", ">", False),
                         ("lambda_collapse", "<", False)):
        if key not in r:
            continue
        ok = np.isfinite(r[key].to_numpy(float))
        if not ok.any():
            continue
        v = r[key].to_numpy(float)[ok]
        y = r["best_acc"].to_numpy(float)[ok] if top else np.full(len(v), 0.02)
        lo = r.get(f"{key}_ci_low", pd.Series(np.nan, index=r.index)).to_numpy(float)[ok]
        hi = r.get(f"{key}_ci_high", pd.Series(np.nan, index=r.index)).to_numpy(float)[ok]
        col = [c for c, k in zip(colors, ok) if k]
        err = np.nan_to_num(np.vstack([v - lo, hi - v]), nan=0.0).clip(min=0)
        if len(v) <= FEW:  # a few: each with capped bars in its cell's colour
            for i, c in enumerate(col):
                ax.errorbar(v[i], y[i], xerr=err[:, i:i + 1], fmt=mk, color=c, ms=8, mec="k",
                            capsize=3, zorder=4)
            continue
        many = len(v) > RASTER // 10
        ax.errorbar(v, y, xerr=err, fmt="none", ecolor=col, lw=0.5, zorder=4, rasterized=many)
        ax.scatter(v, y, marker=mk, c=col, s=14, edgecolors="k", linewidths=0.4, zorder=5,
                   rasterized=many)


def _grid(plt: Any, rows: int, cols: int, w: float, h: float) -> tuple[Any, Any]:
    return plt.subplots(rows, cols, figsize=(w * cols, h * rows), squeeze=False,
                        sharex=True, sharey=True)


def acc_vs_lambda(a: Analysis, path: Path) -> Path | None:
    cur = a.curves
    if not (cur["lam"] > 0).any():  # nothing to put on a log axis
        return None
    plt = plt_()
    st = style(a.cells, a.keys, set(cur["cell"]))
    metrics = [m for m in ("final_test_acc", "final_train_acc") if (cur["metric"] == m).any()]
    one = len(st.panels) == 1  # few cells or one group: the metrics side by side
    fig, axes = (_grid(plt, 1, len(metrics), 6.5, 4.6) if one else
                 _grid(plt, len(metrics), len(st.panels), 4.0, 3.4))
    runs = a.runs[a.runs["lam"] > 0]
    seeds = dict(tuple(runs.groupby("cell", sort=False)))
    cells = a.cells.set_index("cell", drop=False)
    for i, m in enumerate(metrics):
        c = cur[cur["metric"] == m].sort_values("lam")
        pos = dict(tuple(c[c["lam"] > 0].groupby("cell", sort=False)))
        zero = c[c["lam"] == 0].groupby("cell")["mean"].mean()
        for j, (title, names) in enumerate(st.panels):
            ax = axes[0][i] if one else axes[i][j]
            names = [n for n in names if n in pos]
            cols = [st.color[n] for n in names]
            lines(ax, [(pos[n]["lam"].to_numpy(), pos[n]["mean"].to_numpy())
                               for n in names], cols, lw=1.5 if st.few else 0.8)
            sd = [seeds[n] for n in names if n in seeds]  # every seed's own point
            if sd:
                s = pd.concat(sd)
                points(ax, s["lam"].to_numpy(), s[m].to_numpy(),
                               [st.color[n] for n in s["cell"]], s=10 if st.few else 3,
                               alpha=0.6, linewidths=0)
            log_x(ax)
            lo = ax.get_xlim()[0]
            z = [n for n in names if n in zero]  # λ = 0 is off the log axis: a dashed level
            if st.few:  # across the panel for a few cells, a dash at the left for many
                for n in z:
                    ax.axhline(zero[n], color=st.color[n], ls="--", lw=1)
            else:
                lines(ax, [(np.array([lo, lo * 1.6]), np.full(2, zero[n])) for n in z],
                              [st.color[n] for n in z], lw=1.5, linestyles="--")
            if m == "final_test_acc":
                _marks(ax, cells.loc[[n for n in names if n in cells.index]], cols)
            ax.set_xlim(left=lo)
            ax.set_ylim(-0.02, 1.04)
            what = m[6:].replace("_acc", "")
            if one:
                ax.set_title(f"{what} accuracy vs λ; dots: seeds; dashed: λ = 0" +
                             ("\n▼ λ*, ▶ onset, ◀ collapse (95% intervals)"
                              if what == "test" else ""))
            else:
                ax.set_title(f"{what}: {title}", fontsize=8)
            if one:
                ax.set_ylabel(f"{what} accuracy (fraction, mean over the final window)")
            elif j == 0:
                ax.set_ylabel(f"{what} accuracy (fraction)", fontsize=8)
            if one or i == len(metrics) - 1:
                ax.set_xlabel(f"λ ({a.unit_label}, log scale)", fontsize=10 if one else 8)
    if not one:
        fig.suptitle("Accuracy vs λ; dots: seeds; dashes at left: λ = 0; "
                     "▼ λ*, ▶ onset, ◀ collapse (95% intervals)")
    finish(fig, axes, st, [])
    return save(fig, path)
