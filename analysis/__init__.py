"""wdsweep's analysis: best weight decay per cell, scaling-rule fit, HTML report.

Public API:
    analyze(data, out=None, window=0.1, last=None, run_col=None, ignore=(), figures=True)
                                       -- the whole pipeline; data is a study dir, a
                                         Ray Tune experiment dir, a CSV/Parquet file
                                         or a DataFrame; returns an Analysis
    Analysis                           -- its results as DataFrames (.runs, .cells, .seeds,
                                         .curves, .events, .hist), the fit as a dict
                                         (.fit, as fit.json) and .write(out)
    AnalysisError                      -- bad input; str() is one line
    load(data, run_col, ignore)        -- the canonical per-evaluation table and cell keys
    summarize, best_lambda, seed_edges, cell_edges, curve_table, fit_rules,
    detect_collapses, collapse_period, to_weight_decay, RULES
                                       -- the pure steps, DataFrames in, numbers out

Never imports ray (it reads Tune's files with pandas and json) nor torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.errors import AnalysisError

if TYPE_CHECKING:
    import pandas as pd

    from analysis._normalize import Frame

# The public names and where they live: imported on first use (PEP 562), so that
# `import analysis._options` (the CLI's flags) loads neither pandas nor matplotlib.
_LAZY = {
    "Analysis": ("analysis._analysis", "Analysis"), "analyze": ("analysis._analysis", "analyze"),
    "best_lambda": ("analysis._best", "best_lambda"),
    "curve_table": ("analysis._best", "curve_table"),
    "detect_collapses": ("analysis._collapse", "detect"),
    "collapse_period": ("analysis._collapse", "period"),
    "fit_rules": ("analysis._decide", "fit_rules"),
    "cell_edges": ("analysis._edges", "cell_edges"),
    "seed_edges": ("analysis._edges", "seed_edges"),
    "RULES": ("analysis._fit", "RULES"), "to_weight_decay": ("analysis._fit", "to_weight_decay"),
    "Frame": ("analysis._normalize", "Frame"), "summarize": ("analysis._summary", "summarize"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    mod, attr = _LAZY[name]
    value = getattr(importlib.import_module(mod), attr)
    globals()[name] = value
    return value


def load(data: str | Path | pd.DataFrame, run_col: str | None = None,
         ignore: Sequence[str] = ()) -> Frame:
    """Read any input kind into the canonical table (Frame.hist) with its cell keys;
    `run_col` and `ignore` as in `analyze`."""
    from analysis._load import read
    from analysis._normalize import normalize

    return normalize(read(data), run_col, ignore)


__all__ = [
    "RULES", "Analysis", "AnalysisError", "Frame", "analyze", "best_lambda", "cell_edges",
    "collapse_period", "curve_table", "detect_collapses", "fit_rules", "load", "seed_edges",
    "summarize", "to_weight_decay",
]
