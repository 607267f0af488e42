"""Your own task and model (issue 9): `"package.module:function"` references.

* ``task = "pkg.mod:fn"`` is called as ``fn(seed=int, **task_args)`` and returns a
  mapping with ``train``, ``val`` and ``test`` entries, each an ``(x, y)`` pair of
  tensors, and optionally ``loss`` (``"mse"``, the default, or ``"cross_entropy"``)
  and ``accuracy`` (``"exact"``: every output thresholded at 0.5 right, as the seed;
  or ``"argmax"``). x is (N, n_in); y is (N, n_out) for mse, (N,) integer classes for
  cross_entropy. B (``train_size``) is ``len(train x)``.
* ``model = "pkg.mod:fn"`` is called as ``fn(n_in=int, n_out=int, **model_args)`` under
  ``torch.manual_seed(member seed)`` and returns a ``torch.nn.Module``.

Members of one pack are one architecture with different λ, seed or lr; they train as
one batched model (trainer.vmapped). `probe` calls the task and the model once, as the
sweep driver does before Ray starts, so bad input is one line naming the spec key.

This module imports torch only inside its functions (trainer.config imports it).
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainer.config import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from trainer.config import TrainConfig
    from trainer.loop import Batches
    from trainer.tasks import TaskData
    from trainer.vmapped import StackedModule

LOSSES = ("mse", "cross_entropy")
ACCURACIES = ("exact", "argmax")
ARG_TABLES = ("task_args", "model_args")
_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
REF_HELP = "'package.module:function'"
# References into wdsweep's own trainer package (its built-in real-data task, the
# `digits` preset): installed code, not the user's, so a study naming them needs no
# trust to resume (sweep._driver.require_trust).
BUILTIN_REFS = ("trainer.tasks.digits:digits", "trainer.tasks.digits:mlp")


def is_ref(value: object) -> bool:
    return isinstance(value, str) and ":" in value


def custom(cfg: TrainConfig) -> bool:
    """Does this config train the user's code (a task or model reference)?"""
    return cfg.model is not None or is_ref(cfg.task)


def check_user_keys(c: TrainConfig) -> None:
    """The torch-free part of the validation (TrainConfig calls it)."""
    from trainer.config import CHOICES

    if not isinstance(c.task, str) or (":" not in c.task and c.task not in CHOICES["task"]):
        raise ConfigError("task", f"got {c.task!r}; allowed: {', '.join(CHOICES['task'])} or "
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


# -- importing the user's functions -------------------------------------------------
def resolve(key: str, ref: str) -> Any:
    """The function a reference names; ConfigError(key) when it cannot be had."""
    mod_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except Exception as e:  # noqa: BLE001 - any failure of the user's import is bad input
        raise ConfigError(key, f"cannot import module {mod_name!r} ({type(e).__name__}: "
                          f"{_one_line(e)}); allowed: an installed module, or one in a "
                          "directory listed in `code`") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(key, f"module {mod_name!r} has no function {attr!r}; allowed: "
                              f"a function defined in {mod_name}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(key, f"{ref} is a {type(obj).__name__}, not a function")
    return obj


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:300] or type(e).__name__


def _call(key: str, args_key: str, ref: str, fn: Any, kwargs: dict[str, Any]) -> Any:
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
                          f"{_one_line(e)}") from None


# -- the task ------------------------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    loss: str = "mse"
    accuracy: str = "exact"


def make_task(cfg: TrainConfig, seed: int) -> tuple[TaskData, Objective, int]:
    """The task's splits (x in the default float dtype), its objective and n_out."""
    from trainer import tasks

    if not is_ref(cfg.task):
        data = tasks.get(cfg.task).make(cfg, seed)
        return data, Objective(), data.train.y.shape[1]
    out = _call("task", "task_args", cfg.task, resolve("task", cfg.task),
                dict(seed=seed, **cfg.task_args))
    where = f"task: {cfg.task} returned"
    if not isinstance(out, Mapping):
        raise ConfigError("task", f"{cfg.task} returned a {type(out).__name__}; allowed: a "
                          "mapping with train, val, test = (x, y) and optional loss, accuracy")
    loss, acc = out.get("loss", "mse"), out.get("accuracy", "exact")
    if loss not in LOSSES:
        raise ConfigError("task", f"{cfg.task} returned loss {loss!r}; allowed: "
                          f"{', '.join(LOSSES)}")
    if acc not in ACCURACIES:
        raise ConfigError("task", f"{cfg.task} returned accuracy {acc!r}; allowed: "
                          f"{', '.join(ACCURACIES)}")
    splits = {name: _split(cfg.task, name, out.get(name), loss) for name in ("train", "val",
                                                                             "test")}
    n_in = {s.x.shape[1] for s in splits.values()}
    if len(n_in) != 1:
        raise ConfigError("task", f"{where} x with different widths {sorted(n_in)} across "
                          "splits; allowed: one n_in")
    if loss == "mse":
        n_out = {s.y.shape[1] for s in splits.values()}
        if len(n_out) != 1:
            raise ConfigError("task", f"{where} y with different widths {sorted(n_out)}")
        n = n_out.pop()
    else:
        n = 1 + max(int(s.y.max()) for s in splits.values() if len(s.y))
    from trainer.tasks import TaskData

    return TaskData(**splits), Objective(loss, acc), n


def _split(ref: str, name: str, pair: Any, loss: str) -> Any:
    import torch

    from trainer.tasks import Split

    bad = (f"{ref} returned {name} = {type(pair).__name__}; allowed: an (x, y) pair of tensors, "
           f"x (N, n_in) float, y " + ("(N, n_out) float" if loss == "mse"
                                        else "(N,) integer classes"))
    if not isinstance(pair, tuple | list) or len(pair) != 2 or not all(
            isinstance(t, torch.Tensor) for t in pair):
        raise ConfigError("task", bad)
    x, y = pair
    ok = x.dim() == 2 and len(x) == len(y) and len(x) > 0 and x.is_floating_point()
    if loss == "mse":
        ok = ok and y.dim() == 2 and y.is_floating_point()
    else:
        ok = ok and y.dim() == 1 and not y.is_floating_point() and bool((y >= 0).all())
    if not ok:
        raise ConfigError("task", bad.replace(f"= {type(pair).__name__}",
                                              f"= (x {tuple(x.shape)} {x.dtype}, "
                                              f"y {tuple(y.shape)} {y.dtype})"))
    dt = torch.get_default_dtype()
    return Split(x.detach().to("cpu", dt), y.detach().to("cpu", dt if loss == "mse"
                                                         else torch.int64))


# -- the model -----------------------------------------------------------------------
def build_model(cfg: TrainConfig, n_in: int, n_out: int, seed: int) -> nn.Module:
    """Member `seed`'s module, initialized under torch.manual_seed(seed)."""
    import torch
    from torch import nn

    from trainer.model import reference_model

    if cfg.model is None:
        return reference_model(n_in, n_out, cfg.width, cfg.depth, cfg.batch_norm, cfg.bn_eps,
                               seed)
    fn = resolve("model", cfg.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = _call("model", "model_args", cfg.model, fn,
                  dict(n_in=n_in, n_out=n_out, **cfg.model_args))
    if not isinstance(m, nn.Module):
        raise ConfigError("model", f"{cfg.model} returned a {type(m).__name__}; allowed: a "
                          "torch.nn.Module")
    return m


def load(members: list[TrainConfig], device: torch.device
         ) -> tuple[dict[str, Batches], StackedModule, Objective]:
    """The trainer's side: data per member (x (N, K, n_in), y (N, K[, n_out])), the
    stacked model and the objective."""
    import torch

    from trainer.loop import Batches
    from trainer.vmapped import StackedModule

    cfg = members[0]
    if cfg.model is None and len({m.bn_eps for m in members}) > 1:
        raise ConfigError("bn_eps", "members of a pack with your own task share one bn_eps; "
                          "allowed: one value per pack")
    cache: dict[int, tuple[TaskData, Objective, int]] = {}
    for m in members:
        if m.effective_data_seed not in cache:
            cache[m.effective_data_seed] = make_task(cfg, m.effective_data_seed)
    per = [cache[m.effective_data_seed] for m in members]
    _, objective, n_out = per[0]
    if len(per[0][0].train.x) != cfg.train_size:
        raise ConfigError("train_size", f"{cfg.task} made {len(per[0][0].train.x)} training "
                          f"examples for train_size {cfg.train_size}")
    data = {name: Batches(torch.stack([getattr(d, name).x for d, _, _ in per], 1).to(device),
                          torch.stack([getattr(d, name).y for d, _, _ in per], 1).to(device))
            for name in ("train", "val", "test")}
    n_in = data["train"].x.shape[-1]
    refs = [build_model(m, n_in, n_out, m.seed) for m in members]
    return data, StackedModule(refs, device), objective


# -- the driver's probe --------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    train_size: int  # B = len(train x)
    n_in: int
    n_out: int
    objective: Objective
    packable: bool
    why: str = ""  # why not, when not


def probe(cfg: TrainConfig) -> Probe:
    """Call the task and the model once with `cfg`'s arguments, check that the model's
    outputs fit y and the loss, and whether members pack (a vmapped pair of members
    must compute exactly what each computes alone). ConfigError on bad input."""
    import torch

    from trainer.vmapped import pack_check, scores_fn

    with torch.random.fork_rng(devices=[]):
        data, objective, n_out = make_task(cfg, cfg.effective_data_seed)
        n_in = data.train.x.shape[1]
        model = build_model(cfg, n_in, n_out, cfg.seed)
        b = min(cfg.batch_size, len(data.train.x))
        xb, yb = data.train.x[:b], data.train.y[:b]
        try:
            model.train()
            out = model(xb)
        except Exception as e:  # noqa: BLE001
            raise ConfigError("model", f"{cfg.model or 'ResMLP'} failed on a batch x of shape "
                              f"{tuple(xb.shape)}: {type(e).__name__}: {_one_line(e)}") from None
        want = (f"({b}, {yb.shape[1]}) like y" if objective.loss == "mse"
                else f"({b}, C) with C >= {n_out} classes")
        fits = isinstance(out, torch.Tensor) and (
            out.shape == yb.shape if objective.loss == "mse"
            else out.dim() == 2 and out.shape[0] == b and out.shape[1] >= n_out)
        if not fits:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError("model", f"{cfg.model or 'ResMLP'} outputs {got} do not match y "
                              f"{tuple(yb.shape)}: loss {objective.loss} needs {want}")
        scores_fn(objective)(out.detach().unsqueeze(1), yb.unsqueeze(1))  # the loss applies
        packable, why = pack_check(cfg, n_in, n_out, xb)
    return Probe(len(data.train.x), n_in, n_out, objective, packable, why)
