"""The refine loop judges members on the analysis's final metrics (the window mean), not
on results.csv's single last evaluation, so its stop and the report agree."""

from __future__ import annotations

import pandas as pd
import pytest

from sweep.runner.refine import _window_finals


def _tables():
    ok = pd.DataFrame({"config_hash": ["a", "b"], "last_test_acc": [0.40, 0.9],
                       "last_train_acc": [1.0, 1.0], "total_steps": [100, 100]})
    rows = []
    for h, accs in (("a", [0.0] * 8 + [0.7, 0.6, 0.4]), ("b", [0.9] * 11)):
        rows += [{"config_hash": h, "step": 10 * (i + 1) - 10, "test_acc": a,
                  "train_acc": 1.0} for i, a in enumerate(accs)]
    return ok, pd.DataFrame(rows)


def test_members_get_the_window_mean_the_analysis_uses():
    ok, hist = _tables()
    got = _window_finals(ok, hist).set_index("config_hash")
    # a's window (steps >= 0.9 x 100): 0.6 and 0.4 -> 0.5, not its last 0.4
    assert got.loc["a", "test_acc"] == pytest.approx(0.5)
    assert got.loc["b", "test_acc"] == pytest.approx(0.9)
    assert list(ok.columns) == ["config_hash", "last_test_acc", "last_train_acc",
                                "total_steps"]  # the caller's table is left alone


def test_without_history_the_last_values_stand():
    ok, _ = _tables()
    assert _window_finals(ok, pd.DataFrame()).equals(ok)

