"""A pack's members as Tune, TensorBoard, the trackers and `wdsweep status` name them
(Ray-free).

A trial's reports carry member KK's metrics as `mKK/<metric>` (sweep.runner.trainable), and
its config carries the member table `trial/table/mKK` that says which member that is:
every member's HPARAMS (λ in every unit, seed, b, B, T, lr, config_hash), its `task`, and
what describes its model and data:

* the built-in model (no `model`): BUILTIN_MODEL (width, depth, batch_norm, bn_eps);
* your own model: `model` and each `model_args.KEY` -- never the built-in model's keys,
  which it ignores (trainer.user.build_model);
* your own task arguments: each `task_args.KEY`.

Every value is a plain scalar (bool, int, float, str; a list or table argument as its
JSON text), so each tracker can record it as it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from trainer import TrainConfig
from trainer.refs import ARG_TABLES
from trainer.schema import member_id

MEMBER_METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc",
                  "bit_acc", "weight_norm")
# In every member's row, in this order (then the model's keys, the arguments, the hash).
HPARAMS = ("weight_decay", "decay_per_step", "lambda_norm", "seed", "batch_size", "train_size",
           "total_steps", "epochs_T", "lr", "task")
# The built-in ResMLP's keys: in a row only when the member trains it.
BUILTIN_MODEL = ("width", "depth", "batch_norm", "bn_eps")


def member_row(m: TrainConfig) -> dict[str, Any]:
    """One member's row of the member table (see the module docstring)."""
    r = m.resolved()
    row = {h: r[h] for h in HPARAMS}
    if m.model is None:
        row.update({k: r[k] for k in BUILTIN_MODEL})
    else:
        row["model"] = m.model
    for table in ARG_TABLES:  # "task_args", "model_args": the spec's axis names
        for k, v in sorted(getattr(m, table).items()):
            row[f"{table}.{k}"] = _scalar(v)
    row["config_hash"] = m.config_hash()
    return row


def member_table(members: Sequence[TrainConfig]) -> dict[str, dict[str, Any]]:
    """`mKK` -> the member's row, for a trial's members."""
    return {member_id(k): member_row(m) for k, m in enumerate(members)}


def axes(row: dict[str, Any]) -> dict[str, Any]:
    """A row's task / model arguments (`task_args.KEY`, `model_args.KEY`) and its model."""
    return {k: v for k, v in row.items()
            if k == "model" or k.partition(".")[0] in ARG_TABLES}


def run_name(row: dict[str, Any]) -> str:
    """A member's TensorBoard run: readable (λ, seed, b, B, T in epochs as in the report)
    and unique (its hash), e.g. `wd0.1-s0-b32-B256-T100-1a2b3c4d`."""
    return (f"wd{row['weight_decay']:.4g}-s{row['seed']}-b{row['batch_size']}-"
            f"B{row['train_size']}-T{row['epochs_T']:.4g}-{row['config_hash'][:8]}")


def _scalar(v: Any) -> Any:
    return v if isinstance(v, bool | int | float | str) else json.dumps(v, sort_keys=True)
