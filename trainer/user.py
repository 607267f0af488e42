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

The reference checks and resolving are trainer.refs' (re-exported here). This module is
torch-free when imported -- the sweep driver imports it to plan -- so everything that
needs torch (tensors, the tasks, the models, the stacked data) is imported in the
function that uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainer.errors import BadInput as ConfigError
from trainer.refs import (  # noqa: F401 (re-exported: the torch-free half, trainer.refs)
    ACCURACIES,
    ARG_TABLES,
    BUILTIN_REFS,
    LOSSES,
    REF_HELP,
    Objective,
    arg_key,
    call,
    check_args,
    check_user_keys,
    custom,
    is_ref,
    one_line,
    parse_literal,
    resolve,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from trainer.config import TrainConfig
    from trainer.data import Batches
    from trainer.tasks import TaskData
    from trainer.vmapped import StackedModule


# -- the task ------------------------------------------------------------------------
def make_task(cfg: TrainConfig, seed: int) -> tuple[TaskData, Objective, int]:
    """The task's splits (x in the default float dtype), its objective and n_out."""
    from trainer import tasks  # lazy: torch (see the module docstring)

    if not is_ref(cfg.task):
        data = tasks.get(cfg.task).make(cfg, seed)
        return data, Objective(), data.train.y.shape[1]
    out = call("task", "task_args", cfg.task, resolve("task", cfg.task),
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
    return tasks.TaskData(**splits), Objective(loss, acc), n


def _split(ref: str, name: str, pair: Any, loss: str) -> Any:
    import torch  # lazy: see the module docstring

    from trainer.tasks import Split  # lazy: torch

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
    import torch  # lazy: see the module docstring
    from torch import nn

    from trainer.model import reference_model  # lazy: torch

    if cfg.model is None:
        return reference_model(n_in, n_out, cfg.width, cfg.depth, cfg.batch_norm, cfg.bn_eps,
                               seed)
    fn = resolve("model", cfg.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = call("model", "model_args", cfg.model, fn,
                  dict(n_in=n_in, n_out=n_out, **cfg.model_args))
    if not isinstance(m, nn.Module):
        raise ConfigError("model", f"{cfg.model} returned a {type(m).__name__}; allowed: a "
                          "torch.nn.Module")
    return m


def load(members: list[TrainConfig], device: torch.device
         ) -> tuple[dict[str, Batches], StackedModule, Objective]:
    """The trainer's side: data per member (x (N, K, n_in), y (N, K[, n_out])), the
    stacked model and the objective."""
    from trainer.data import stack  # lazy: torch (see the module docstring)
    from trainer.vmapped import StackedModule  # lazy: torch

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
    data = stack(cfg, [d for d, _, _ in per], device)
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
    import torch  # lazy: see the module docstring

    from trainer.vmapped import pack_check, scores_fn  # lazy: torch

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
                              f"{tuple(xb.shape)}: {type(e).__name__}: {one_line(e)}") from None
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
        pair = [build_model(cfg, n_in, n_out, s) for s in (cfg.seed, cfg.seed + 1)]
        packable, why = pack_check(pair, xb)
    return Probe(len(data.train.x), n_in, n_out, objective, packable, why)
