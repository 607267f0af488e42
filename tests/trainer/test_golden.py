"""Golden config hashes: a hash names what a member computes, and a study computes each
hash once. A change in canonicalization silently re-runs (or worse, merges) every member
of every existing study, so these literals may only change with a deliberate, migrated
change of the hash (and a note in the changelog)."""

from __future__ import annotations

import pytest

from trainer import TrainConfig, build, preset

GOLDEN = {
    "defaults": (lambda: TrainConfig(), "a5229611f3a3dadd"),
    "seed preset": (lambda: preset("seed"), "3acb7dfd969d12f1"),
    # lambda_norm 0.05 at b=32, B=512, 1000 steps: wd = 1.5811388300841898 (many digits)
    "tiny, lambda_norm": (lambda: build(preset("tiny"), dict(lambda_norm=0.05, steps=1000,
                                                             batch_size=32)),
                          "704edc0fd59ec146"),
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_config_hash_is_pinned(name: str) -> None:
    make, want = GOLDEN[name]
    assert make().config_hash() == want


def test_the_same_decay_in_any_unit_and_length_in_any_form_is_one_hash() -> None:
    c = build(preset("tiny"), dict(lambda_norm=0.05, steps=1000, batch_size=32))
    want = GOLDEN["tiny, lambda_norm"][1]
    d = c.decay
    assert c.replace(weight_decay=d.weight_decay).config_hash() == want
    assert c.replace(decay_per_step=d.decay_per_step).config_hash() == want
    assert c.steps_per_epoch == 16  # 512 // 32: 63 epochs are 1008 steps
    assert c.replace(steps=1008).config_hash() == c.replace(epochs=63).config_hash()


@pytest.mark.parametrize("key, value", [("device", "cpu"), ("threads", 1),
                                        ("checkpoint_every", 7)])
def test_execution_only_keys_leave_the_hash_alone(key: str, value: object) -> None:
    assert TrainConfig(**{key: value}).config_hash() == GOLDEN["defaults"][1]


@pytest.mark.parametrize("key, value", [("seed", 1), ("weight_decay", 0.1), ("shuffle", True),
                                        ("optimizer", "sgdw"), ("steps", 7801), ("bn_eps", 1e-2)])
def test_what_changes_the_result_changes_the_hash(key: str, value: object) -> None:
    assert TrainConfig().replace(**{key: value}).config_hash() != GOLDEN["defaults"][1]
