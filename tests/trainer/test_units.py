import math

import pytest

from trainer.units import norm_factor, resolve_decay

SEED = dict(lr=1e-3, batch_size=64, train_size=5000, epochs=384.6)


def test_weight_decay_gives_per_step_decay_as_lr_times_wd():
    d = resolve_decay(weight_decay=0.1, **SEED)
    assert d.decay_per_step == pytest.approx(1e-4)
    assert d.lambda_norm == pytest.approx(1e-4 / math.sqrt(64 / (5000 * 384.6)))


@pytest.mark.parametrize("unit", ["weight_decay", "decay_per_step", "lambda_norm"])
def test_each_unit_round_trips_through_the_others(unit):
    d = resolve_decay(**{unit: 0.037}, **SEED)
    again = resolve_decay(weight_decay=d.weight_decay, **SEED)
    assert again.decay_per_step == pytest.approx(d.decay_per_step, rel=1e-12)
    assert again.lambda_norm == pytest.approx(d.lambda_norm, rel=1e-12)
    assert getattr(d, unit) == pytest.approx(0.037, rel=1e-12)


def test_blog_plugging_lambda_norm_into_pytorch_wd_is_lr_times_too_weak():
    # The blog used wd = lambda_norm*sqrt(b/(B*T)); the paper's lambda is per step.
    lam_norm = 0.05
    blog_wd = lam_norm * norm_factor(64, 5000, 384.6)
    right = resolve_decay(lambda_norm=lam_norm, **SEED)
    assert right.weight_decay / blog_wd == pytest.approx(1 / SEED["lr"])


def test_exactly_one_unit_is_required():
    with pytest.raises(ValueError):
        resolve_decay(**SEED)
    with pytest.raises(ValueError):
        resolve_decay(weight_decay=0.1, lambda_norm=0.1, **SEED)


# Hand-computed from the paper's formula d = λ_norm·sqrt(b/(B·T)) and wd = d/lr, with
# numbers chosen so every value is exact in binary or has a short decimal expansion.
HAND = [
    # b, B, T, lr, λ_norm -> sqrt(b/(B·T)), d, wd
    (64, 4096, 16, 1e-3, 0.5, 1 / 32, 0.015625, 15.625),  # 64/65536 = 1/1024
    (100, 10000, 1, 1e-2, 0.2, 0.1, 0.02, 2.0),  # 100/10^4 = 1/100
    (50, 800, 4, 0.5, 4.0, 1 / 8, 0.5, 1.0),  # 50/3200 = 1/64
    (49, 5000, 2, 1e-3, 0.05, 0.07, 0.0035, 3.5),  # 49/10000 = 0.07^2
]


@pytest.mark.parametrize("b, B, T, lr, lam, k, d, wd", HAND)
def test_units_against_hand_computed_values(b, B, T, lr, lam, k, d, wd):
    assert norm_factor(b, B, T) == pytest.approx(k, rel=1e-15)
    got = resolve_decay(lambda_norm=lam, lr=lr, batch_size=b, train_size=B, epochs=T)
    assert got.decay_per_step == pytest.approx(d, rel=1e-14)
    assert got.weight_decay == pytest.approx(wd, rel=1e-14)
    back = resolve_decay(weight_decay=wd, lr=lr, batch_size=b, train_size=B, epochs=T)
    assert back.lambda_norm == pytest.approx(lam, rel=1e-14)
    assert back.decay_per_step == pytest.approx(d, rel=1e-14)


def test_norm_factor_scales_as_the_paper_says():
    # Quadrupling b doubles it; quadrupling B or T halves it.
    assert norm_factor(256, 4096, 16) == pytest.approx(2 / 32, rel=1e-15)
    assert norm_factor(64, 4 * 4096, 16) == pytest.approx(1 / 64, rel=1e-15)
    assert norm_factor(64, 4096, 64) == pytest.approx(1 / 64, rel=1e-15)


def test_a_config_in_lambda_norm_resolves_with_its_own_b_B_T():
    # 4096 pairs, batch 64: 64 steps per epoch; 1024 steps are T = 16 epochs.
    from trainer import TrainConfig

    c = TrainConfig(train_size=4096, batch_size=64, steps=1024, lr=1e-3, lambda_norm=0.5)
    assert c.epochs_T == 16
    assert c.decay.decay_per_step == pytest.approx(0.015625, rel=1e-14)
    assert c.decay.weight_decay == pytest.approx(15.625, rel=1e-14)
    r = c.resolved()
    assert r["weight_decay"] == pytest.approx(15.625, rel=1e-14) and r["lambda_norm"] == 0.5


def test_the_seed_blogs_numbers():
    # Seed setup: b=64, B=5000, 30,000 steps at 78 steps per epoch: T = 30000/78.
    # sqrt(64 / (5000 · 384.615...)) = 0.0057689..., so λ_norm = 0.05 is d = 2.8844e-4,
    # i.e. PyTorch weight_decay 0.28844 at lr 1e-3 (the blog used 2.88e-4 as wd).
    T = 30000 / 78
    assert norm_factor(64, 5000, T) == pytest.approx(0.0057688, rel=1e-4)
    got = resolve_decay(lambda_norm=0.05, lr=1e-3, batch_size=64, train_size=5000, epochs=T)
    assert got.decay_per_step == pytest.approx(2.8844e-4, rel=1e-4)
    assert got.weight_decay == pytest.approx(0.28844, rel=1e-4)
