"""A study's files as wdsweep may touch them: no link followed, nothing but regular files
and directories, reads bounded, and the lock (sweep.store.study builds on these; docs/security.md).

Whoever can write a study can plant a symbolic link, a FIFO or a sparse file where wdsweep
expects its own files. `check_links` refuses those before anything is opened; the lock is
opened without following links and without blocking; `read_regular` opens nothing but a
regular file and reads at most a given size.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trainer.errors import STATE, StudyBusy, StudyUnsafe, not_started  # noqa: F401 (re-exported)

RESULTS, HISTORY, STATUS = "results.csv", "history.csv", "status.json"
PLANS = "plans"  # plans/<experiment>.json: what each experiment ran (sweep.store.records)
SPECS = "specs"  # specs/<experiment>.toml: the spec each experiment ran
SPEC = "spec.toml"  # the spec the study last ran


# What wdsweep writes in a study; none of them may be a symbolic link (a link would
# let whoever planted it choose where our reads come from and our writes go).
ENTRIES = (STATE, RESULTS, HISTORY, STATUS, ".lock", ".ray-local.json", SPEC,
           PLANS, SPECS, "experiments", "report", "tensorboard")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


_LINK = "is a symbolic link; wdsweep never follows links inside a study: remove it (or " \
    "replace it by the real file)"
# Trees wdsweep, Tune and the analysis write into: a link anywhere in them would carry
# a write (a report, a checkpoint, an event file) to wherever it points.
TREES = ("experiments", "report", "tensorboard")


def check_links(study: Path) -> None:
    """StudyUnsafe when a study entry, or anything in the trees written into, is a
    symlink or not the kind of file wdsweep writes (a FIFO would block a read forever),
    or plans/ and specs/ hold anything but regular files."""
    for name in ENTRIES:
        p = study / name
        try:
            mode = os.lstat(p).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise StudyUnsafe(study, name, _LINK)
        want_dir = name in TREES or name in (PLANS, SPECS)
        if not (stat.S_ISDIR(mode) if want_dir else stat.S_ISREG(mode)):
            if name in (STATE, RESULTS, HISTORY) and stat.S_ISDIR(mode):
                continue  # a directory in a table's place: damage, which repair moves aside
            kind = "directory" if want_dir else "regular file"
            raise StudyUnsafe(study, name, f"is not a {kind}; wdsweep writes nothing else "
                              "there: remove it")
    for t in TREES:
        check_tree(study, study / t)
    for d in (PLANS, SPECS):
        if not (study / d).is_dir():
            continue
        for q in (study / d).iterdir():
            if q.is_symlink() or not q.is_file():
                raise StudyUnsafe(study, f"{d}/{q.name}", "is not a regular file; wdsweep "
                                  "keeps only its own JSON/TOML records there: remove it")


def check_tree(study: Path, root: Path) -> None:
    """StudyUnsafe naming the first symlink (or FIFO, socket, device) below `root`, a
    local directory; walked without recursion (a 10,000-deep tree is no traceback)."""
    if not root.is_dir() or root.is_symlink():
        return
    todo = [(str(root), 0)]
    while todo:
        top, depth = todo.pop()
        if depth > MAX_DEPTH:  # nothing wdsweep or Tune writes is this deep
            raise StudyUnsafe(study, str(root.relative_to(study)) if root.is_relative_to(study)
                              else str(root), f"holds directories nested deeper than "
                              f"{MAX_DEPTH} levels: remove them")
        with os.scandir(top) as it:
            for e in it:
                if e.is_symlink() or not (e.is_dir(follow_symlinks=False)
                                          or e.is_file(follow_symlinks=False)):
                    p = Path(e.path)
                    where = str(p.relative_to(study)) if p.is_relative_to(study) else str(p)
                    raise StudyUnsafe(study, where, _LINK if e.is_symlink() else
                                      "is not a regular file or directory: remove it")
                if e.is_dir(follow_symlinks=False):
                    todo.append((e.path, depth + 1))


MAX_DEPTH = 64  # directory levels below a tree's root
SMALL = 64 << 20  # study.json, a plan record, the lock, the Ray record: bytes at most
TABLE = 16 << 30  # a table


def read_regular(path: Path, limit: int = TABLE) -> bytes:
    """A file's bytes, refusing to follow a link, to open anything but a regular file
    (O_NONBLOCK: a FIFO never blocks the open) or to read more than `limit` bytes (a
    sparse file's apparent size). OSError otherwise (ELOOP for a link)."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
        if st.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit:,} bytes", str(path))
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)[:limit]
    finally:
        os.close(fd)


def _lock_fd(study: Path, flags: int) -> int:
    try:
        fd = os.open(study / ".lock", flags | _NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise StudyUnsafe(study, ".lock", "is a symbolic link (planted?); wdsweep "
                              "never follows links inside a study: remove it") from None
        if e.errno == errno.EISDIR:
            raise StudyUnsafe(study, ".lock", "is a directory; remove it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StudyUnsafe(study, ".lock", "is not a regular file; remove it")
    return fd


def refuse_if_busy(study: Path) -> None:
    if is_locked(study):
        pid = read_regular(study / ".lock", SMALL).decode(errors="replace").strip()[:20] or "?"
        raise StudyBusy("--study", f"{study} is in use by another wdsweep process "
                        f"(pid {pid}); wait for it or stop it first")


@contextmanager
def locked(study: Path) -> Iterator[None]:
    """Exclusive use of a study; a second run/resume refuses instead of corrupting it.
    The lock file is opened without following links, so a planted `.lock` symlink
    never makes us truncate another file."""
    study.mkdir(parents=True, exist_ok=True)
    fd = _lock_fd(study, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise StudyBusy("--study", f"{study} is in use by another wdsweep process "
                            f"(pid {pid}); wait for it or stop it first") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)  # who holds it, for StudyBusy
        except OSError as e:  # a full disk: before anything was started or written
            raise not_started(OSError(e.errno, e.strerror, str(study / ".lock"))) from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def try_locked(study: Path) -> Iterator[bool]:
    """The lock if free (yields True) without waiting, else False; for commands that
    only tidy up after a dead driver (`status` reaping its Ray processes)."""
    if not (study / ".lock").exists() or (study / ".lock").is_symlink():
        yield not (study / ".lock").is_symlink()
        return
    fd = _lock_fd(study, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def is_locked(study: Path) -> bool:
    if not (study / ".lock").exists() or (study / ".lock").is_symlink():
        return False
    fd = _lock_fd(study, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
