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


def _falls(x: list[float], drop: float, w: int) -> list[tuple[int, float]]:
    """Indices where x falls >= drop below the max of the previous w values."""
    out, down, level = [], False, 0.0
    for i, v in enumerate(x):
        if math.isnan(v):
            continue
        prev = [u for u in x[max(0, i - w):i] if not math.isnan(u)]
        if down:
            down = v < level - drop / 2  # recovered half way: ready for the next event
            continue
        if prev and v <= max(prev) - drop:
            out.append((i, max(prev) - v))
            down, level = True, max(prev)
    return out


def _spikes(x: list[float], factor: float, w: int) -> list[tuple[int, float]]:
    """Indices where x jumps >= factor above the min of the previous w values.

    The min, not the median: a loss still falling fast would hide a spike
    from a median of values it has since left behind."""
    out, up, ref = [], False, 0.0
    for i, v in enumerate(x):
        if math.isnan(v):
            continue
        prev = [u for u in x[max(0, i - w):i] if not math.isnan(u)]
        if up:
            up = v > ref * math.sqrt(factor)
            continue
        low = min(prev) if prev else math.nan
        if prev and low > 0 and v >= factor * low:
            out.append((i, v / low))
            up, ref = True, low
    return out


def detect(step: np.ndarray, acc: np.ndarray, loss: np.ndarray | None = None, *,
           drop: float = 0.25, spike: float = 3.0, window: int = 5) -> pd.DataFrame:
    """Collapse events of one run, sorted by step.

    ``drop``: accuracy fall (absolute) that counts; ``spike``: loss ratio over the
    recent minimum that counts; ``window``: evaluations looked back, and within which a fall and a
    spike are one event (kind ``both``). ``size``: the fall, or the loss ratio.
    """
    order = np.argsort(step, kind="stable")
    s = np.asarray(step, float)[order]
    events = [(i, "acc_drop", z) for i, z in _falls(list(np.asarray(acc, float)[order]),
                                                     drop, window)]
    if loss is not None:
        spikes = _spikes(list(np.asarray(loss, float)[order]), spike, window)
        for i, z in spikes:
            near = [k for k, (j, kind, _) in enumerate(events)
                    if kind == "acc_drop" and abs(j - i) <= window]
            if near:
                j, _, fall = events[near[0]]
                events[near[0]] = (min(i, j), "both", fall)
            else:
                events.append((i, "loss_spike", z))
    events.sort()
    return pd.DataFrame([(s[i], k, z) for i, k, z in events], columns=list(EVENT_COLUMNS))


def period(steps: np.ndarray) -> tuple[float, float]:
    """Median interval between events (steps) and its coefficient of variation.

    NaN with fewer than two events; a small CV means the collapses are periodic.
    """
    gaps = np.diff(np.sort(np.asarray(steps, float)))
    if len(gaps) == 0:
        return math.nan, math.nan
    cv = float(np.std(gaps) / np.mean(gaps)) if len(gaps) > 1 else math.nan
    return float(np.median(gaps)), cv
