"""Tasks: a registry a user can add to with :func:`register`."""

from __future__ import annotations

from trainer.tasks._base import Split, Task, TaskData
from trainer.tasks.binary_add import BinaryAdd
from trainer.tasks.modular_add import ModularAdd

_REGISTRY: dict[str, Task] = {t.name: t for t in (BinaryAdd(), ModularAdd())}


def register(task: Task) -> None:
    """Make `task` available as TrainConfig(task=task.name)."""
    from trainer.config import CHOICES

    _REGISTRY[task.name] = task
    if task.name not in CHOICES["task"]:
        CHOICES["task"] = (*CHOICES["task"], task.name)


def get(name: str) -> Task:
    return _REGISTRY[name]


__all__ = ["Split", "Task", "TaskData", "get", "register"]
