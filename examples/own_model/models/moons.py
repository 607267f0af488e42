"""Two interleaving half-moons, made in code, and two small classifiers for them.

A task a user would recognize (scikit-learn's make_moons, without scikit-learn) and
an MLP with and without batch norm, wired to wdsweep through the spec keys
`task = "moons:two_moons"` and `model = "moons:mlp"` (see ../README.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _moons(n: int, noise: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.randint(0, 2, (n,), generator=gen)
    t = torch.rand(n, generator=gen) * math.pi
    x = torch.stack([torch.cos(t), torch.sin(t)], 1)
    x = torch.where(y[:, None] == 1, torch.stack([1 - x[:, 0], 0.5 - x[:, 1]], 1), x)
    return x + noise * torch.randn(n, 2, generator=gen), y


def two_moons(seed: int, n_train: int = 256, n_test: int = 512, noise: float = 0.2,
              dims: int = 2) -> dict:
    """Classification of two moons. `dims` > 2 pads x with pure-noise features."""
    gen = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = _moons(n, noise, gen)
        if dims > 2:
            x = torch.cat([x, torch.randn(n, dims - 2, generator=gen)], 1)
        return x.to(torch.get_default_dtype()), y

    return {"train": split(n_train), "val": split(n_test), "test": split(n_test),
            "loss": "cross_entropy", "accuracy": "argmax"}


def mlp(n_in: int, n_out: int, width: int = 64, depth: int = 2,
        batch_norm: bool = False) -> nn.Module:
    """Linear -> [BatchNorm1d] -> ReLU, `depth` times, then a linear read-out (logits)."""
    layers: list[nn.Module] = []
    d = n_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), *([nn.BatchNorm1d(width)] if batch_norm else []),
                   nn.ReLU()]
        d = width
    return nn.Sequential(*layers, nn.Linear(d, n_out))
