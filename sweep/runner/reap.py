"""Reap the Ray processes of an embedded local Ray whose driver was killed.

A driver that starts a local Ray records its own process and Ray's (gcs_server,
raylet, agents, workers: its descendants) in STUDY/.ray-local.json, each as
(pid, start time) so that a reused pid is never mistaken for one of them. The
next command on the study, if that driver is gone, stops those still alive
(SIGTERM, then SIGKILL) together with their descendants. Linux (/proc) only;
elsewhere nothing is recorded or reaped.

The record is in the study, so whoever can write the study can write it: it must
not be a way to kill other processes. Before starting Ray the driver puts a random
token in its environment (`WDSWEEP_RAY_OWNER`), which every Ray process it starts
inherits; the record holds only the sha256 of the token *and the study's resolved
path*. A process is stopped only when its pid and start time match the record and its
own environment carries a token that hashes, with this study's path, to the record's:
no record can name a process this study's driver did not start (a record copied from
another study names that study's path, not this one).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import signal
import time
from pathlib import Path

from sweep.store.study import SMALL, read_regular
from trainer.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

RECORD = ".ray-local.json"
OWNER_ENV = "WDSWEEP_RAY_OWNER"
_PROC = Path("/proc")


def new_owner() -> None:
    """A fresh token in this process's environment, for the Ray about to start."""
    os.environ[OWNER_ENV] = secrets.token_hex(16)


def _digest(token: str, study: Path) -> str:
    return hashlib.sha256(f"{token}\0{study.resolve()}".encode()).hexdigest()


def _owned(pid: int, digest: str, study: Path) -> bool:
    """Does the process's own environment carry a token that, with this study's path,
    hashes to `digest`?"""
    try:
        env = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    prefix = f"{OWNER_ENV}=".encode()
    return any(v.startswith(prefix) and _digest(v[len(prefix):].decode(errors="replace"),
                                                 study) == digest for v in env.split(b"\0"))


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
    """Record this driver's Ray processes (call with the study locked, after ray.init
    under `new_owner`)."""
    token = os.environ.get(OWNER_ENV)
    if not _PROC.is_dir() or not token:
        return
    me = os.getpid()
    procs = [(p, s[1]) for p in descendants(me) if (s := _stat(p)) is not None]
    data = {"driver": [me, _stat(me)[1]], "owner_sha256": _digest(token, study),  # type: ignore[index]
            "procs": procs}
    atomic_write_bytes(study / RECORD, json.dumps(data).encode())


def forget(study: Path) -> None:
    (study / RECORD).unlink(missing_ok=True)


def reap(study: Path, wait_s: float = 5.0) -> int:
    """Stop the recorded Ray processes of a driver that is gone; returns how many."""
    p = study / RECORD
    if not (p.exists() or p.is_symlink()) or not _PROC.is_dir():
        return 0
    try:
        data = json.loads(read_regular(p, SMALL))
        driver, procs = data["driver"], [tuple(x) for x in data["procs"]]
        digest = data["owner_sha256"]
        if not (isinstance(digest, str) and all(
                len(x) == 2 and all(isinstance(v, int) for v in x) for x in [driver, *procs])):
            raise TypeError("not a list of [pid, start time]")
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("ignoring unreadable %s (%s)", p, e)
        p.unlink(missing_ok=True)
        return 0
    if _alive(*driver):
        return 0  # its driver still runs (the study lock keeps us from here anyway)
    # Only processes that carry this driver's token: a pid in the record that is
    # not one of them (reused, or planted by whoever wrote the record) is left alone.
    alive = [pid for pid, start in procs if _alive(pid, start) and _owned(pid, digest, study)]
    victims = {(pid, st[1]) for root in alive for pid in [root, *descendants(root)]
               if (st := _stat(pid)) is not None and _owned(pid, digest, study)}
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
