"""Column names shared by the loaders and the analysis, and the one error type.

The metric columns and their prefixes come from `trainer.schema` (torch-free), so the
trainer, the sweep and the analysis share one list; so do the trainer's config keys and
decay units (`trainer.config`, torch-free), which the analysis knows by name.
"""

from __future__ import annotations

from trainer.config import DECAY_KEYS, DERIVED_KEYS, EXECUTION_ONLY, FIELDS
from trainer.errors import AnalysisError  # noqa: F401 (re-exported)
from trainer.schema import FINAL, LAST, METRICS  # noqa: F401 (re-exported for the analysis)

DECAY_UNITS = DECAY_KEYS  # weight_decay, decay_per_step, lambda_norm (trainer.units)
UNIT_LABEL = {
    "weight_decay": "PyTorch weight_decay",
    "decay_per_step": "per-step decay d = lr·wd",
    "lambda_norm": "λ_norm = d / sqrt(b/(B·T))",
}

# The position of an evaluation in a run; never part of a run's config.
CURVE_KEYS = ("step", "epoch", "training_iteration")

# Columns that are neither config nor metric: Tune's and the sweep's bookkeeping.
BOOKKEEPING = frozenset({
    "trial_id", "experiment_tag", "experiment_id", "date", "timestamp", "time_this_iter_s",
    "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "done", "checkpoint_dir_name", "logdir", "should_checkpoint",
    "episodes_total", "timesteps_total", "wall_time", "status", "member", "config_hash",
    "error", "run", "cell", "experiment", "node", "train_seconds", "resumed_from",
    "stop", "stopped_step", "stop_reason",  # early stopping (trainer.early_stop): outcomes
})

# The trainer's config keys: TrainConfig's fields plus what resolved() derives. Columns
# of these names describe a run (one value per run); any other column is looked at first.
KNOWN_CONFIG = frozenset({*FIELDS, *DERIVED_KEYS})

# Run length in its various spellings: all functions of (b, B, T), so the cell
# key is the canonical `T` and these are never cell keys themselves.
LENGTH_KEYS = ("epochs", "steps", "epochs_T", "total_steps", "steps_per_epoch")

# Never cell keys: the λ axis, replicates, and how a run was executed.
NOT_CELL = frozenset({
    *DECAY_UNITS, *LENGTH_KEYS, "lam", "seed", "data_seed", *EXECUTION_ONLY, "eval_every",
})

# The scaling axes, in order, with their short names in labels.
AXES = {"batch_size": "b", "train_size": "B", "T": "T", "lr": "lr"}
