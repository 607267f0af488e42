"""The study directory: lock, state, and the results tables.

    STUDY/spec.toml       the spec as last run (specs/ keeps one per experiment)
    STUDY/study.json      experiments, their status, the Ray version that ran them
    STUDY/results.csv     one row per member: resolved config, final metrics, status
    STUDY/history.csv     one row per member per evaluation
    STUDY/status.json     live trial counts, written by the running driver
    STUDY/experiments/    Ray Tune experiments (unless the spec sets run.storage)
"""

from __future__ import annotations

import fcntl
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from sweep.spec import SpecError
from trainer.fsutil import atomic_write_bytes

RESULTS, HISTORY, STATE, STATUS = "results.csv", "history.csv", "study.json", "status.json"


class StudyBusy(SpecError):
    pass


def refuse_if_busy(study: Path) -> None:
    if is_locked(study):
        pid = (study / ".lock").read_text().strip() or "?"
        raise StudyBusy("--study", f"{study} is in use by another wdsweep process "
                        f"(pid {pid}); wait for it or stop it first")


@contextmanager
def locked(study: Path) -> Iterator[None]:
    """Exclusive use of a study; a second run/resume refuses instead of corrupting it."""
    study.mkdir(parents=True, exist_ok=True)
    fd = os.open(study / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode().strip() or "?"
            raise StudyBusy("--study", f"{study} is in use by another wdsweep process "
                            f"(pid {pid}); wait for it or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def is_locked(study: Path) -> bool:
    if not (study / ".lock").exists():
        return False
    fd = os.open(study / ".lock", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def read_state(study: Path) -> dict[str, Any]:
    p = study / STATE
    return json.loads(p.read_text()) if p.exists() else {"experiments": []}


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=str).encode())


_IDS = {"config_hash": str, "trial_id": str}  # hex ids that pandas could read as numbers


def read_results(study: Path) -> pd.DataFrame:
    p = study / RESULTS
    return pd.read_csv(p, dtype=_IDS) if p.exists() else pd.DataFrame()


def set_experiment_status(study: Path, name: str, status: str) -> None:
    state = read_state(study)
    for e in state["experiments"]:
        if e["name"] == name:
            e["status"] = status
    write_json(study / STATE, state)


def completed_hashes(study: Path) -> set[str]:
    df = read_results(study)
    return set() if df.empty else set(df.loc[df.status == "completed", "config_hash"])


def merge_results(study: Path, rows: list[dict[str, Any]], history: pd.DataFrame) -> None:
    """Fold a finished experiment's members into the tables: one row per member.

    The first completed row of a member is kept for good; an errored row is replaced
    by any newer row.
    History rows are kept only for members whose completed row they belong to.
    """
    old = read_results(study)
    new = pd.DataFrame(rows)
    both = pd.concat([old, new], ignore_index=True) if not old.empty else new
    if both.empty:
        return
    # Completed rows first, oldest first; other rows newest first.
    rank = both["status"].map({"completed": 0}).fillna(1)
    order = pd.Series(range(len(both)), index=both.index)
    tiebreak = order.where(rank == 0, -order)
    both = (both.assign(_rank=rank, _tie=tiebreak, _order=order)
            .sort_values(["_rank", "_tie"])
            .drop_duplicates("config_hash").sort_values("_order")
            .drop(columns=["_rank", "_tie", "_order"]))
    done = set(both.loc[both.status == "completed", "config_hash"])
    hist_path = study / HISTORY
    old_h = pd.read_csv(hist_path, dtype=_IDS) if hist_path.exists() else pd.DataFrame()
    have = set(old_h["config_hash"]) if not old_h.empty else set()
    add = history[history.config_hash.isin(done - have)] if not history.empty else history
    hist = pd.concat([old_h, add], ignore_index=True) if not old_h.empty else add
    _write_csv(hist_path, hist)
    _write_csv(study / RESULTS, both)


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.17g")
    atomic_write_bytes(path, buf.getvalue().encode())
