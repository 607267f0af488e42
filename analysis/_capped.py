"""A gzipped table read with a bound on what it inflates to.

A published table is someone else's data: an 8 MB gzip can inflate to 8 GiB. pandas
reads a `.gz` without a limit, so compressed tables are read through this stream, which
stops (AnalysisError, one line) once it has produced `limit` bytes. Streaming: nothing
is held beyond what pandas itself holds.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

from analysis._schema import AnalysisError

MAX_INFLATED = 4 << 30  # bytes; far above any study's table (the largest here: ~10 MB)


class _Capped(io.RawIOBase):
    def __init__(self, f: gzip.GzipFile, path: Path, limit: int) -> None:
        self.f, self.path, self.limit, self.n = f, path, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = self.f.readinto(b)
        self.n += n
        if self.n > self.limit:
            raise AnalysisError(f"{self.path}: inflates beyond {self.limit:,} bytes; allowed: "
                                f"tables of at most {self.limit:,} bytes uncompressed")
        return n

    def close(self) -> None:
        self.f.close()
        super().close()


def open_inflated(path: Path, limit: int | None = None) -> io.BufferedReader:
    """A binary stream of the gzip file's content, failing past `limit` bytes (default
    MAX_INFLATED)."""
    limit = MAX_INFLATED if limit is None else limit
    return io.BufferedReader(_Capped(gzip.open(path, "rb"), path, limit), 1 << 20)
