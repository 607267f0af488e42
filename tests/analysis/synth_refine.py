"""A synthetic oracle for adaptive refinement: members "trained" instantly on curves whose
edges are known (the two-edge curves of `tests/analysis/synth.py`), with seed shifts and
accuracy noise.

A member's result depends only on (replicate, cell, λ, seed), as a real run depends only
on its config: the same member asked twice, or on another grid, gives the same numbers,
and a seed shifts its whole curve in ln λ by the same amount wherever it is sampled. Cells
differ in T (epochs); both edges follow the sqrt rule in per-step decay, as in synth.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tests.analysis import synth

SQRT = (0.5, -0.5, -0.5)
B, BATCH = 4000, 64
T_CELLS = (12.5, 50.0, 200.0)


@dataclass(frozen=True)
class Oracle:
    """`cells`: values of T; `flat`: no effect (accuracy flat in λ, train at 1, no edges)."""

    cells: Sequence[float] = T_CELLS
    noise: float = 0.02
    seed_sd: float = 0.1
    rep: int = 0
    flat: bool = False

    def edges(self, T: float) -> tuple[float, float]:
        """(ln λ onset-rise, ln λ collapse-fall) of the cell's noiseless curves."""
        x_on = math.log(synth.d_edge(synth.D_ONSET, SQRT, BATCH, B, T) / synth.LR)
        x_col = math.log(synth.d_edge(synth.D_ONSET * math.exp(synth.GAP), SQRT, BATCH, B, T)
                         / synth.LR)
        return x_on, x_col

    def truth(self, T: float) -> dict[str, float]:
        """ln λ of the true λ*, onset and collapse (the noiseless curve, seed shift 0)."""
        t = synth.true_targets(*self.edges(T))
        return {"opt": t["lambda_star"], "onset": t["onset"], "collapse": t["collapse"]}

    def _rng(self, *key: object) -> np.random.Generator:
        return np.random.default_rng(zlib.crc32(repr((self.rep, *key)).encode()))

    def shift(self, T: float, seed: int) -> float:
        return self.seed_sd * float(self._rng("shift", T, seed).standard_normal())

    def one(self, point: dict[str, Any]) -> dict[str, Any]:
        T, wd, seed = float(point["T"]), float(point["weight_decay"]), int(point["seed"])
        e1, e2 = self._rng("noise", T, seed, f"{wd:.9g}").standard_normal(2)
        if self.flat:
            test, train = 0.9, 1.0
        else:
            x = math.log(wd) - self.shift(T, seed) if wd > 0 else -50.0
            te, tr = synth.curves(np.asarray(x), *self.edges(T))
            test, train = float(te), float(tr)
        return {"T": T, "weight_decay": wd, "seed": seed,
                "test_acc": float(np.clip(test + self.noise * e1, 0, 1)),
                "train_acc": float(np.clip(train + self.noise * e2, 0, 1))}

    def evaluate(self, points: Sequence[dict[str, Any]]) -> pd.DataFrame:
        cols = ["T", "weight_decay", "seed", "test_acc", "train_acc"]
        return pd.DataFrame([self.one(p) for p in points], columns=cols)

    @staticmethod
    def steps(point: dict[str, Any]) -> float:
        """Member-steps of one member: T epochs of B/b steps."""
        return float(point["T"]) * B / BATCH

    def grid(self, lams: Sequence[float], seeds: Sequence[int], baseline: bool = True
             ) -> pd.DataFrame:
        """Every cell on a fixed grid (λ = 0 too, with `baseline`)."""
        pts = [{"T": T, "weight_decay": float(w), "seed": s} for T in self.cells
               for s in seeds for w in ([0.0] if baseline else []) + list(lams)]
        return self.evaluate(pts)


def log_grid(lo: float, hi: float, ratio: float) -> np.ndarray:
    """lo, lo·ratio, ... up to hi (inclusive within rounding)."""
    n = int(math.floor(math.log(hi / lo) / math.log(ratio) + 1e-9)) + 1
    return lo * ratio ** np.arange(n)
