"""Your own task and model as references (`"package.module:function"`): checked, resolved.

The torch-free half of trainer.user: what `TrainConfig` validates (the reference's form,
`task_args` / `model_args`), what `--set` / a spec's keys parse to, and importing the
function a reference names. Nothing here imports torch, so the config, the presets and
the sweep driver use it without loading the trainer's tensors; calling and checking
what the user's functions return is trainer.user's.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainer import registry
from trainer.errors import BadInput as ConfigError

if TYPE_CHECKING:
    from trainer.config import TrainConfig

LOSSES = ("mse", "cross_entropy")
ACCURACIES = ("exact", "argmax")
ARG_TABLES = ("task_args", "model_args")
_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
REF_HELP = "'package.module:function'"
# References into wdsweep's own trainer package (its built-in real-data task, the
# `digits` preset): installed code, not the user's, so a study naming them needs no
# trust to resume (sweep's driver, require_trust).
BUILTIN_REFS = ("trainer.tasks.digits:digits", "trainer.tasks.digits:mlp")


@dataclass(frozen=True)
class Objective:
    """What a task trains for: its loss (LOSSES) and how accuracy is counted (ACCURACIES)."""

    loss: str = "mse"
    accuracy: str = "exact"


def is_ref(value: object) -> bool:
    return isinstance(value, str) and ":" in value


def custom(cfg: TrainConfig) -> bool:
    """Does this config train the user's code (a task or model reference)?"""
    return cfg.model is not None or is_ref(cfg.task)


def check_user_keys(c: TrainConfig) -> None:
    """The torch-free part of the validation (TrainConfig calls it)."""
    names = registry.task_names()
    if not isinstance(c.task, str) or (":" not in c.task and c.task not in names):
        raise ConfigError("task", f"got {c.task!r}; allowed: {', '.join(names)} or "
                          f"{REF_HELP}")
    for key in ("task", "model"):
        v = getattr(c, key)
        if is_ref(v) and not _REF.match(v):
            raise ConfigError(key, f"got {v!r}; allowed: {REF_HELP}")
    if c.model is not None and not is_ref(c.model):
        raise ConfigError("model", f"got {c.model!r}; allowed: {REF_HELP} (or none for the "
                          "built-in ResMLP)")
    for key in ARG_TABLES:
        check_args(key, getattr(c, key))


def check_args(key: str, value: object) -> None:
    if not isinstance(value, dict):
        raise ConfigError(key, f"got {value!r}; allowed: a table of keyword arguments")
    for k, v in value.items():
        if not isinstance(k, str) or not k.isidentifier():
            raise ConfigError(f"{key}.{k}", "allowed: a Python identifier as the argument name")
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}.{k}", f"got {v!r}; allowed: strings, numbers, booleans "
                              "and lists or tables of them") from None


def arg_key(key: str) -> tuple[str, str] | None:
    """'task_args.n' -> ('task_args', 'n'); None for other keys."""
    table, dot, name = key.partition(".")
    return (table, name) if dot and table in ARG_TABLES and name else None


def parse_literal(text: str) -> Any:
    """A --set value for task_args.KEY / model_args.KEY: a JSON literal, else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- importing and calling the user's functions ---------------------------------------
def resolve(key: str, ref: str) -> Any:
    """The function a reference names; ConfigError(key) when it cannot be had."""
    mod_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except Exception as e:  # noqa: BLE001 - any failure of the user's import is bad input
        raise ConfigError(key, f"cannot import module {mod_name!r} ({type(e).__name__}: "
                          f"{one_line(e)}); allowed: an installed module, or one in a "
                          "directory listed in `code`") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(key, f"module {mod_name!r} has no function {attr!r}; allowed: "
                              f"a function defined in {mod_name}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(key, f"{ref} is a {type(obj).__name__}, not a function")
    return obj


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:300] or type(e).__name__


def call(key: str, args_key: str, ref: str, fn: Any, kwargs: dict[str, Any]) -> Any:
    """fn(**kwargs), the user's function: arguments it does not take are bad `args_key`,
    anything it raises is bad `key`."""
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as e:
        raise ConfigError(args_key, f"{ref} does not accept these arguments ({e})") from None
    except ValueError:  # no signature (a builtin): let the call decide
        pass
    try:
        return fn(**kwargs)
    except Exception as e:  # noqa: BLE001 - the user's code failing is bad input here
        said = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ConfigError(key, f"{ref}({said}) raised {type(e).__name__}: "
                          f"{one_line(e)}") from None
