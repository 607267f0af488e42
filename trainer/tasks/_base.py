"""The task interface: a task turns a config and a seed into tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from trainer.config import TrainConfig


@dataclass(frozen=True)
class Split:
    """Inputs and 0/1 targets of one split: x (N, n_in), y (N, n_out), float32."""

    x: torch.Tensor
    y: torch.Tensor


@dataclass(frozen=True)
class TaskData:
    train: Split  # in training order (the loader walks it front to back)
    val: Split  # in-domain held-out
    test: Split  # the split whose accuracy is "test_acc"


class Task(Protocol):
    """Targets are bit vectors: the model predicts each bit through a sigmoid,
    is trained with MSE (the seed's loss), and a prediction is correct when every
    bit is right (exact match, threshold 0.5)."""

    name: str

    def shapes(self, cfg: TrainConfig) -> tuple[int, int]:
        """(n_in, n_out) for this config, without generating data."""
        ...

    def make(self, cfg: TrainConfig, seed: int) -> TaskData:
        """All splits, deterministic in (cfg, seed), on the CPU."""
        ...


def int_bits(n: torch.Tensor, bits: int) -> torch.Tensor:
    """Integers (N,) -> (N, bits) float 0/1, least-significant bit first."""
    shifts = torch.arange(bits, dtype=torch.int64)
    return ((n.to(torch.int64).unsqueeze(-1) >> shifts) & 1).to(torch.get_default_dtype())


def add_label_noise(y: torch.Tensor, noise: float, gen: torch.Generator) -> torch.Tensor:
    """Replace each bit by a fair random bit with probability `noise`."""
    if noise == 0:
        return y
    flip = torch.rand(y.shape, generator=gen) < noise
    rand = (torch.rand(y.shape, generator=gen) < 0.5).to(y.dtype)
    return torch.where(flip, rand, y)
