"""Per run: final metrics, grokking delay, collapse events.

Final metrics are the mean over the run's final window: by default the evaluations in
its last 10% of steps (step >= 0.9 x the run's last step), so runs of different length
are compared at the same fraction of their training, and a sparse evaluation cadence
never pulls early, pre-grokking evaluations into the mean. `last=N` (the mean of the
last N evaluations) stays as an option. A per-run table has one evaluation, taken as
given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import _collapse
from analysis._schema import FINAL, METRICS

DELAY_LEVELS = (0.5, 0.9)
WINDOW = 0.1  # fraction of a run's steps whose evaluations make its final metrics
STOP_EVALS = 5  # trainer.config's stop_evals default: a stopped run's window, if unrecorded
# Per-run columns carried from the canonical frame into the summary.
_RUN_COLUMNS = ("run", "cell", "seed", "data_seed", "lam", "weight_decay", "decay_per_step",
                "lambda_norm", "lr", "batch_size", "train_size", "T", "batch_norm", "bn_eps",
                "stopped_step", "decay_steps")


def finals(hist: pd.DataFrame, window: float = WINDOW, last: int | None = None
           ) -> pd.DataFrame:
    """final_<metric> per run: mean over the final `window` of the run's steps (or, with
    `last`, of its last `last` finite evaluations); n_window: test accuracies averaged."""
    h = hist.sort_values(["run", "step"], na_position="first", kind="stable")
    # A run stopped early (trainer.early_stop) is censored: its window is the evaluations
    # its stop rested on (the last stop_evals, collapsed and flat), not a fraction of a
    # run it never finished.
    stopped = h["stopped_step"].notna() if "stopped_step" in h else pd.Series(False, h.index)
    if last is None:
        end = h.groupby("run")["step"].transform("max")
        h = h[~(h["step"] < (1.0 - window) * end) | stopped]  # NaN steps (no history) kept
        stopped = stopped.loc[h.index]
    k = h["stop_evals"] if "stop_evals" in h else pd.Series(STOP_EVALS, h.index)
    rank = h.groupby("run").cumcount(ascending=False)  # 0 = the run's last evaluation
    h = h[~stopped | (rank < k.fillna(STOP_EVALS))]
    out = {}
    for m in (m for m in METRICS if m in h):
        v = h[["run", m]].dropna()
        g = (v.groupby("run").tail(last) if last else v).groupby("run")[m]
        out[FINAL + m] = g.mean()
        if m == "test_acc":
            out["n_window"] = g.size()
    return pd.DataFrame(out)


def delays(hist: pd.DataFrame, levels: tuple[float, ...] = DELAY_LEVELS) -> pd.DataFrame:
    """The first step at which test accuracy reaches each level (NaN if never); also the
    run's best test accuracy, the first step reaching half of it (the within-run onset,
    no λ grid involved) and the run's first evaluated step (a half-best reached there is
    censored: it may have come earlier)."""
    out = {}
    for q in levels:
        hit = hist[hist["test_acc"] >= q]
        out[f"step_to_{q:g}"] = hit.groupby("run")["step"].min()
    ok = hist.dropna(subset=["test_acc", "step"])
    best = ok.groupby("run")["test_acc"].max()
    half = ok[ok["test_acc"] >= 0.5 * ok["run"].map(best)]
    out["best_test_acc"] = best
    out["step_to_half_best"] = half.groupby("run")["step"].min()
    out["first_step"] = ok.groupby("run")["step"].min()
    return pd.DataFrame(out)


def collapses(hist: pd.DataFrame, **kw: float) -> pd.DataFrame:
    """All runs' collapse events: run, step, kind, size (one pass over sorted arrays)."""
    h = hist.sort_values(["run", "step"], kind="stable")
    run = h["run"].to_numpy()
    cuts = np.flatnonzero(run[1:] != run[:-1]) + 1
    step, acc = h["step"].to_numpy(float), h["test_acc"].to_numpy(float)
    loss = h["train_loss"].to_numpy(float) if "train_loss" in h else None
    rows = []
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(h)]):
        if hi <= lo:
            continue
        for ev in _collapse.events(step[lo:hi], acc[lo:hi],
                                   None if loss is None else loss[lo:hi], **kw):
            rows.append((run[lo], *ev))
    return pd.DataFrame(rows, columns=["run", *_collapse.EVENT_COLUMNS])


def summarize(hist: pd.DataFrame, keys: list[str], curves: bool, window: float = WINDOW,
              last: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per run, collapse events). Delays and collapses need curves."""
    cols = [c for c in dict.fromkeys([*_RUN_COLUMNS, *keys]) if c in hist]
    runs = hist.drop_duplicates("run")[cols].set_index("run")
    runs["n_evals"] = hist.groupby("run").size()
    runs = runs.join(finals(hist, window, last))
    if curves:
        events = collapses(hist)
        runs = runs.join(delays(hist))
        runs["n_collapses"] = events.groupby("run").size().reindex(runs.index).fillna(0)
        per = events.groupby("run")["step"].apply(lambda s: _collapse.period(s.to_numpy()))
        runs["collapse_period"] = per.map(lambda p: p[0]).reindex(runs.index)
        runs["collapse_period_cv"] = per.map(lambda p: p[1]).reindex(runs.index)
    else:
        events = pd.DataFrame(columns=["run", *_collapse.EVENT_COLUMNS])
        for c in (*(f"step_to_{q:g}" for q in DELAY_LEVELS), "n_collapses", "collapse_period",
                  "best_test_acc", "step_to_half_best", "first_step"):
            runs[c] = np.nan
    return runs.reset_index(), events
