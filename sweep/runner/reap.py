"""Reap the Ray processes of an embedded local Ray whose driver was killed.

A driver that starts a local Ray records itself and Ray's processes (gcs_server,
raylet, agents, workers), each as (pid, start time) so that a reused pid is never
mistaken for one of them, in STUDY/.ray-local.json. The next command on the study, if
that driver is gone, stops them (SIGTERM, then SIGKILL) and every process still
carrying the driver's token (below) or started by one that does, wherever it now sits
in the process tree: Ray's gcs_server and raylet die with their driver, but its
dashboard and runtime-env agents outlive them as orphans. Linux (/proc) only;
elsewhere nothing is recorded or reaped.

The record is in the study, so whoever can write the study can write it: it must
not be a way to kill other processes. Two proofs of ownership, either enough:
* Before starting Ray the driver puts a random token in its environment
  (`WDSWEEP_RAY_OWNER`), which every Ray process it starts inherits; the record holds
  only the sha256 of the token *and the study's resolved path*. A process whose own
  environment carries a token hashing, with this study's path, to the record's (or
  one such a process started) is this study's driver's.
* Ray's agents retitle themselves (setproctitle), which overwrites their copy of the
  environment, and are orphans by the time anyone reaps: for them the record's list
  of (pid, start time) counts, but only when the record carries an HMAC of its
  contents and the study's path under a key private to this user
  (~/.local/state/wdsweep/reap.key, mode 0600), which a study's writer cannot read.
A record copied from another study names that study's path, not this one.
"""

from __future__ import annotations

import hashlib
import hmac
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


def _key_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "wdsweep" / "reap.key"


def _key(create: bool) -> bytes | None:
    """This user's private key for signing records, or None where there is none (and,
    with `create`, none can be made: a read-only home signs nothing)."""
    f = _key_file()
    try:
        if create and not f.exists():
            f.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Written whole under a private name, then linked into place: a driver that
            # starts meanwhile finds either no key or all 32 bytes of it, never a part.
            tmp = f.with_name(f".{f.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(secrets.token_bytes(32))
                os.link(tmp, f)  # FileExistsError: another driver's key is the one
            finally:
                tmp.unlink(missing_ok=True)
        st = f.lstat()
        if not f.is_file() or f.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o077:
            log.warning("ignoring %s: not a private regular file of this user", f)
            return None
        key = f.read_bytes()
    except FileExistsError:  # another driver made it meanwhile
        return _key(create=False)
    except OSError as e:
        log.debug("no reap key (%s): records are not signed", e)
        return None
    return key if len(key) >= 32 else None


def _mac(key: bytes, study: Path, driver: list, procs: list, digest: str) -> str:
    body = json.dumps([str(study.resolve()), driver, procs, digest]).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


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


def _children() -> dict[int, list[int]]:
    """Parent pid -> its children's pids, from one pass over /proc."""
    children: dict[int, list[int]] = {}
    for d in _PROC.iterdir():
        if d.name.isdigit() and (s := _stat(int(d.name))) is not None:
            children.setdefault(s[0], []).append(int(d.name))
    return children


def descendants(pid: int, children: dict[int, list[int]] | None = None) -> list[int]:
    children = _children() if children is None else children
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
    driver = [me, _stat(me)[1]]  # type: ignore[index]
    procs = [[p, st[1]] for p in descendants(me) if (st := _stat(p)) is not None]
    digest = _digest(token, study)
    data: dict = {"driver": driver, "owner_sha256": digest, "procs": procs}
    if (key := _key(create=True)) is not None:
        data["hmac"] = _mac(key, study, driver, procs, digest)
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
        driver, digest = data["driver"], data["owner_sha256"]
        procs, mac = data.get("procs", []), data.get("hmac")
        if not (isinstance(digest, str) and isinstance(procs, list) and all(
                isinstance(x, list) and len(x) == 2 and all(type(v) is int for v in x)
                for x in [driver, *procs])):
            raise TypeError("not a driver's [pid, start time], a digest and processes")
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("ignoring unreadable %s (%s)", p, e)
        p.unlink(missing_ok=True)
        return 0
    if _alive(*driver):
        return 0  # its driver still runs (the study lock keeps us from here anyway)
    # Every process that carries this driver's token, wherever it now hangs in the
    # process tree: a worker the raylet started after the record was written, or one
    # orphaned when its parent died first, is found by its token, not by its parent.
    # A pid in the record without the token (reused, or planted) is left alone.
    signed: set[tuple[int, int]] = set()
    key = _key(create=False)
    if isinstance(mac, str) and key is not None and hmac.compare_digest(
            mac, _mac(key, study, driver, procs, digest)):
        signed = {(pid, start) for pid, start in procs}
    victims: set[tuple[int, int]] = set()
    for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGKILL):
        now = _owned_procs(digest, study, signed)
        if not now:
            break
        victims |= now
        for pid, _ in now:
            _signal(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(_alive(*v) for v in now):
            time.sleep(0.1)
    if victims:
        log.warning("reaped %d Ray processes left by a killed driver (pid %d)",
                    len(victims), driver[0])
    p.unlink(missing_ok=True)
    return len(victims)


def _owned_procs(digest: str, study: Path,
                 signed: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """(pid, start time) of each live process, other than this one and its ancestors,
    that is in `signed` or whose environment carries a token hashing with `study` to
    `digest`, and of each process those started."""
    spare, pid = set(), os.getpid()
    while pid > 1 and pid not in spare and (st := _stat(pid)) is not None:
        spare.add(pid)
        pid = st[0]
    roots = [int(d.name) for d in _PROC.iterdir()
             if d.name.isdigit() and int(d.name) not in spare
             and _owned(int(d.name), digest, study)]
    roots += [pid for pid, start in signed if pid not in spare and _alive(pid, start)]
    tree = _children()  # one pass over /proc for every root's descendants
    return {(q, st[1]) for r in roots for q in [r, *descendants(r, tree)]
            if q not in spare and (st := _stat(q)) is not None}


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # exited meanwhile
    except PermissionError as e:
        log.warning("cannot stop pid %d: %s", pid, e)
