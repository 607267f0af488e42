"""Synthetic studies for the analysis tests: data with a known law.

`make_study` builds accuracy-vs-λ data whose optimum follows a chosen rule:
d* = C · b^x · B^y · T^z, with a broad plateau in log λ and noise over seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis import RULES

CENTER = (64, 4000, 50.0)  # b, B, T of the middle cell
# One axis at a time around the middle: every exponent identified with 7 cells.
ONE_AT_A_TIME = [CENTER, (16, 4000, 50.0), (256, 4000, 50.0), (64, 1000, 50.0),
                 (64, 16000, 50.0), (64, 4000, 12.5), (64, 4000, 200.0)]
LAMBDA_NORM = 0.04
LR = 1e-3


def d_star(rule: str, b: float, B: float, T: float) -> float:
    """The rule's optimum, equal to the sqrt rule's at the middle cell."""
    x, y, z = RULES[rule]
    b0, B0, T0 = CENTER
    d0 = LAMBDA_NORM * np.sqrt(b0 / (B0 * T0))
    return d0 * (b / b0) ** x * (B / B0) ** y * (T / T0) ** z


def acc_curve(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(test, train) accuracy at u = ln(λ/λ*): a flat top about a factor 3 wide."""
    test = 0.05 + 0.9 * np.exp(-np.abs(u / 1.5) ** 4)
    train = 1.0 - 0.95 / (1 + np.exp(-(u - 1.5) / 0.4))
    return test, train


def make_study(rule: str = "sqrt", cells: list[tuple[float, float, float]] | None = None,
               seeds: int = 3, noise: float = 0.01, n_grid: int = 21, baseline: bool = True,
               seed: int = 0) -> pd.DataFrame:
    """One row per run, columns as a study's results.csv (final_* metrics)."""
    rng = np.random.default_rng(seed)
    b0, B0, T0 = CENTER
    wd0 = d_star("sqrt", b0, B0, T0) / LR
    grid = wd0 * 2.0 ** (0.5 * (np.arange(n_grid) - n_grid // 2))
    rows = []
    for b, B, T in cells or ONE_AT_A_TIME:
        wd_star = d_star(rule, b, B, T) / LR
        for s in range(seeds):
            wds = [0.0, *grid] if baseline else list(grid)
            for wd in wds:
                u = np.log(wd / wd_star) if wd > 0 else -20.0
                test, train = acc_curve(np.asarray(u))
                rows.append(dict(batch_size=b, train_size=B, epochs=T, lr=LR, weight_decay=wd,
                                 seed=s, status="completed",
                                 final_test_acc=float(test) + noise * rng.standard_normal(),
                                 final_train_acc=float(train)))
    return pd.DataFrame(rows)


def make_history(results: pd.DataFrame, n_evals: int = 40, every: int = 50,
                 period: int | None = None) -> pd.DataFrame:
    """history.csv rows for results (with config_hash): test accuracy rises after a delay
    of 0.3/d steps to its final value; with `period`, batch-norm runs collapse every
    `period` steps (accuracy falls by half, the training loss jumps tenfold)."""
    rows = []
    steps = every * np.arange(1, n_evals + 1)
    for _, r in results.iterrows():
        d = r["lr"] * r["weight_decay"]
        delay = 0.3 / d if d > 0 else np.inf
        rise = 1 / (1 + np.exp(-(steps - delay) / (0.15 * delay))) if d > 0 else 0 * steps + 1
        test = 0.02 + (r["final_test_acc"] - 0.02) * rise
        train = np.minimum(1.0, r["final_train_acc"] * (0.5 + steps / steps[-1]))
        loss = 0.2 * (1 - train) + 1e-3
        if period and r.get("batch_norm", False):
            hit = (steps % period) < every
            test, loss = np.where(hit, test / 2, test), np.where(hit, loss * 10, loss)
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
    """Three cells (b and T vary), 7 λ and λ = 0, 2 seeds, batch norm: a quick report."""
    cells = [(64, 4000, 50.0), (256, 4000, 50.0), (64, 4000, 200.0)]
    df = make_study("sqrt", cells=cells, seeds=2, n_grid=21, seed=seed)
    df = df[(df["weight_decay"] == 0) | df.index.isin(df.index[df["weight_decay"] > 0][::3])]
    df = df.assign(batch_norm=True, epochs=df["epochs"].astype(int))
    return df.assign(config_hash=[f"h{i:04d}" for i in range(len(df))]).reset_index(drop=True)
