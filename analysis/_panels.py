"""Figures that stay readable and fast at any number of cells.

Up to `FEW` cells each gets a colour and a legend entry. Beyond that a legend is
unreadable (and its layout was most of the figures' time): cells are coloured on a
continuous scale of one key (the numeric key with the most values, log-scaled where
positive) with a colourbar, and split into at most `MAX_PANELS` small multiples by the
other keys (consecutive groups when there are more combinations than panels). Lines of
one panel are one LineCollection and points one scatter, so the cost of drawing grows
with the number of panels, not of cells; layers with many points are rasterized in the
SVG so it stays a few hundred kB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis._schema import AXES

FEW = 10  # cells drawn with a legend entry each
MAX_PANELS = 6  # small multiples per metric
RASTER = 500  # a layer with more points than this is rasterized in the SVG
MAX_LEGEND = 12  # entries in any legend


def log_x(ax: Any) -> None:
    """A log x axis whose labels never collide: under two decades matplotlib labels
    every minor tick; there, label 1-2-5 ticks plainly and leave the minor ones bare."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    lo, hi = ax.get_xlim()
    if hi / lo < 100:
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    # Plain numbers, not mathtext's 10^k: laying out mathtext labels was a tenth of the
    # figures' time on a 16-cell table.
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plt_() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def save(fig: Any, path: Path) -> Path:
    """PNG for the report, and an SVG beside it for papers. The tight box is laid out
    once, after the PNG's draw, and reused for the SVG: a layout pass is a quarter of the
    figures' time."""
    fig.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.1)
    box = fig.get_tightbbox().padded(0.1)
    fig.savefig(path.with_suffix(".svg"), bbox_inches=box)
    plt_().close(fig)
    return path



@dataclass
class Style:
    color: dict[str, Any]  # cell -> RGBA
    panels: list[tuple[str, list[str]]]  # (title, cells), in the per-cell table's order
    few: bool  # a legend entry per cell, else a colourbar
    mappable: Any = None  # for the colourbar
    label: str = ""  # what the colour shows


def _short(k: str) -> str:
    return AXES.get(k, k)


def style(cells: pd.DataFrame, keys: list[str], present: set[str] | None = None) -> Style:
    """Colours and panels for the cells in `present` (all by default)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm, Normalize

    plt = plt_()
    c = cells if present is None else cells[cells["cell"].isin(present)]
    names = list(c["cell"])
    if len(names) <= FEW:
        cmap = plt.get_cmap("tab10")
        return Style({n: cmap(i) for i, n in enumerate(names)}, [("", names)], True)
    num = [k for k in keys if k in c and pd.api.types.is_numeric_dtype(c[k])]
    key = max(num, key=lambda k: (c[k].nunique(), keys.index(k))) if num else None
    if key is None:  # no numeric key: colour by position in the table
        v, norm, label = np.arange(len(c), dtype=float), None, "cell (row of lambda_star.csv)"
    else:
        v = c[key].to_numpy(float)
        pos = bool((v > 0).all())
        norm = LogNorm(v.min(), v.max()) if pos and v.max() > v.min() else None
        label = f"{_short(key)}{' (log scale)' if norm is not None else ''}"
    norm = norm or Normalize(float(np.nanmin(v)), float(np.nanmax(v)) or 1.0)
    cmap = plt.get_cmap("viridis")
    color = {n: cmap(norm(x)) for n, x in zip(names, v)}
    rest = [k for k in keys if k != key and k in c]
    return Style(color, _panels(c, rest), False, ScalarMappable(norm, cmap), label)


def _panels(c: pd.DataFrame, rest: list[str]) -> list[tuple[str, list[str]]]:
    """Cells grouped by the other keys' values, at most MAX_PANELS groups."""
    if not rest:
        return [("", list(c["cell"]))]
    c = c.sort_values(rest, kind="stable")
    groups = [(", ".join(f"{_short(k)}={_fmt(v)}" for k, v in zip(rest, val if
               isinstance(val, tuple) else (val,))), list(g["cell"]))
              for val, g in c.groupby(rest, sort=False, dropna=False)]
    if len(groups) <= MAX_PANELS:
        return groups
    chunks = np.array_split(np.arange(len(groups)), MAX_PANELS)
    return [(f"{groups[ix[0]][0]} … {groups[ix[-1]][0]}",
             [n for i in ix for n in groups[i][1]]) for ix in chunks]


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)


def lines(ax: Any, curves: list[tuple[np.ndarray, np.ndarray]], colors: list[Any],
          **kw: Any) -> None:
    """Every curve of a panel as one LineCollection."""
    from matplotlib.collections import LineCollection

    keep = [(np.column_stack([x, y])[np.isfinite(x) & np.isfinite(y)], c)
            for (x, y), c in zip(curves, colors)]  # a missing b, B or T leaves NaN x
    keep = [(s, c) for s, c in keep if len(s)]
    if not keep:
        return
    segs = [s for s, _ in keep]
    lc = LineCollection(segs, colors=[c for _, c in keep], **kw)
    lc.set_rasterized(sum(len(s) for s in segs) > RASTER)
    ax.add_collection(lc)
    ax.autoscale_view()


def points(ax: Any, x: np.ndarray, y: np.ndarray, colors: list[Any], **kw: Any) -> None:
    """Points as one scatter (one artist whatever their number)."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        ax.scatter(x[ok], y[ok], c=[c for c, k in zip(colors, ok) if k],
                   rasterized=int(ok.sum()) > RASTER, **kw)


def finish(fig: Any, axes: Any, s: Style, handles: list[tuple[Any, str]]) -> None:
    """A bounded legend under the panels (cells when few, else the markers' meaning only)
    and, for many cells, a colourbar."""
    from matplotlib.lines import Line2D

    if s.few:
        handles = [(Line2D([], [], color=col), cell) for cell, col in s.color.items()] + handles
    else:
        fig.colorbar(s.mappable, ax=axes, label=s.label, fraction=0.03, pad=0.02)
    if handles:
        extra = len(handles) - MAX_LEGEND
        shown = handles[:MAX_LEGEND - 1] if extra > 0 else handles
        labels = [lab for _, lab in shown] + ([f"… {extra + 1} more"] if extra > 0 else [])
        arts = [h for h, _ in shown] + ([Line2D([], [], ls="none")] if extra > 0 else [])
        fig.legend(arts, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncol=min(4, len(arts)), fontsize=8)
