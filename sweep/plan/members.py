"""A pack's members as Tune, TensorBoard and `wdsweep status` name them (Ray-free).

A trial's reports carry member KK's metrics as `mKK/<metric>` (sweep.runner.trainable), and
its config carries the member table `trial/table/mKK` (λ in every unit, seed, b, B, T,
lr, bn_eps, config_hash) that says which member that is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainer import TrainConfig
from trainer.schema import member_id

MEMBER_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc",
                  "bit_acc", "weight_norm")
HPARAMS = ("weight_decay", "decay_per_step", "lambda_norm", "seed", "batch_size", "train_size",
           "total_steps", "epochs_T", "lr", "bn_eps", "config_hash")


def member_table(members: Sequence[TrainConfig]) -> dict[str, dict[str, Any]]:
    """`mKK` -> the member's HPARAMS, for a trial's members."""
    out = {}
    for k, m in enumerate(members):
        r = dict(m.resolved(), config_hash=m.config_hash())
        out[member_id(k)] = {h: r[h] for h in HPARAMS}
    return out


def run_name(row: dict[str, Any]) -> str:
    """A member's TensorBoard run: readable (λ, seed, b, B, T) and unique (its hash)."""
    return (f"wd{row['weight_decay']:.4g}-s{row['seed']}-b{row['batch_size']}-"
            f"B{row['train_size']}-T{row['total_steps']}-{row['config_hash'][:8]}")
