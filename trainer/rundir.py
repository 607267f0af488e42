"""A training run in a directory: config.json, metrics.csv, checkpoints/.

Running the same members into the same directory again resumes from the newest
checkpoint, or does nothing when the run already finished.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.config import ConfigError, TrainConfig
from trainer.fsutil import atomic_write_bytes
from trainer.loop import Rows, check_pack, messages, pick_device, train
from trainer.schema import METRIC_COLUMNS


def provenance() -> dict[str, Any]:
    """Library versions and the code's git commit, recorded with every run."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return dict(python=platform.python_version(), torch=torch.__version__,
                numpy=np.__version__, git_commit=commit or "unknown")


def describe(members: Sequence[TrainConfig], status: str,
             resumed_from: Sequence[int] = ()) -> dict[str, Any]:
    """config.json; `resumed_from` lists the step each restart continued from."""
    return dict(status=status, members=[m.resolved() for m in members],
                config_hashes=[m.config_hash() for m in members],
                resumed_from=list(resumed_from), versions=provenance())


def metrics_csv(rows: Rows) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: repr(v) if isinstance(v, float) else v for k, v in r.items()})
    return buf.getvalue().encode()


def check_out_dir(members: Sequence[TrainConfig], out: Path) -> str:
    """'new', 'resume' or 'done'; ConfigError when `out` holds another run."""
    check_pack(members)
    cfg_path = out / "config.json"
    if not cfg_path.exists():
        if out.exists() and any(out.iterdir()):
            raise ConfigError("--out", f"{out} exists and is not a wdsweep run directory; "
                              "choose a new or empty directory")
        return "new"
    try:
        have = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError("--out", f"{cfg_path} is unreadable ({e})") from None
    if have.get("config_hashes") != [m.config_hash() for m in members]:
        raise ConfigError("--out", f"{out} holds a different run; choose another directory")
    return "done" if have.get("status") == "done" else "resume"


def finished_at(members: Sequence[TrainConfig], out: Path, step: int) -> bool:
    """Is the run in `out` (its metrics.csv matching the checkpoint of `step`) finished
    at `step`: the run's end, or every member stopped early (trainer.early_stop)?"""
    if step >= members[0].total_steps:
        return True
    if members[0].stop_train_acc is None or not (out / "metrics.csv").exists():
        return False
    with open(out / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("stop")]
    return {int(r["member"]) for r in rows} == set(range(len(members)))


def run(members: Sequence[TrainConfig], out: Path, *, log: Callable[[str], None] | None = None,
        on_eval: Callable[[Rows], None] | None = None,
        on_checkpoint: Callable[[Path, int], None] | None = None,
        on_resume: Callable[[int], None] | None = None) -> Path:
    """Train into `out` (new, resumed, or already done). Returns out/metrics.csv.
    Hooks: `on_eval(rows)` per evaluation, `on_checkpoint(path, step)` after each
    checkpoint (metrics.csv already matches it), `on_resume(step)` when a checkpoint
    was loaded. Messages are `logging` records (trainer.loop.messages)."""
    state = check_out_dir(members, out)
    pick_device(members[0].device)  # a missing GPU is bad input: fail before writing
    if state == "done":
        messages(log)[0](f"{out} is already finished; nothing to do")
        return out / "metrics.csv"
    out.mkdir(parents=True, exist_ok=True)
    resumed: list[int] = (json.loads((out / "config.json").read_text()).get("resumed_from", [])
                          if state == "resume" else [])
    atomic_write_bytes(out / "config.json", json.dumps(describe(members, "running", resumed),
                                                        indent=2).encode())

    def _resumed(step: int) -> None:
        resumed.append(step)
        atomic_write_bytes(out / "config.json", json.dumps(
            describe(members, "running", resumed), indent=2).encode())
        if on_resume is not None:
            on_resume(step)

    def _checkpointed(path: Path, step: int, history: Rows) -> None:
        # metrics.csv follows the checkpoint, so it never holds rows a resume would redo.
        atomic_write_bytes(out / "metrics.csv", metrics_csv(history))
        if on_checkpoint is not None:
            on_checkpoint(path, step)

    rows = train(members, out, on_eval=on_eval, on_checkpoint=_checkpointed,
                 on_resume=_resumed, log=log)
    atomic_write_bytes(out / "metrics.csv", metrics_csv(rows))
    atomic_write_bytes(out / "config.json", json.dumps(describe(members, "done", resumed),
                                                        indent=2).encode())
    return out / "metrics.csv"
