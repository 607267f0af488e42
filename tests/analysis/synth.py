"""Synthetic studies for the analysis tests: data with a known law.

Accuracy against ln λ has two edges, as on the seed task: test accuracy rises steeply at
the onset edge and falls slowly past the collapse edge, where train accuracy drops (an
asymmetric curve, unlike the symmetric plateau an estimator might assume). Each edge's
per-step decay follows its own law d = d0 · (b/b0)^x (B/B0)^y (T/T0)^z, with exponents
given here as numbers (never read back from `analysis.RULES`). Seeds shift the whole curve
in ln λ (sd `seed_sd`) and add accuracy noise (sd `noise`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CENTER = (64, 4000, 50.0)  # b, B, T of the middle cell
# One axis at a time around the middle, a factor 4 each way: every exponent identified.
ONE_AT_A_TIME = [CENTER, (16, 4000, 50.0), (256, 4000, 50.0), (64, 1000, 50.0),
                 (64, 16000, 50.0), (64, 4000, 12.5), (64, 4000, 200.0)]
LR = 1e-3
D_ONSET = 2e-5  # per-step decay of the onset edge at the middle cell
GAP = 2.5  # ln(d_collapse / d_onset) at the middle cell: a good region ~12x wide


def d_edge(d0: float, e: tuple[float, float, float], b: float, B: float, T: float) -> float:
    b0, B0, T0 = CENTER
    return d0 * (b / b0) ** e[0] * (B / B0) ** e[1] * (T / T0) ** e[2]


def curves(x: np.ndarray, x_on: float, x_col: float) -> tuple[np.ndarray, np.ndarray]:
    """(test, train) accuracy at ln λ = x: steep rise at x_on, slow fall past x_col."""
    rise = 1 / (1 + np.exp(-(x - x_on) / 0.12))
    fall = 1 / (1 + np.exp((x - x_col) / 0.35))
    train = 0.02 + 0.98 / (1 + np.exp((x - x_col) / 0.15))
    return 0.03 + 0.94 * rise * fall, train


def true_ln_star(x_on: float, x_col: float) -> float:
    """ln λ at the noiseless test curve's maximum."""
    fine = np.linspace(x_on - 2, x_col + 2, 20001)
    return float(fine[np.argmax(curves(fine, x_on, x_col)[0])])


def grid(lo: float = 3e-4, hi: float = 30.0, ratio: float = 2**0.5) -> np.ndarray:
    return lo * ratio ** np.arange(int(np.log(hi / lo) / np.log(ratio)) + 1)


def make_study(onset: tuple[float, float, float], collapse: tuple[float, float, float] | None
               = None, cells: list[tuple[float, float, float]] | None = None, seeds: int = 4,
               noise: float = 0.02, seed_sd: float = 0.1, lams: np.ndarray | None = None,
               baseline: bool = True, seed: int = 0) -> pd.DataFrame:
    """One row per run, columns as a study's results.csv (last_* metrics, no history)."""
    rng = np.random.default_rng(seed)
    lams = grid() if lams is None else lams
    rows = []
    for b, B, T in cells or ONE_AT_A_TIME:
        x_on = np.log(d_edge(D_ONSET, onset, b, B, T) / LR)
        x_col = np.log(d_edge(D_ONSET * np.exp(GAP), collapse or onset, b, B, T) / LR)
        for s in range(seeds):
            shift = seed_sd * rng.standard_normal()
            for wd in ([0.0] if baseline else []) + list(lams):
                x = np.log(wd) - shift if wd > 0 else -50.0
                test, train = curves(np.asarray(x), x_on, x_col)
                rows.append(dict(batch_size=b, train_size=B, epochs=T, lr=LR, weight_decay=wd,
                                 seed=s, status="completed",
                                 last_test_acc=float(np.clip(test + noise *
                                                             rng.standard_normal(), 0, 1)),
                                 last_train_acc=float(np.clip(train + noise *
                                                              rng.standard_normal(), 0, 1))))
    return pd.DataFrame(rows)


def make_history(results: pd.DataFrame, n_evals: int = 40, every: int = 50,
                 period: int | None = None) -> pd.DataFrame:
    """history.csv rows for results (with config_hash): test accuracy rises after a delay
    of 0.003/d steps (at most half the run) to its final value; with `period`, batch-norm
    runs collapse every `period` steps (accuracy halves, the training loss jumps 20x)."""
    rows = []
    steps = every * np.arange(1, n_evals + 1)
    for _, r in results.iterrows():
        d = r["lr"] * r["weight_decay"]
        delay = min(0.003 / d, steps[-1] / 2) if d > 0 else np.inf
        rise = 1 / (1 + np.exp(-(steps - delay) / (0.15 * delay))) if d > 0 else 0 * steps + 1
        test = 0.02 + (r["last_test_acc"] - 0.02) * rise
        train = np.minimum(1.0, r["last_train_acc"] * (0.5 + steps / steps[-1]))
        loss = 0.2 * (1 - train) + 1e-3
        if period and r.get("batch_norm", False):
            hit = (steps % period) < every
            test, loss = np.where(hit, test / 2, test), np.where(hit, loss * 20, loss)
        norm = 40 * np.exp(-d * steps) + 5
        for s, te, tr, lo, wn in zip(steps, test, train, loss, norm):
            rows.append(dict(config_hash=r["config_hash"], seed=r["seed"], lr=r["lr"],
                             weight_decay=r["weight_decay"], batch_size=r["batch_size"],
                             train_size=r["train_size"], step=s, epoch=s // 50,
                             train_loss=lo, train_acc=tr, test_loss=2 * lo, test_acc=te,
                             weight_norm=wn))
    return pd.DataFrame(rows)


def write_study(path: Path, results: pd.DataFrame, history: pd.DataFrame | None) -> Path:
    """A directory laid out as `wdsweep run` writes it (spec.toml, results.csv, history.csv)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "spec.toml").write_text("# synthetic\n")
    results.to_csv(path / "results.csv", index=False)
    if history is not None:
        history.to_csv(path / "history.csv", index=False)
    return path


def small_study(seed: int = 0) -> pd.DataFrame:
    """Three cells (b and T vary), 8 λ and λ = 0, 2 seeds, batch norm: a quick report."""
    cells = [(64, 4000, 50.0), (256, 4000, 50.0), (64, 4000, 200.0)]
    df = make_study((0.5, -0.5, -0.5), cells=cells, seeds=2, lams=grid(3e-3, 3.0, 2.0),
                    seed=seed)
    df = df.assign(batch_norm=True, epochs=df["epochs"].astype(int))
    return df.assign(config_hash=[f"h{i:04d}" for i in range(len(df))]).reset_index(drop=True)


def true_targets(x_on: float, x_col: float, tol: float = 0.02) -> dict[str, float]:
    """The noiseless curves' λ* (centre of the test curve's top within `tol` of its
    maximum), onset (test first reaches half its maximum) and collapse (train falls below
    half its plateau), in ln λ: what the grid-free estimators aim at."""
    fine = np.linspace(x_on - 3, x_col + 3, 40001)
    test, train = curves(fine, x_on, x_col)
    top = fine[test >= (1 - tol) * test.max()]
    i = int(np.argmax(train))
    below = np.flatnonzero(train[i:] < 0.5 * train[i])
    return {"lambda_star": float((top[0] + top[-1]) / 2),
            "onset": float(fine[np.flatnonzero(test >= 0.5 * test.max())[0]]),
            "collapse": float(fine[i + below[0]])}
