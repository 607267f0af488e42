"""The task registry: which names `TrainConfig(task=...)` accepts, and the tasks behind them.

A leaf module, torch-free: `trainer.config` validates a task name here without importing
the tasks themselves (they build tensors), and `trainer.tasks` fills it -- with the
built-in tasks when it is imported, and with a user's through `trainer.tasks.register`.
"""

from __future__ import annotations

from typing import Any

# The built-in tasks (trainer.tasks makes them): known by name before trainer.tasks loads.
BUILTIN_TASKS = ("binary_add", "modular_add")

_names: list[str] = list(BUILTIN_TASKS)  # in the order error messages list them
_tasks: dict[str, Any] = {}  # name -> trainer.tasks.Task


def add(task: Any) -> None:
    """Make `task` (a trainer.tasks.Task) the one TrainConfig(task=task.name) trains."""
    _tasks[task.name] = task
    if task.name not in _names:
        _names.append(task.name)


def task_names() -> tuple[str, ...]:
    """The task names a config may give (besides "package.module:function" references)."""
    return tuple(_names)


def lookup(name: str) -> Any:
    """The task registered as `name`; KeyError when there is none."""
    return _tasks[name]
