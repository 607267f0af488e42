"""From per-run summaries to per-cell estimates and the fit: the part of the pipeline that
the sensitivity report reruns under other analysis choices (pure: DataFrames in, numbers
out)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis import _best, _decide, _edges, _within
from analysis._schema import AnalysisError

ESTIMATE = {"curve": "per-seed fit of the whole curve (two logistic sides; _curve), "
                     "mean over seeds",
            "smoothed": "per-seed smoothed argmax (one grid step), mean over seeds"}


def cells_and_seeds(runs: pd.DataFrame, keys: list[str], tol: float = 0.02,
                    estimator: str = "curve"
                    ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, Any]]]:
    """(per cell, per cell and seed, pooled seed spread of each target)."""
    cells, seeds, pool = _best.best_lambda(runs, keys, tol=tol, estimator=estimator)
    if cells.empty:
        raise AnalysisError("no run has a finite test accuracy: nothing to analyze")
    per_edge = _edges.seed_edges(runs, cells, estimator)
    edge_cells, edge_pool = _edges.cell_edges(per_edge, cells)
    cells = cells.join(edge_cells.drop(columns="cell"))
    seeds = seeds.merge(per_edge, on=["cell", "seed"], how="outer")
    per_within = _within.seed_within(runs, cells)
    if len(per_within):
        within, within_pool = _within.cell_within(per_within, cells)
        cells = cells.join(within)
        seeds = seeds.merge(per_within, on=["cell", "seed"], how="left")
        edge_pool["within_run_onset"] = within_pool
    spreads = {"lambda_star": {"sd_ln": pool["sd_ln_lambda_star"], "dof": pool["dof"]},
               **edge_pool}
    return cells, seeds, spreads


def estimate(runs: pd.DataFrame, keys: list[str], tol: float = 0.02,
             estimator: str = "curve") -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(cells, seeds, fit): every target fitted, Holm-corrected, the verdict on λ*."""
    cells, seeds, spreads = cells_and_seeds(runs, keys, tol, estimator)
    fit = _decide.fit_targets(cells, spreads)
    fit.update(estimate=ESTIMATE[estimator], estimator=estimator,
               seed_spread={"sd_ln_lambda_star": spreads["lambda_star"]["sd_ln"],
                            "dof": spreads["lambda_star"]["dof"]},
               seed_spreads=spreads)
    return cells, seeds, fit
