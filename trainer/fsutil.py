"""Crash-safe file writes (no torch: the sweep driver uses these too)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

# A link planted at the temporary name must not redirect the write (O_NOFOLLOW), and
# an existing file there is never written through (O_EXCL): the name is random.
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a new temporary name, fsync, rename into place, fsync the directory:
    a crash leaves the old file or the new one, never a torn one; a failed write (a
    full disk) leaves no temporary file behind. A symlink at `path` is replaced, not
    followed (rename acts on the name)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, _FLAGS, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None and e.filename is None:
            raise OSError(e.errno, e.strerror, str(path)) from e  # name what it was writing
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
