"""The source of a user's module for the issue-9 tests: written into a temporary
directory outside the repository (never imported from here)."""

SOURCE = '''
import os

import torch
from torch import nn


def blobs(seed, n=48, dims=3, marker=""):
    """Two classes by the sign of the sum of the inputs (cross entropy, argmax)."""
    if marker:  # where this module was imported from, per process
        with open(os.path.join(marker, f"{os.getpid()}.txt"), "a") as f:
            f.write(os.path.abspath(__file__) + "\\n")
    g = torch.Generator().manual_seed(seed)

    def split(m):
        x = torch.randn(m, dims, generator=g, dtype=torch.get_default_dtype())
        return x, (x.sum(1) > 0).long()

    return {"train": split(n), "val": split(16), "test": split(16),
            "loss": "cross_entropy", "accuracy": "argmax"}


def regress(seed, n=48):
    """Two 0/1 targets from a random linear map (mse, exact)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, 2, generator=g, dtype=torch.get_default_dtype())

    def split(m):
        x = torch.randn(m, 3, generator=g, dtype=torch.get_default_dtype())
        return x, (x @ w > 0).to(x.dtype)

    return {"train": split(n), "val": split(16), "test": split(16)}


def net(n_in, n_out, width=8, bn=False):
    return nn.Sequential(nn.Linear(n_in, width), *([nn.BatchNorm1d(width)] if bn else []),
                         nn.ReLU(), nn.Linear(width, n_out))


def dropnet(n_in, n_out):
    return nn.Sequential(nn.Linear(n_in, 8), nn.Dropout(0.5), nn.Linear(8, n_out))


def too_wide(n_in, n_out):
    return nn.Linear(n_in, n_out + 3)


def one_logit(n_in, n_out):
    return nn.Sequential(nn.Linear(n_in, 1), nn.Flatten(0))


def not_a_module(n_in, n_out):
    return 3


def a_list(seed):
    return [1, 2]


def flat_y(seed):
    x = torch.randn(8, 3)
    return {"train": (x, x[:, 0]), "val": (x, x[:, 0]), "test": (x, x[:, 0])}
'''


def write(directory, name: str) -> None:
    """`name`.py holding SOURCE, in `directory` (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(SOURCE)
