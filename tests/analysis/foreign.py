"""A per-evaluation table as another tracker exports it (W&B, MLflow, Optuna, Ray Tune):
one row per run per evaluation, the run named in a column, config repeated on each row.

The accuracy law is `synth`'s (two edges, each following the sqrt rule here: onset and
collapse d ∝ sqrt(b/(B·T))), so each cell's true λ* is known. Built with numpy, not a
loop over runs, so the same generator serves 16 cells and 400.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.analysis.synth import D_ONSET, GAP, LR, curves, d_edge, true_ln_star

SQRT = (0.5, -0.5, -0.5)  # exponents of b, B, T: the sqrt rule
B = 4000


def foreign_table(bs: tuple[int, ...] = (16, 32, 64, 128),
                  Ts: tuple[float, ...] = (25.0, 50.0, 100.0, 200.0),
                  lams: np.ndarray | None = None, seeds: int = 2, n_evals: int = 40,
                  noise: float = 0.02, run_col: str = "run_id", seed: int = 0
                  ) -> tuple[pd.DataFrame, dict[tuple[float, float], float]]:
    """(the table, true PyTorch weight_decay λ* per (b, T)). Columns: `run_col`,
    batch_size, train_size, epochs, lr, weight_decay, seed, step, test_acc, train_acc,
    test_loss, train_loss, weight_norm -- the issue's export."""
    rng = np.random.default_rng(seed)
    lams = np.geomspace(1e-3, 4.5, 20) if lams is None else lams
    cfg = pd.DataFrame([dict(batch_size=b, epochs=T, weight_decay=wd, seed=s)
                        for b in bs for T in Ts for s in range(seeds) for wd in lams])
    b, T = cfg["batch_size"].to_numpy(float), cfg["epochs"].to_numpy(float)
    x_on = np.log(d_edge(D_ONSET, SQRT, b, B, T) / LR)
    x_col = np.log(d_edge(D_ONSET * np.exp(GAP), SQRT, b, B, T) / LR)
    shift = 0.1 * rng.standard_normal(len(cfg) // len(lams)).repeat(len(lams))
    test, train = curves(np.log(cfg["weight_decay"].to_numpy()) - shift, x_on, x_col)
    n = len(cfg)
    total = T * np.floor(B / b)
    frac = np.arange(1, n_evals + 1) / n_evals
    rise = 1 / (1 + np.exp(-(frac - 0.3) / 0.05))  # grokked well before the final window
    te = 0.02 + (test[:, None] - 0.02) * rise[None, :]
    te = np.clip(te + noise * rng.standard_normal((n, n_evals)), 0, 1)
    tr = np.clip(train[:, None] * (0.5 + 0.5 * rise[None, :])
                 + noise * rng.standard_normal((n, n_evals)), 0, 1)
    run = np.array([f"{run_col[:3]}-{i:05d}-{rng.integers(1 << 30):08x}" for i in range(n)])
    df = pd.DataFrame({
        run_col: run.repeat(n_evals),
        **{c: cfg[c].to_numpy().repeat(n_evals) for c in ("batch_size", "epochs")},
        "train_size": B, "lr": LR,
        **{c: cfg[c].to_numpy().repeat(n_evals) for c in ("weight_decay", "seed")},
        "step": (total[:, None] * frac[None, :]).round().ravel(),
        "test_acc": te.ravel(), "train_acc": tr.ravel(),
        "test_loss": (0.2 * (1 - te)).ravel(), "train_loss": (0.2 * (1 - tr) + 1e-3).ravel(),
        "weight_norm": (5 + 40 * np.exp(-frac))[None, :].repeat(n, 0).ravel()})
    truth = {(bb, TT): float(np.exp(true_ln_star(
        np.log(d_edge(D_ONSET, SQRT, bb, B, TT) / LR),
        np.log(d_edge(D_ONSET * np.exp(GAP), SQRT, bb, B, TT) / LR)))) for bb in bs for TT in Ts}
    return df, truth
