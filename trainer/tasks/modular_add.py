"""Modular addition a + b mod p (Power et al.'s grokking task).

Input: one-hot a and one-hot b (2p); target: the bits of (a + b) mod p, so the
seed's sigmoid/MSE/exact-match machinery applies unchanged. A random
`train_size` (B) of the p^2 pairs, drawn at random, train (the train fraction is
B / p^2); the rest is split evenly into val/test.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from trainer.tasks._base import Split, TaskData, add_label_noise, int_bits

if TYPE_CHECKING:
    from trainer.config import TrainConfig


class ModularAdd:
    name = "modular_add"

    def shapes(self, cfg: TrainConfig) -> tuple[int, int]:
        return 2 * cfg.modulus, max(1, (cfg.modulus - 1).bit_length())

    def make(self, cfg: TrainConfig, seed: int) -> TaskData:
        p = cfg.modulus
        _, n_out = self.shapes(cfg)
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(p * p, generator=gen)
        a, b = order // p, order % p
        eye = torch.eye(p)
        x, y = torch.cat([eye[a], eye[b]], 1), int_bits((a + b) % p, n_out)
        n_train = cfg.train_size  # < p^2, checked by TrainConfig
        n_val = (p * p - n_train) // 2
        val, test = slice(n_train, n_train + n_val), slice(n_train + n_val, None)
        train_y = add_label_noise(y[:n_train], cfg.noise, gen)
        return TaskData(train=Split(x[:n_train], train_y), val=Split(x[val], y[val]),
                        test=Split(x[test], y[test]))
