"""A pack's data on the device: every member's splits stacked along a member axis.

Shared by the built-in path (trainer.loop) and the user-model path (trainer.user), so
both lay data out alike and neither imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from trainer import tasks
from trainer.errors import BadInput as ConfigError

if TYPE_CHECKING:
    from trainer.config import TrainConfig

SPLITS = ("train", "val", "test")


@dataclass
class Batches:
    """Per-member data, already on the device: x (N, K, n_in), y (N, K, n_out)."""

    x: torch.Tensor
    y: torch.Tensor


def stack(cfg: TrainConfig, per: Sequence[tasks.TaskData], device: torch.device
          ) -> dict[str, Batches]:
    """Member k's splits (`per[k]`) as one tensor per split, members along axis 1."""
    if len(per[0].train.x) != cfg.train_size:  # B drives the schedule and the units
        raise ConfigError("train_size", f"{cfg.task} made {len(per[0].train.x)} training "
                          f"examples for train_size {cfg.train_size}")
    return {name: Batches(torch.stack([getattr(d, name).x for d in per], 1).to(device),
                          torch.stack([getattr(d, name).y for d in per], 1).to(device))
            for name in SPLITS}


def load_data(members: Sequence[TrainConfig], device: torch.device) -> dict[str, Batches]:
    """A built-in task's data for the pack (trainer.tasks)."""
    cfg, task = members[0], tasks.get(members[0].task)
    cache: dict[int, tasks.TaskData] = {}
    for m in members:  # members sharing a data seed share one generated dataset
        cache.setdefault(m.effective_data_seed, task.make(cfg, m.effective_data_seed))
    return stack(cfg, [cache[m.effective_data_seed] for m in members], device)
