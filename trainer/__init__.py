"""wdsweep's trainer: the seed experiment's residual MLP, packed K members at a time.

Public API:
    TrainConfig, ConfigError  -- one member's validated config
    preset, build, members    -- configs from presets and user strings
    train                     -- train a pack in memory (optionally checkpointed)
    run                       -- train a pack into a run directory (resumable)
"""

from trainer.config import PACKABLE, ConfigError, TrainConfig
from trainer.loop import train
from trainer.presets import PRESETS, build, members, preset
from trainer.run import METRIC_COLUMNS, run
from trainer.units import Decay, resolve_decay

__all__ = [
    "PACKABLE", "PRESETS", "METRIC_COLUMNS", "ConfigError", "Decay", "TrainConfig", "build",
    "members", "preset", "resolve_decay", "run", "train",
]
