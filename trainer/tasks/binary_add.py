"""32-bit binary addition, as the seed experiment's code generates it.

Operands are positive decimal integers with a given number of digits (2 and 4
for training, 3 for the test set). For a set of `size` pairs over digit counts
D, the pairs per digit count are multinomial with p proportional to 10^d; for
each digit count the first operands are drawn from that range without
replacement, and the second operands likewise, independently. Encoding: 32
bits LSB first per operand, input = both operands (64), label = the sum (32).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from trainer.tasks._base import Split, TaskData, add_label_noise, int_bits

if TYPE_CHECKING:
    from trainer.config import TrainConfig


def sample_pairs(size: int, digits: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """(size, 2) int64 operand pairs, grouped by digit count."""
    p = np.array([10.0**d for d in digits])
    counts = rng.multinomial(size, p / p.sum())
    out = [np.stack([_draw(d, n, rng), _draw(d, n, rng)], axis=1) for d, n in zip(digits, counts)]
    return np.concatenate(out).astype(np.int64)


def _draw(digits: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n numbers with `digits` digits, without replacement. Beyond the range's
    size (the reference would fail there) whole permutations are repeated, so
    every value appears as evenly as possible."""
    lo, hi = 10 ** (digits - 1), 10**digits  # positive integers: 1..9 for one digit
    span = hi - lo
    reps = [rng.permutation(span) for _ in range(-(-n // span))] or [np.empty(0, np.int64)]
    return lo + np.concatenate(reps)[:n]


def _split(pairs: np.ndarray, bits: int) -> Split:
    a, b = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])
    return Split(x=torch.cat([int_bits(a, bits), int_bits(b, bits)], 1), y=int_bits(a + b, bits))


class BinaryAdd:
    name = "binary_add"

    def shapes(self, cfg: TrainConfig) -> tuple[int, int]:
        return 2 * cfg.bits, cfg.bits

    def make(self, cfg: TrainConfig, seed: int) -> TaskData:
        rng = np.random.default_rng(seed)
        pool = sample_pairs(cfg.train_size + cfg.val_size, cfg.train_digits, rng)
        pool = pool[rng.permutation(len(pool))]  # the random split; also the fixed order
        test = sample_pairs(cfg.test_size, cfg.test_digits, rng)
        train = _split(pool[: cfg.train_size], cfg.bits)
        gen = torch.Generator().manual_seed(seed)
        train = Split(train.x, add_label_noise(train.y, cfg.noise, gen))
        return TaskData(train=train, val=_split(pool[cfg.train_size :], cfg.bits),
                        test=_split(test, cfg.bits))
