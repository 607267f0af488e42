"""wdsweep's trainer: the seed experiment's residual MLP, packed K members at a time.

Public API:
    TrainConfig, ConfigError  -- one member's validated config
    preset, build, members    -- configs from presets and user strings
    train                     -- train a pack in memory (optionally checkpointed)
    run                       -- train a pack into a run directory (resumable)

Configs and units import without torch (the sweep driver needs only those);
`train` and `run` load torch on first use.
"""

from typing import Any

from trainer.config import PACKABLE, ConfigError, TrainConfig
from trainer.presets import PRESETS, build, members, preset
from trainer.schema import METRIC_COLUMNS
from trainer.units import Decay, resolve_decay


def __getattr__(name: str) -> Any:
    # Lazy: `train` and `run` load torch, which the configs and units must not.
    if name == "train":
        from trainer.loop import train

        return train
    if name == "run":
        from trainer.rundir import run

        return run
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")


__all__ = [
    "PACKABLE", "PRESETS", "METRIC_COLUMNS", "ConfigError", "Decay", "TrainConfig", "build",
    "members", "preset", "resolve_decay", "run", "train",
]
