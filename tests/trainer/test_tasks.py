import numpy as np
import torch

from trainer import build, preset
from trainer.tasks import get
from trainer.tasks.binary_add import sample_pairs

POW = 2 ** torch.arange(32, dtype=torch.float64)


def decode(bits: torch.Tensor) -> torch.Tensor:
    return (bits.double() * POW[: bits.shape[-1]]).sum(-1).long()


def test_binary_add_encodes_32_bits_lsb_first_and_labels_the_sum():
    d = get("binary_add").make(preset("seed"), seed=0)
    a, b, s = decode(d.train.x[:, :32]), decode(d.train.x[:, 32:]), decode(d.train.y)
    assert torch.equal(a + b, s)
    x = torch.tensor([89]).long()
    from trainer.tasks._base import int_bits
    assert int_bits(x, 8).tolist() == [[1, 0, 0, 1, 1, 0, 1, 0]]


def test_binary_add_sizes_and_digit_ranges_follow_the_reference():
    d = get("binary_add").make(preset("seed"), seed=3)
    assert (len(d.train.x), len(d.val.x), len(d.test.x)) == (5000, 500, 500)
    train_ops = torch.cat([decode(d.train.x[:, :32]), decode(d.train.x[:, 32:])])
    digits = train_ops.numpy().astype(str).astype(object)
    lens = np.vectorize(len)(digits)
    assert set(lens) <= {2, 4}
    assert 0.97 < (lens == 4).mean() < 1.0  # multinomial with p ~ 10^d: ~99% 4-digit
    test_ops = torch.cat([decode(d.test.x[:, :32]), decode(d.test.x[:, 32:])])
    assert test_ops.min() >= 100 and test_ops.max() <= 999


def test_operands_are_drawn_without_replacement_per_digit_count():
    pairs = sample_pairs(5500, (2, 4), np.random.default_rng(0))
    four = pairs[pairs[:, 0] >= 1000]
    assert len(np.unique(four[:, 0])) == len(four)
    assert len(np.unique(four[:, 1])) == len(four)


def test_oversized_digit_counts_repeat_whole_permutations():
    pairs = sample_pairs(500, (1,), np.random.default_rng(0))
    counts = np.bincount(pairs[:, 0], minlength=10)[1:]  # one-digit positives: 1..9
    assert pairs.min() >= 1
    assert counts.max() - counts.min() <= 1


def test_data_is_deterministic_in_the_seed_and_differs_across_seeds():
    t = get("binary_add")
    a, b, c = (t.make(preset("seed"), s) for s in (0, 0, 1))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, c.train.x)


def test_label_noise_flips_about_half_the_noised_bits_on_train_only():
    cfg = build(preset("seed"), {"noise": 0.2})
    clean, noisy = get("binary_add").make(preset("seed"), 0), get("binary_add").make(cfg, 0)
    changed = (clean.train.y != noisy.train.y).double().mean().item()
    assert 0.08 < changed < 0.12  # 0.2 replaced, half of those by the same bit
    assert torch.equal(clean.test.y, noisy.test.y)


def test_modular_addition_covers_all_pairs_once():
    cfg = build(preset("modular"), {"modulus": 11, "train_size": 60, "batch_size": 32})
    d = get("modular_add").make(cfg, 0)
    n = len(d.train.x) + len(d.val.x) + len(d.test.x)
    assert n == 121 and len(d.train.x) == 60
    x = torch.cat([d.train.x, d.val.x, d.test.x])
    a, b = x[:, :11].argmax(1), x[:, 11:].argmax(1)
    assert len(set(zip(a.tolist(), b.tolist()))) == 121
    y = decode(torch.cat([d.train.y, d.val.y, d.test.y]))
    assert torch.equal(y, (a + b) % 11)
