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

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis._analysis import Analysis, analyze
from analysis._best import best_lambda, curve_table
from analysis._collapse import detect as detect_collapses
from analysis._collapse import period as collapse_period
from analysis._decide import fit_rules
from analysis._edges import cell_edges, seed_edges
from analysis._fit import RULES, to_weight_decay
from analysis._load import read as _read
from analysis._normalize import Frame
from analysis._normalize import normalize as _normalize
from analysis._schema import AnalysisError
from analysis._summary import summarize


def load(data: str | Path | pd.DataFrame, run_col: str | None = None,
         ignore: Sequence[str] = ()) -> Frame:
    """Read any input kind into the canonical table (Frame.hist) with its cell keys;
    `run_col` and `ignore` as in `analyze`."""
    return _normalize(_read(data), run_col, ignore)


__all__ = [
    "RULES", "Analysis", "AnalysisError", "Frame", "analyze", "best_lambda", "cell_edges",
    "collapse_period", "curve_table", "detect_collapses", "fit_rules", "load", "seed_edges",
    "summarize", "to_weight_decay",
]
