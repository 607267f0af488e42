"""Column names shared by the loaders and the analysis, and the one error type.

The metric columns and their prefixes come from `trainer.schema` (torch-free), so the
trainer, the sweep and the analysis share one list; the trainer's config keys the
analysis knows by name are listed here.
"""

from __future__ import annotations

from trainer.errors import AnalysisError  # noqa: F401 (re-exported)
from trainer.schema import FINAL, LAST, METRICS  # noqa: F401 (re-exported for the analysis)

DECAY_UNITS = ("weight_decay", "decay_per_step", "lambda_norm")
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
})

# The trainer's config keys (trainer.config.TrainConfig plus its derived fields).
KNOWN_CONFIG = frozenset({
    "task", "train_size", "val_size", "test_size", "train_digits", "test_digits", "bits",
    "noise", "modulus", "train_frac", "width", "depth", "batch_norm", "bn_eps", "optimizer",
    "lr", "beta1", "beta2", "adam_eps", "momentum", "weight_decay", "decay_per_step",
    "lambda_norm", "decay_mode", "batch_size", "epochs", "steps", "shuffle", "eval_every",
    "checkpoint_every", "seed", "data_seed", "device", "threads", "total_steps", "epochs_T",
    "steps_per_epoch", "precision",
})

# Run length in its various spellings: all functions of (b, B, T), so the cell
# key is the canonical `T` and these are never cell keys themselves.
LENGTH_KEYS = ("epochs", "steps", "epochs_T", "total_steps", "steps_per_epoch")

# Never cell keys: the λ axis, replicates, and how a run was executed.
NOT_CELL = frozenset({
    *DECAY_UNITS, *LENGTH_KEYS, "lam", "seed", "data_seed", "device", "threads",
    "checkpoint_every", "eval_every",
})

# The scaling axes, in order, with their short names in labels.
AXES = {"batch_size": "b", "train_size": "B", "T": "T", "lr": "lr"}
