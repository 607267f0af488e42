"""`trainer.train` / `trainer.run` themselves against plain PyTorch, and that they learn.

The equivalence tests (test_equivalence.py) check the packed model and optimizer
through their own loop; these go through the trainer's public entry points, so a
loop that skips, reorders or spoils a step is caught.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

import trainer
from tests.trainer.reference import METRICS, reference_history
from trainer import TrainConfig, build, preset

# Two members differing in decay, seed and lr; a few hundred steps, evaluated often.
BASE = dict(width=32, depth=2, train_size=640, val_size=64, test_size=64, batch_size=32,
            steps=300, eval_every=25, threads=1, checkpoint_every=10_000)
MEMBERS = [dict(weight_decay=0.1, seed=0), dict(weight_decay=1.0, seed=1, lr=3e-3)]
LR = {"adamw": 1e-3, "adam_l2": 1e-3, "sgdw": 3e-2}
TOL = dict(rtol=1e-9, atol=1e-12)  # float64: packed and plain agree to ~1e-14


def pack(optimizer: str = "adamw", shuffle: bool = False, **over: object) -> list[TrainConfig]:
    base = build(preset("seed"), {**BASE, "optimizer": optimizer, "lr": LR[optimizer],
                                  "shuffle": shuffle, **over})
    return [base.replace(**m) for m in MEMBERS]


def assert_matches_reference(rows: list[dict], members: list[TrainConfig]) -> None:
    got = pd.DataFrame(rows)
    assert sorted(got.member.unique()) == list(range(len(members)))
    for k, cfg in enumerate(members):
        mine = got[got.member == k].reset_index(drop=True)
        want = pd.DataFrame(reference_history(cfg))
        assert list(mine.step) == list(want.step), f"member {k}: evaluation steps differ"
        assert (mine.config_hash == cfg.config_hash()).all()
        for col in METRICS:
            torch.testing.assert_close(
                torch.tensor(mine[col].to_numpy()), torch.tensor(want[col].to_numpy()), **TOL,
                msg=lambda m, c=col, k=k: f"member {k} {c}: {m}")


@pytest.mark.parametrize("shuffle", [False, True], ids=["fixed-order", "shuffle"])
@pytest.mark.parametrize("optimizer", ["adamw", "adam_l2", "sgdw"])
def test_train_equals_plain_pytorch_in_float64(float64, optimizer: str, shuffle: bool) -> None:
    members = pack(optimizer, shuffle)
    rows = trainer.train(members, log=lambda s: None)
    assert len(rows) == len(members) * 12  # 300 steps, evaluated every 25
    assert_matches_reference(rows, members)


def test_run_writes_the_reference_history_to_metrics_csv(float64, tmp_path: Path) -> None:
    """Through a run directory with checkpoints on, decay only on matrices."""
    members = pack("adamw", decay_mode="matrices", checkpoint_every=100)
    csv = trainer.run(members, tmp_path / "run", log=lambda s: None)
    rows = pd.read_csv(csv, dtype={"config_hash": str}).to_dict("records")
    assert_matches_reference(rows, members)


def test_the_seed_task_learns() -> None:
    """The seed model (preset `seed`, float32) learns the training set: the mean training
    loss over steps 1-100 is ~0.12, over steps 1401-1500 ~0.02 (measured); require 4x."""
    cfg = build(preset("seed"), dict(steps=1500, eval_every=100, threads=1))
    rows = pd.DataFrame(trainer.train([cfg], log=lambda s: None))
    first, last = rows.train_loss.iloc[0], rows.train_loss.iloc[-1]
    assert first > 0.08, f"a fresh sigmoid model's MSE is ~0.25, got {first}"
    assert last < first / 4, f"training loss only fell from {first:.4f} to {last:.4f}"
    assert rows.train_acc.iloc[-1] > 0.4


def test_the_demo_preset_generalizes_above_chance() -> None:
    """The demo preset at its default decay (~4 s): exact-match accuracy on unseen 3-digit
    sums, where guessing is ~2^-32 and a constant answer scores at most 1/200. Measured:
    ~0.5-0.8 over the last evaluations."""
    cfg = build(preset("demo"), dict(threads=1))
    rows = pd.DataFrame(trainer.train([cfg], log=lambda s: None))
    assert rows.test_acc.iloc[0] < 0.01
    assert rows.test_acc.iloc[-5:].mean() > 0.2, rows.test_acc.tail(5).tolist()
