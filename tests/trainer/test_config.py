import pytest

from trainer import ConfigError, TrainConfig, build, members, preset


def test_seed_preset_is_the_reference_setup():
    c = preset("seed")
    assert (c.train_size, c.batch_size, c.steps_per_epoch) == (5000, 64, 78)
    assert (c.lr, c.beta1, c.beta2, c.adam_eps, c.bn_eps) == (1e-3, 0.9, 0.98, 1e-3, 1e-2)
    assert c.optimizer == "adamw" and c.decay_mode == "all" and not c.shuffle
    assert c.train_digits == (2, 4) and c.test_digits == (3,)


def test_epochs_define_steps_with_last_partial_batch_dropped():
    c = build(preset("seed"), {"epochs": 10})
    assert c.total_steps == 780 and c.epochs_T == 10 and c.steps is None


def test_setting_one_decay_unit_clears_the_others():
    c = build(preset("seed"), {"lambda_norm": 0.05})
    assert c.weight_decay is None and c.lambda_norm == 0.05
    assert c.decay.lambda_norm == pytest.approx(0.05)


def test_hash_ignores_execution_keys_and_decay_unit_spelling():
    c = preset("seed")
    same = build(c, {"threads": 2, "device": "cpu", "checkpoint_every": 7,
                     "decay_per_step": c.lr * c.weight_decay})
    assert same.config_hash() == c.config_hash()
    assert build(c, {"seed": 1}).config_hash() != c.config_hash()
    assert build(c, {"epochs": 10}).config_hash() != c.config_hash()


@pytest.mark.parametrize("sets, key", [
    (["widthh=3"], "widthh"),
    (["weight_decay=-0.1"], "weight_decay"),
    (["weight_decay=inf"], "weight_decay"),
    (["weight_decay=nan"], "weight_decay"),
    (["weight_decay=0.1", "lambda_norm=0.1"], "lambda_norm"),
    (["batch_size=6000"], "batch_size"),
    (["steps=0"], "steps"),
    (["task=mnist"], "task"),
    (["optimizer=lion"], "optimizer"),
    (["width=abc"], "width"),
    (["width=64,128"], "width"),
    (["noise=2"], "noise"),
    (["lr=0"], "lr"),
    (["novalue"], "--set"),
])
def test_bad_values_name_the_key_and_what_is_allowed(sets, key):
    with pytest.raises(ConfigError) as e:
        members(preset("seed"), sets)
    assert e.value.key == key
    assert "\n" not in str(e.value)


def test_comma_lists_of_packable_keys_make_the_cartesian_product():
    ms = members(preset("seed"), ["weight_decay=0.01,0.1", "seed=0,1,2", "steps=100"])
    assert len(ms) == 6
    assert {(m.weight_decay, m.seed) for m in ms} == {(w, s) for w in (0.01, 0.1)
                                                        for s in (0, 1, 2)}
    assert all(m.steps == 100 and m.epochs is None for m in ms)


def test_tuple_keys_take_comma_lists_as_values():
    (m,) = members(preset("seed"), ["train_digits=2,3,4"])
    assert m.train_digits == (2, 3, 4)


def test_default_config_is_valid_and_frozen():
    c = TrainConfig()
    assert c.epochs == 100
    with pytest.raises(AttributeError):
        c.lr = 1.0  # type: ignore[misc]


def test_resolved_records_the_fields_and_the_derived_keys():
    """What the analysis knows as config keys (analysis._schema.KNOWN_CONFIG) is derived
    from these: every key resolved() records is a field or one of DERIVED_KEYS."""
    import dataclasses

    from trainer.config import DECAY_KEYS, DERIVED_KEYS, FIELDS
    from trainer.units import Decay

    assert DECAY_KEYS == tuple(f.name for f in dataclasses.fields(Decay))
    assert DECAY_KEYS == ("weight_decay", "decay_per_step", "lambda_norm")  # hashes, messages
    for c in (TrainConfig(), build(preset("digits"), {"lr_schedule": "wsd", "warmup": 0.1,
                                                       "precision": "bf16"})):
        got = set(c.resolved())
        assert set(DERIVED_KEYS) <= got <= set(FIELDS) | set(DERIVED_KEYS)


def test_task_names_come_from_the_registry():
    """A registered task is a valid `task` at once (trainer.registry, read by the config)."""
    from trainer import registry, tasks

    assert registry.task_names()[:2] == registry.BUILTIN_TASKS
    assert [tasks.get(n).name for n in registry.BUILTIN_TASKS] == list(registry.BUILTIN_TASKS)
    with pytest.raises(ConfigError, match="allowed: binary_add, modular_add"):
        TrainConfig(task="registered_later")

    class Later:
        name = "registered_later"

    tasks.register(Later())  # type: ignore[arg-type]
    try:
        assert TrainConfig(task="registered_later").task == "registered_later"
        assert tasks.get("registered_later").name == "registered_later"
    finally:  # the registry is process-wide: leave it as other tests expect it
        registry._names.remove("registered_later")
        del registry._tasks["registered_later"]
