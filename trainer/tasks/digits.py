"""A second, real-data task: scikit-learn's handwritten digits, a small MLP, cross entropy.

The data set (1,797 8x8 grey-level images of the digits 0-9, Alpaydin & Kaynak 1998)
ships inside scikit-learn, so nothing is downloaded at run time. It enters wdsweep as a
task and model reference pair (trainer.user), packed by the vmapped path like any user
model: `preset = "digits"`. The split is a fixed random permutation by the data seed;
`train_size` (B) is a task argument (`task_args.train_size`), so the B axis is
`"task_args.train_size" = [...]` in a spec.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

TASK = "trainer.tasks.digits:digits"
MODEL = "trainer.tasks.digits:mlp"
N = 1797  # images in the data set


def digits(seed: int, train_size: int = 1000, val_size: int = 297, test_size: int = 500
           ) -> dict[str, Any]:
    """Pixels scaled to [0, 1] (x: (N, 64)); labels 0-9 (y: (N,)); a split of the 1,797
    images fixed by `seed`: the first train_size for training, then val, then test."""
    if not (1 <= train_size and 1 <= val_size and 1 <= test_size
            and train_size + val_size + test_size <= N):
        raise ValueError(f"train_size + val_size + test_size must be <= {N} (each >= 1), got "
                         f"{train_size} + {val_size} + {test_size}")
    from sklearn.datasets import load_digits  # lazy: only this task needs scikit-learn

    x, y = load_digits(return_X_y=True)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(N, generator=g)
    x = torch.as_tensor(x, dtype=torch.get_default_dtype())[order] / 16.0
    y = torch.as_tensor(y, dtype=torch.long)[order]
    cut = [0, train_size, train_size + val_size, train_size + val_size + test_size]
    part = {name: (x[a:b], y[a:b]) for name, a, b in zip(("train", "val", "test"), cut, cut[1:])}
    return {**part, "loss": "cross_entropy", "accuracy": "argmax"}


class _Block(nn.Module):
    def __init__(self, w: int, batch_norm: bool, eps: float):
        super().__init__()
        self.norm = nn.BatchNorm1d(w, eps=eps) if batch_norm else nn.Identity()
        self.lin = nn.Linear(w, w)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.lin(torch.relu(self.norm(h)))


def mlp(n_in: int, n_out: int, width: int = 128, depth: int = 2, batch_norm: bool = True,
        bn_eps: float = 1e-2) -> nn.Module:
    """The seed task's residual MLP shape: in -> depth x (BN, ReLU, Linear, + skip) -> BN,
    ReLU -> out."""
    layers: list[nn.Module] = [nn.Linear(n_in, width)]
    layers += [_Block(width, batch_norm, bn_eps) for _ in range(depth)]
    layers += [nn.BatchNorm1d(width, eps=bn_eps) if batch_norm else nn.Identity(), nn.ReLU(),
               nn.Linear(width, n_out)]
    return nn.Sequential(*layers)
