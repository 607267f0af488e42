"""The refine tests' grid (tests/sweep/runner/test_refine_*.py): the digits task, 20
epochs, 6 λ × 2 seeds in one pack."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import sweep
from sweep.store import study as st

GRID = """name = "rf"
preset = "digits"

[fixed]
epochs = 20

[grid]
weight_decay = [0.0, 0.01, 0.1, 1.0, 10.0, 100.0]
seed = [0, 1]

[run]
pack = 16
checkpoint_every = 40

[refine]
"""
GRID_STEPS = 12 * 320  # 12 members, 1,000 images / batch 64 -> 16 steps an epoch, 20 epochs


def _spec(refine: str) -> sweep.Spec:
    return sweep.parse(GRID + refine)


def _results(study: Path) -> pd.DataFrame:
    return pd.read_csv(study / st.RESULTS, dtype={"config_hash": str})
