"""Tasks: a registry (trainer.registry) a user can add to with :func:`register`."""

from __future__ import annotations

from trainer import registry
from trainer.tasks._base import Split, Task, TaskData
from trainer.tasks.binary_add import BinaryAdd
from trainer.tasks.modular_add import ModularAdd

for _t in (BinaryAdd(), ModularAdd()):
    registry.add(_t)


def register(task: Task) -> None:
    """Make `task` available as TrainConfig(task=task.name)."""
    registry.add(task)


def get(name: str) -> Task:
    return registry.lookup(name)


__all__ = ["Split", "Task", "TaskData", "get", "register"]
