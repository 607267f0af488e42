"""The one status line on a terminal, rewritten in place (`\\r`), for the live progress view
(sweep.runner.progress): any logging record written to the same terminal clears it first,
and the next tick draws it again."""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any


class _StatusLine:
    """The one line rewritten in place on a terminal, and a filter on the handlers that
    write to that terminal: a message clears the line first (the next tick draws it again)."""

    def __init__(self) -> None:
        self.stream: Any = None
        self.text = ""
        self.filters: list[tuple[logging.Handler, logging.Filter]] = []

    def show(self, stream: Any, text: str) -> None:
        self.stream = stream
        self._hook(stream)
        width = columns(stream)
        stream.write("\r" + text[: width - 1] + "\x1b[K")
        stream.flush()
        self.text = text

    def clear(self) -> None:
        if self.text and self.stream is not None:
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):  # a closed terminal: nothing left to clear
                pass
        self.text = ""

    def _hook(self, stream: Any) -> None:
        if self.filters:
            return
        for name in ("", "ray"):  # the root logger (the CLI's) and Ray's own handler
            for h in logging.getLogger(name).handlers:
                if getattr(h, "stream", None) is stream or _same_fd(h, stream):
                    f = _ClearFirst(self)
                    h.filters.insert(0, f)  # before any filter that rewrites the record
                    self.filters.append((h, f))

    def release(self) -> None:
        for h, f in self.filters:
            h.removeFilter(f)
        self.filters = []


class _ClearFirst(logging.Filter):
    def __init__(self, line: _StatusLine) -> None:
        super().__init__()
        self.line = line

    def filter(self, record: logging.LogRecord) -> bool:
        self.line.clear()
        return True


LINE = _StatusLine()


def clear_line() -> None:
    """Clear the status line (before a message printed without logging, e.g. the CLI's
    last line when a sweep stops with an error)."""
    LINE.clear()


def is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _same_fd(h: logging.Handler, stream: Any) -> bool:
    try:
        return h.stream.fileno() == stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def columns(stream: Any) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return shutil.get_terminal_size().columns
