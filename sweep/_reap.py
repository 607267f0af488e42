"""Reap the Ray processes of an embedded local Ray whose driver was killed.

A driver that starts a local Ray records its own process and Ray's (gcs_server,
raylet, agents, workers: its descendants) in STUDY/.ray-local.json, each as
(pid, start time) so that a reused pid is never mistaken for one of them. The
next command on the study, if that driver is gone, stops those still alive
(SIGTERM, then SIGKILL) together with their descendants. Linux (/proc) only;
elsewhere nothing is recorded or reaped.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

from trainer.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

RECORD = ".ray-local.json"
_PROC = Path("/proc")


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks), or None when gone (or a zombie)."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return None if fields[0] in "ZX" else (int(fields[1]), int(fields[19]))


def _alive(pid: int, start: int) -> bool:
    s = _stat(pid)
    return s is not None and s[1] == start


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in _PROC.iterdir():
        if d.name.isdigit() and (s := _stat(int(d.name))) is not None:
            children.setdefault(s[0], []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def record(study: Path) -> None:
    if not _PROC.is_dir():
        return
    me = os.getpid()
    procs = [(p, s[1]) for p in descendants(me) if (s := _stat(p)) is not None]
    data = {"driver": [me, _stat(me)[1]], "procs": procs}  # type: ignore[index]
    atomic_write_bytes(study / RECORD, json.dumps(data).encode())


def forget(study: Path) -> None:
    (study / RECORD).unlink(missing_ok=True)


def reap(study: Path, wait_s: float = 5.0) -> int:
    """Stop the recorded Ray processes of a driver that is gone; returns how many."""
    p = study / RECORD
    if not p.exists() or not _PROC.is_dir():
        return 0
    try:
        data = json.loads(p.read_text())
        driver, procs = data["driver"], [tuple(x) for x in data["procs"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("ignoring unreadable %s (%s)", p, e)
        p.unlink(missing_ok=True)
        return 0
    if _alive(*driver):
        return 0  # its driver still runs (the study lock keeps us from here anyway)
    alive = [pid for pid, start in procs if _alive(pid, start)]
    victims = {(pid, _stat(pid)[1]) for root in alive  # type: ignore[index]
               for pid in [root, *descendants(root)] if _stat(pid) is not None}
    for pid, _ in victims:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and any(_alive(*v) for v in victims):
        time.sleep(0.1)
    for pid, start in victims:
        if _alive(pid, start):
            _signal(pid, signal.SIGKILL)
    if victims:
        log.warning("reaped %d Ray processes left by a killed driver (pid %d)",
                    len(victims), driver[0])
    p.unlink(missing_ok=True)
    return len(victims)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # exited meanwhile
    except PermissionError as e:
        log.warning("cannot stop pid %d: %s", pid, e)
