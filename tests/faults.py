"""Fault injection for the tests, installed in every Ray worker of the test session by
Ray's `worker_process_setup_hook` (tests/conftest.py): a file FAULT_DIR/<config_hash>
holding a step makes that member's trial raise at the first evaluation at or after it."""

from __future__ import annotations

import os
from pathlib import Path

FAULT_DIR_ENV = "WDSWEEP_TEST_FAULT_DIR"


def install() -> None:
    from sweep.runner import trainable

    if os.environ.get(FAULT_DIR_ENV) and _maybe_fail not in trainable.EVAL_HOOKS:
        trainable.EVAL_HOOKS.append(_maybe_fail)


def _maybe_fail(step: int, members) -> None:
    for m in members:
        f = Path(os.environ[FAULT_DIR_ENV]) / m.config_hash()
        if f.exists() and step >= int(f.read_text() or 0):
            raise RuntimeError(f"injected fault for member {m.config_hash()} at step {step}")
