"""Column names shared by every layer: what the trainer writes per evaluation, what the
sweep folds into a study's results.csv, and what the analysis reads. Torch-free, so the
sweep driver and the analysis import it without loading torch. It also holds the one
codec of a packed trial's per-member Tune keys (`mKK/<metric>`, the `trial/table/mKK`
member table).

Two prefixes, two meanings (never mixed):
* ``last_<metric>`` (results.csv): the member's value at its final evaluation;
* ``final_<metric>`` (the analysis's summary.csv): the mean over the final window of the
  run (by default its last 10% of steps), which is what accuracy-vs-λ plots.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Per-evaluation metrics, in the trainer's metrics.csv order.
METRICS = (
    "train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc", "bit_acc",
    "weight_norm", "weight_norm_sq",
)
# The trainer's metrics.csv (= a study's history.csv), one row per member per evaluation.
METRIC_COLUMNS = (
    "member", "config_hash", "seed", "lr", "weight_decay", "decay_per_step", "lambda_norm",
    "bn_eps", "batch_size", "train_size", "step", "epoch", *METRICS, "wall_time",
    "stop",  # why the member stopped early at this evaluation (trainer.early_stop); else ""
)
LAST = "last_"  # results.csv: value at the final evaluation
FINAL = "final_"  # summary.csv: mean over the final window
# Metrics results.csv carries per member (as LAST + name).
RESULT_METRICS = ("train_acc", "test_acc", "val_acc", "train_loss", "test_loss", "weight_norm")

# -- a packed trial's members as Ray Tune sees them -----------------------------------
# Member k of a trial is `member_id(k)` ("m03"): its metrics are reported under
# `member_key(k, metric)` ("m03/test_acc"), and the trial's config holds its row of the
# member table at config[TRIAL_KEY][TABLE_KEY][member_id(k)] (flattened by Tune:
# "trial/table/m03"). Two digits at least, more from member 100 on (a pack's size is
# bounded by memory, not by the format); `split_member_key` reads back exactly what
# `member_key` writes and nothing else.
TRIAL_KEY = "trial"  # Tune's param_space: {"trial": the trial's payload}
TABLE_KEY = "table"  # the payload's member table: member_id(k) -> the member's hparams
_MEMBER_ID = re.compile(r"m([0-9]{2,})")
_METRIC = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def member_id(k: int) -> str:
    """Member k's name in its trial: 'm03' (k >= 0)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"a member index is an integer >= 0, got {k!r}")
    return f"m{k:02d}"


def parse_member_id(name: str) -> int | None:
    """'m03' -> 3; None for anything member_id does not write ('m3', 'm003', 'x03')."""
    m = _MEMBER_ID.fullmatch(name) if isinstance(name, str) else None
    if m is None or (len(m[1]) > 2 and m[1][0] == "0"):
        return None
    return int(m[1])


def member_key(k: int, metric: str) -> str:
    """Member k's `metric` as a Tune metric key: member_key(3, 'test_acc') = 'm03/test_acc'."""
    if not isinstance(metric, str) or not _METRIC.fullmatch(metric):
        raise ValueError(f"a member metric is an identifier, got {metric!r}")
    return f"{member_id(k)}/{metric}"


def split_member_key(key: str) -> tuple[int, str] | None:
    """'m03/test_acc' -> (3, 'test_acc'); None unless member_key writes exactly `key`."""
    if not isinstance(key, str):
        return None
    name, slash, metric = key.partition("/")
    k = parse_member_id(name)
    if k is None or not slash or not _METRIC.fullmatch(metric):
        return None
    return k, metric


def trial_table(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """A trial config's member table (member_id -> hparams); None when it has none (a
    trial of another trainable)."""
    trial = config.get(TRIAL_KEY) if isinstance(config, Mapping) else None
    table = trial.get(TABLE_KEY) if isinstance(trial, Mapping) else None
    return table if isinstance(table, dict) else None
