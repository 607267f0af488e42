"""Per run: final metrics, grokking delay, collapse events.

Final metrics are the mean of the last N evaluations, as the seed's sweep
plotted them (N = 50); a per-run table has one evaluation, taken as given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import _collapse
from analysis._schema import METRICS

DELAY_LEVELS = (0.5, 0.9)
# Per-run columns carried from the canonical frame into the summary.
_RUN_COLUMNS = ("run", "cell", "seed", "data_seed", "lam", "weight_decay", "decay_per_step",
                "lambda_norm", "lr", "batch_size", "train_size", "T", "batch_norm", "bn_eps")


def finals(hist: pd.DataFrame, last: int = 50) -> pd.DataFrame:
    """final_<metric> per run: mean of the last `last` finite evaluations."""
    out = {}
    ordered = hist.sort_values(["run", "step"], na_position="first", kind="stable")
    for m in (m for m in METRICS if m in hist):
        sub = ordered[["run", m]].dropna()
        out[f"final_{m}"] = sub.groupby("run").tail(last).groupby("run")[m].mean()
    return pd.DataFrame(out)


def delays(hist: pd.DataFrame, levels: tuple[float, ...] = DELAY_LEVELS) -> pd.DataFrame:
    """The first step at which test accuracy reaches each level (NaN if never)."""
    out = {}
    for q in levels:
        hit = hist[hist["test_acc"] >= q]
        out[f"step_to_{q:g}"] = hit.groupby("run")["step"].min()
    return pd.DataFrame(out)


def collapses(hist: pd.DataFrame, **kw: float) -> pd.DataFrame:
    """All runs' collapse events: run, step, kind, size."""
    frames = []
    loss = "train_loss" if "train_loss" in hist else None
    for run, g in hist.groupby("run", sort=False):
        ev = _collapse.detect(g["step"].to_numpy(), g["test_acc"].to_numpy(),
                              g[loss].to_numpy() if loss else None, **kw)
        frames.append(ev.assign(run=run))
    cols = ["run", *_collapse.EVENT_COLUMNS]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def summarize(hist: pd.DataFrame, keys: list[str], curves: bool, last: int = 50
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per run, collapse events). Delays and collapses need curves."""
    cols = [c for c in dict.fromkeys([*_RUN_COLUMNS, *keys]) if c in hist]
    runs = hist.drop_duplicates("run")[cols].set_index("run")
    runs["n_evals"] = hist.groupby("run").size()
    runs = runs.join(finals(hist, last))
    if curves:
        events = collapses(hist)
        runs = runs.join(delays(hist))
        runs["n_collapses"] = events.groupby("run").size().reindex(runs.index).fillna(0)
        per = events.groupby("run")["step"].apply(lambda s: _collapse.period(s.to_numpy()))
        runs["collapse_period"] = per.map(lambda p: p[0]).reindex(runs.index)
        runs["collapse_period_cv"] = per.map(lambda p: p[1]).reindex(runs.index)
    else:
        events = pd.DataFrame(columns=["run", *_collapse.EVENT_COLUMNS])
        for c in (*(f"step_to_{q:g}" for q in DELAY_LEVELS), "n_collapses", "collapse_period"):
            runs[c] = np.nan
    return runs.reset_index(), events
