"""The pipeline: load, normalize, summarize runs, best λ per cell, fit; then write.

Everything is computed before anything is written, so bad input leaves the
output directory untouched.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis import _best, _estimate, _load, _normalize, _sensitivity, _summary
from analysis._schema import AXES, UNIT_LABEL, AnalysisError

NO_FIGURES = "figures not drawn (--no-figures / figures=False): the notes below on absent "\
    "figures do not apply"


@dataclass
class Analysis:
    runs: pd.DataFrame  # one row per run: summary.csv
    cells: pd.DataFrame  # one row per cell: lambda_star.csv
    seeds: pd.DataFrame  # one row per cell and seed: its λ* and edges (seeds.csv)
    curves: pd.DataFrame  # mean and band over seeds per (cell, λ, metric)
    fit: dict[str, Any]  # fit.json
    events: pd.DataFrame  # collapse events: run, step, kind, size
    hist: pd.DataFrame  # the canonical per-evaluation table
    keys: list[str]  # cell keys
    unit: str  # unit of λ in `cells` and `curves`
    has_curves: bool
    warnings: list[str] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)
    # The study's record of its refinement rounds (study.json's `refine`), as the caller
    # handed it in: the report's "Refinement" section names the rounds and the stop from
    # it; what was spent and reached comes from the tables (analysis._refine_report).
    refine: dict[str, Any] | None = None

    @property
    def unit_label(self) -> str:
        return UNIT_LABEL[self.unit]

    def write(self, out: str | Path, figures: bool = True) -> Path:
        """Write the CSVs, fit.json, the figures (unless not `figures`) and report.html into
        `out`; return the report."""
        from analysis import _plots, _report  # lazy: matplotlib

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.runs.to_csv(out / "summary.csv", index=False)
        self.cells.to_csv(out / "lambda_star.csv", index=False)
        self.seeds.to_csv(out / "seeds.csv", index=False)
        self.curves.to_csv(out / "curves.csv", index=False)
        if len(self.runs) >= PARQUET_RUNS:  # large: the per-run tables as Parquet too
            _parquet(self.runs, out / "summary.parquet")
            _parquet(self.curves, out / "curves.parquet")
        self.events.to_csv(out / "collapses.csv", index=False)
        fit = json.dumps(_jsonable(self.fit), indent=2, ensure_ascii=False)
        (out / "fit.json").write_text(fit + "\n", encoding="utf-8")
        if figures:
            self.figures = _plots.all_figures(self, out)
        elif NO_FIGURES not in self.warnings:
            self.warnings.append(NO_FIGURES)
        return _report.write(self, out)


PARQUET_RUNS = 1000  # runs from which summary and curves are also written as Parquet


def _parquet(df: pd.DataFrame, path: Path) -> None:
    """Typed columns as they are; mixed-type object columns as strings (Parquet needs
    one type per column)."""
    obj = [c for c in df.columns if df[c].dtype == object]
    df.astype({c: "string" for c in obj}).to_parquet(path, index=False)


def _jsonable(x: Any) -> Any:
    """NaN and numpy scalars as JSON: NaN/inf become null."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def _checks(runs: pd.DataFrame, cells: pd.DataFrame, keys: list[str], unit: str,
            curves: bool, window: float, last: int | None) -> list[str]:
    """What the data lets the analysis do, in plain words."""
    w = []
    other = [k for k in keys if k not in AXES]
    if other:
        w.append(f"cells also differ in {', '.join(other)}: the scaling-rule fit pools them "
                 "(one constant for all); fit a subset to separate them")
    if "stopped_step" in runs and (stopped := runs["stopped_step"].notna()).any():
        w.append(f"{int(stopped.sum())} of {len(runs)} runs stopped early (collapsed: "
                 "trainer.early_stop); censored: their final metrics are the mean over their "
                 "own last window before the stop, not over the run's end (summary.csv "
                 "stopped_step)")
    nan = runs["final_test_acc"].isna()
    if nan.any():
        w.append(f"{int(nan.sum())} of {len(runs)} runs have NaN test_acc (listed in "
                 "summary.csv): left out of the λ curves")
    few = runs["n_window"] < 3
    if curves and last is None and few.any():
        w.append(f"{int(few.sum())} of {len(runs)} runs have fewer than 3 evaluations in the "
                 f"final {window:.0%} of their steps (as few as {int(runs['n_window'].min())})"
                 ": their final metrics rest on too few evaluations; evaluate more often or "
                 "widen --window")
    pos = runs.loc[~nan & (runs["lam"] > 0)]
    lams = pos["lam"].map(_normalize.fmt).nunique()
    per_cell = pos.groupby("cell")["lam"].nunique().max() if len(pos) else 0
    if per_cell <= 1:
        what = ("a single λ > 0" if lams == 1 else "no λ > 0 (only the λ = 0 baseline)"
                if not lams else f"each cell holds a single λ > 0 ({lams} over the table)")
        w.append(f"{what} ({unit}): no best λ can be located and no rule fitted; "
                 "only per-run metrics and curves are reported")
    elif "edge" in cells and (cells["edge"] != "").any():
        n = int((cells["edge"] != "").sum())
        w.append(f"{n} of {len(cells)} cells have their best λ at the edge of the grid "
                 "(see the extend column): they are left out of the fit")
    low = cells["low_acc"].fillna(False).astype(bool) if "low_acc" in cells else None
    if low is not None and low.any():
        w.append(f"{int(low.sum())} of {len(cells)} cells never reach test accuracy "
                 f"{_best.LOW_ACC} ({', '.join(cells.loc[low, 'cell'].astype(str)[:3])}"
                 f"{', ...' if low.sum() > 3 else ''}): their best λ means little and they "
                 "are left out of the fit")
    if len(cells) and (cells["n_seeds"] <= 1).all():
        w.append("one seed per cell: no seed spread, so intervals hold the grid resolution "
                 "only and the verdict cannot be tested")
    elif len(cells) and (cells["n_seeds"] < 3).any():
        w.append(f"{int((cells['n_seeds'] < 3).sum())} of {len(cells)} cells have fewer than 3 "
                 "seeds: the seed spread is pooled over cells, and the verdict is at most "
                 "'weak'")
    if not curves:
        w.append("no per-evaluation history: final metrics as given (not a mean over the "
                 "final window); no delays, no collapse events, no training curves")
    return w


def analyze(data: str | Path | pd.DataFrame, out: str | Path | None = None, *,
            window: float = _summary.WINDOW, last: int | None = None, tol: float = 0.02,
            run_col: str | None = None, ignore: Sequence[str] = (), figures: bool = True,
            sensitivity: bool = True, refine: dict[str, Any] | None = None) -> Analysis:
    """Analyze a study dir, a Ray Tune experiment dir, a CSV/Parquet table or a DataFrame.

    ``window``: the final fraction of each run's steps whose evaluations are averaged
    for its final metrics; ``last``: instead, the number of last evaluations averaged;
    ``tol``: the plateau is every λ within this fraction of the best mean accuracy;
    ``run_col``: the column naming runs (found by name when None); ``ignore``: columns
    left out altogether; ``figures``: False writes the tables and report without them;
    ``sensitivity``: False skips the sensitivity report (fit.json then has none);
    ``refine``: the study's record of its refinement rounds (study.json's ``refine``, which
    the caller reads: the analysis never does): with it, and members from more than one
    experiment, the report gains a "Refinement" section (compute per round and cell
    against a full grid at the resolution reached, and the intervals reached).
    Raises AnalysisError (one line) when nothing can be analyzed.
    """
    if refine is not None and not isinstance(refine, dict):
        raise AnalysisError(f"refine must be the study's refine record (a dict), got "
                            f"{type(refine).__name__}")
    if last is not None and last < 1:
        raise AnalysisError(f"--last must be >= 1, got {last}")
    if not 0 < window <= 1:
        raise AnalysisError(f"--window must be a fraction of the run in (0, 1], got {window}")
    if not 0 <= tol < 1:
        raise AnalysisError(f"tol must be a fraction in [0, 1), got {tol}")
    frame = _normalize.normalize(_load.read(data), run_col, ignore)
    runs, events = _summary.summarize(frame.hist, frame.keys, frame.curves, window, last)
    cells, seeds, fit = _estimate.estimate(runs, frame.keys, tol=tol)
    fit.update(unit_of_lambda=frame.unit, tolerance=tol, tolerance_kind="relative",
               window=window if last is None else None, last=last)
    if sensitivity:  # False: no reruns (verdict.stable stays unset); for calibration loops
        _sensitivity.attach(fit, runs, frame.hist, frame.keys, frame.curves, cells, window,
                            last, tol)
    warn = [*frame.warnings, *_checks(runs, cells, frame.keys, frame.unit, frame.curves,
                                      window, last), *fit["notes"]]
    a = Analysis(runs, cells, seeds, _best.curve_table(runs), fit, events, frame.hist,
                 frame.keys, frame.unit, frame.curves, warn, refine=refine)
    if out is not None:
        a.write(out, figures)
    return a
