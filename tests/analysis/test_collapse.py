"""Batch-norm collapse events: detection and period."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import collapse_period, detect_collapses


def _periodic(n: int = 200, every: int = 40, width: int = 3) -> tuple[np.ndarray, ...]:
    step = 78 * np.arange(1, n + 1)
    acc = np.full(n, 0.95)
    loss = np.full(n, 1e-3)
    for start in range(every, n, every):
        acc[start:start + width] = [0.3, 0.5, 0.8][:width]
        loss[start] = 2e-2
    return step, acc, loss


def test_periodic_collapses_count_once_each_with_their_period() -> None:
    step, acc, loss = _periodic()
    ev = detect_collapses(step, acc, loss)
    assert len(ev) == 4  # at evaluations 40, 80, 120, 160
    assert set(ev["kind"]) == {"both"}  # the fall and the spike are one event
    assert ev["step"].tolist() == [78 * 41, 78 * 81, 78 * 121, 78 * 161]
    per, cv = collapse_period(ev["step"].to_numpy())
    assert per == pytest.approx(78 * 40)
    assert cv == pytest.approx(0.0)


def test_a_noisy_grokking_curve_has_no_events() -> None:
    rng = np.random.default_rng(0)
    step = np.arange(1, 301) * 78.0
    acc = 0.95 / (1 + np.exp(-(step - 12000) / 1500)) + 0.01 * rng.standard_normal(300)
    loss = 0.1 * np.exp(-step / 5000) + 1e-3 * (1 + 0.1 * rng.random(300))
    assert detect_collapses(step, acc, loss).empty


def test_a_loss_spike_alone_is_an_event_and_one_event_has_no_period() -> None:
    step = np.arange(50.0)
    loss = np.full(50, 0.01)
    loss[30] = 0.2
    ev = detect_collapses(step, np.full(50, 0.9), loss)
    assert ev[["step", "kind"]].values.tolist() == [[30.0, "loss_spike"]]
    assert np.isnan(collapse_period(ev["step"].to_numpy())[0])
