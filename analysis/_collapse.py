"""Batch-norm instability: collapse events in one run's curves, and their period.

Lobacheva et al. (2021): with batch norm, weight decay shrinks the
scale-invariant weights until the effective learning rate lr/|w|^2 destabilizes
training; accuracy drops and the loss spikes, the norm jumps, and a new period
begins. An event is a sharp fall of test accuracy below the recent maximum, or
a jump of the training loss above its recent minimum; the run must recover
before the next event counts, so one collapse spread over several evaluations
counts once.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

EVENT_COLUMNS = ("step", "kind", "size")


def _prev(x: np.ndarray, w: int, fill: float, op: str) -> np.ndarray:
    """max (or min) of the previous w finite values' window, NaN where it holds none."""
    xf = np.where(np.isnan(x), fill, x)
    win = np.lib.stride_tricks.sliding_window_view(np.r_[np.full(w, fill), xf], w)[:len(x)]
    out = win.max(axis=1) if op == "max" else win.min(axis=1)
    return np.where(out == fill, np.nan, out)


def _scan(x: np.ndarray, cand: np.ndarray, ref: np.ndarray, back: np.ndarray
          ) -> list[int]:
    """Event indices: a candidate counts only after the previous event has recovered
    (the first finite index past it where `back` holds); few events, so a short loop."""
    ok = ~np.isnan(x)
    out: list[int] = []
    after = -1
    for i in np.flatnonzero(cand):
        if i <= after:
            continue
        out.append(int(i))
        rec = np.flatnonzero(ok[i + 1:] & back(x[i + 1:], ref[i]))  # type: ignore[operator]
        after = i + 1 + int(rec[0]) if len(rec) else len(x)
    return out


def _falls(x: np.ndarray, drop: float, w: int) -> list[tuple[int, float]]:
    """Indices where x falls >= drop below the max of the previous w values; the run
    must climb back half way before the next fall counts."""
    pm = _prev(x, w, -np.inf, "max")
    with np.errstate(invalid="ignore"):
        cand = ~np.isnan(x) & (x <= pm - drop)
    idx = _scan(x, cand, pm, lambda v, level: v >= level - drop / 2)
    return [(i, float(pm[i] - x[i])) for i in idx]


def _spikes(x: np.ndarray, factor: float, w: int) -> list[tuple[int, float]]:
    """Indices where x jumps >= factor above the min of the previous w values.

    The min, not the median: a loss still falling fast would hide a spike
    from a median of values it has since left behind."""
    pm = _prev(x, w, np.inf, "min")
    with np.errstate(invalid="ignore"):
        cand = ~np.isnan(x) & (pm > 0) & (x >= factor * pm)
    idx = _scan(x, cand, pm, lambda v, ref: v <= ref * math.sqrt(factor))
    return [(i, float(x[i] / pm[i])) for i in idx]


def events(step: np.ndarray, acc: np.ndarray, loss: np.ndarray | None = None, *,
           drop: float = 0.25, spike: float = 3.0, window: int = 5
           ) -> list[tuple[float, str, float]]:
    """(step, kind, size) of one run's collapse events, sorted by step."""
    order = np.argsort(step, kind="stable")
    s = np.asarray(step, float)[order]
    evs = [(i, "acc_drop", z) for i, z in _falls(np.asarray(acc, float)[order], drop, window)]
    if loss is not None:
        for i, z in _spikes(np.asarray(loss, float)[order], spike, window):
            near = [k for k, (j, kind, _) in enumerate(evs)
                    if kind == "acc_drop" and abs(j - i) <= window]
            if near:
                j, _, fall = evs[near[0]]
                evs[near[0]] = (min(i, j), "both", fall)
            else:
                evs.append((i, "loss_spike", z))
    evs.sort()
    return [(float(s[i]), k, z) for i, k, z in evs]


def detect(step: np.ndarray, acc: np.ndarray, loss: np.ndarray | None = None, *,
           drop: float = 0.25, spike: float = 3.0, window: int = 5) -> pd.DataFrame:
    """Collapse events of one run, sorted by step.

    ``drop``: accuracy fall (absolute) that counts; ``spike``: loss ratio over the
    recent minimum that counts; ``window``: evaluations looked back, and within which a fall and a
    spike are one event (kind ``both``). ``size``: the fall, or the loss ratio.
    """
    return pd.DataFrame(events(step, acc, loss, drop=drop, spike=spike, window=window),
                        columns=list(EVENT_COLUMNS))


def period(steps: np.ndarray) -> tuple[float, float]:
    """Median interval between events (steps) and its coefficient of variation.

    NaN with fewer than two events; a small CV means the collapses are periodic.
    """
    gaps = np.diff(np.sort(np.asarray(steps, float)))
    if len(gaps) == 0:
        return math.nan, math.nan
    cv = float(np.std(gaps) / np.mean(gaps)) if len(gaps) > 1 else math.nan
    return float(np.median(gaps)), cv
