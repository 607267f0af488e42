"""Named starting configs, and turning user strings/values into configs."""

from __future__ import annotations

import itertools
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from trainer.config import FIELDS, MAX_INT, PACKABLE, ConfigError, TrainConfig
from trainer.refs import ARG_TABLES, arg_key, check_args, parse_literal

PRESETS: dict[str, dict[str, Any]] = {
    # The blog's experiment as its code ran it (shared/reference/seed_setup.md),
    # with bn_eps 1e-2, the blog's fix for batch-norm collapses.
    "seed": dict(task="binary_add", train_size=5000, val_size=500, test_size=500,
                 train_digits=(2, 4), test_digits=(3,), width=256, depth=2, bn_eps=1e-2,
                 optimizer="adamw", lr=1e-3, beta1=0.9, beta2=0.98, adam_eps=1e-3,
                 weight_decay=0.1, batch_size=64, steps=30000, decay_mode="all"),
    # Grokking-style modular addition, a + b mod 97 from half of the 9,409 pairs.
    "modular": dict(task="modular_add", modulus=97, train_size=4704, width=256, depth=2,
                    bn_eps=1e-2, optimizer="adamw", lr=1e-3, weight_decay=1.0,
                    batch_size=256, steps=20000),
    # The seed task shrunk to show the lambda sweet spot in ~25 s per pack of 6 on
    # one core: width 128, lr 1e-2, 2,000 pairs, 100 epochs (test acc ~0.6 at
    # lambda 0.1-0.3, ~0 at 0.03 and at 1.0).
    "demo": dict(task="binary_add", train_size=2000, val_size=200, test_size=200, width=128,
                 depth=2, bn_eps=1e-2, lr=1e-2, weight_decay=0.3, batch_size=64, epochs=100),
    # A second task on real data (trainer.tasks.digits): scikit-learn's 8x8 digits,
    # 1,000 training images, a residual MLP with batch norm, cross entropy, argmax.
    "digits": dict(task="trainer.tasks.digits:digits", model="trainer.tasks.digits:mlp",
                   train_size=1000, optimizer="adamw", lr=1e-3, weight_decay=0.1,
                   batch_size=64, epochs=100),
    # A seconds-long run for tests.
    "tiny": dict(task="binary_add", train_size=512, val_size=128, test_size=128, width=64,
                 depth=1, bn_eps=1e-2, weight_decay=0.1, batch_size=32, epochs=20),
}


def preset(name: str) -> TrainConfig:
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}")
    return TrainConfig(**PRESETS[name])


def _base_type(key: str) -> Any:
    """The non-None type of a config field (int for `int | None`)."""
    tp = FIELDS[key].type
    tp = eval(tp, vars(typing)) if isinstance(tp, str) else tp  # annotations are strings
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return args[0]
    return tp


def coerce(key: str, value: Any, strict: bool = False) -> Any:
    """A user value (string from the CLI, or a TOML value) as the field's type. `strict`
    (a TOML value): a number, a bool or a list must be one, not a string of it."""
    if key in ARG_TABLES or arg_key(key):  # task_args / model_args (trainer.refs)
        check_args(key, value) if key in ARG_TABLES else check_args(key.split(".")[0],
                                                                    {key.split(".")[1]: value})
        return value
    if key not in FIELDS:
        raise ConfigError(key, f"unknown key; allowed: {', '.join(sorted(FIELDS))}")
    tp = _base_type(key)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if FIELDS[key].default is None:
            return None
        raise ConfigError(key, "may not be empty")
    if strict and tp is not str and (isinstance(value, str) or (
            typing.get_origin(tp) is tuple and isinstance(value, list)
            and any(isinstance(v, str) for v in value))):
        raise ConfigError(key, f"got {shown(value)}, a string; must be {_type_name(tp, strict)}"
                          " (write it without quotes)")
    try:
        if typing.get_origin(tp) is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(_scalar(int, v) for v in items)
        return _scalar(tp, value)
    except OverflowError:
        raise ConfigError(key, f"got {shown(value)}; must be an integer in [-{MAX_INT}, "
                          f"{MAX_INT}] (int64)") from None
    except (TypeError, ValueError):
        raise ConfigError(key, f"got {shown(value)}; expected {_type_name(tp, strict)}") \
            from None


def shown(v: Any) -> str:
    """repr(v) for a message: a huge integer by its size (its digits would fill screens)."""
    if isinstance(v, int) and v.bit_length() > 64:
        return f"an integer of {v.bit_length()} bits"
    r = repr(v)
    return r if len(r) <= 60 else f"{r[:50]}... ({len(r)} characters)"


def _scalar(tp: Any, v: Any) -> Any:
    if tp is bool:
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false", "1", "0"):
            return v.lower() in ("true", "1")
        raise ValueError(v)
    if tp is int:
        if isinstance(v, bool):
            raise ValueError(v)
        if not isinstance(v, int):  # "12", 12.0: an int as given would not be rounded
            f = float(v)
            if not f.is_integer():
                raise ValueError(v)
            v = int(f)
        if not -MAX_INT <= v <= MAX_INT:
            raise OverflowError(v)
        return v
    if tp is float:
        if isinstance(v, bool) or isinstance(v, int) and v.bit_length() > 1000:
            raise ValueError(v)  # float() would raise OverflowError
        f = float(v)
        if math.isnan(f):
            raise ValueError(v)
        return f
    if isinstance(v, str):
        return v
    raise TypeError(v)


def _type_name(tp: Any, strict: bool = False) -> str:
    if typing.get_origin(tp) is tuple:
        return "a list of integers" if strict else "a comma list of integers"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[tp]


def build(base: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """Apply user overrides to a config, coercing and validating each."""
    over = {k: coerce(k, v) for k, v in overrides.items() if not arg_key(k)}
    for k, v in overrides.items():  # task_args.KEY / model_args.KEY: one argument
        if (split := arg_key(k)) is not None:
            table = dict(over.get(split[0], getattr(base, split[0])))
            over[split[0]] = {**table, split[1]: coerce(k, v)}
    try:
        return base.replace(**over)
    except TypeError as e:  # dataclasses.replace on an unknown field
        raise ConfigError("config", str(e)) from None


def members(base: TrainConfig, sets: Sequence[str]) -> list[TrainConfig]:
    """`key=value` strings -> the pack's member configs.

    A packable key may take a comma list; the members are the cartesian product.
    """
    axes: dict[str, list[str]] = {}
    for s in sets:
        key, sep, value = s.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("--set", f"got {s!r}; expected key=value")
        if arg_key(key):  # task_args.KEY=value: a JSON literal, else a string; one per pack
            axes[key] = [parse_literal(value)]
            continue
        if key not in FIELDS:
            raise ConfigError(key, f"unknown key; allowed: {', '.join(sorted(FIELDS))}")
        packable_list = key in PACKABLE and "," in value
        if "," in value and not packable_list and typing.get_origin(_base_type(key)) is not tuple:
            raise ConfigError(key, f"got {value!r}; a comma list (one value per member) is only "
                              f"allowed for packable keys: {', '.join(PACKABLE)}")
        axes[key] = value.split(",") if packable_list else [value]
    keys = list(axes)
    return [build(base, dict(zip(keys, combo))) for combo in itertools.product(*axes.values())]
