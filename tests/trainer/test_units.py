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
