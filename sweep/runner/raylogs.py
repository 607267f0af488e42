"""What the terminal shows of Ray: its records one line each (unless `--ray-logs`), the
records that contradict wdsweep dropped, its C++ client's stderr silenced for a moment,
and the environment that keeps Tune's tables and warnings off the progress view."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# `wdsweep --ray-logs` (show_ray_logs): the trials' own output (stdout, stderr, warnings)
# reaches the driver, and Ray's messages are shown whole.
_OPTIONS = {"ray_logs": False}


def show_ray_logs(on: bool = True) -> None:
    _OPTIONS["ray_logs"] = on


def ray_logs() -> bool:
    """Whether `--ray-logs` asked for the trials' own output and Ray's whole messages."""
    return _OPTIONS["ray_logs"]


def quiet() -> None:
    """Ray's own tables and per-checkpoint warnings would bury the progress view."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


class _FirstLine(logging.Filter):
    """Ray's own messages one line each on the terminal: a fault that stops a sweep is
    wdsweep's one line, not the last of a page of Ray's tracebacks (--ray-logs shows
    them whole; a trial's own traceback is in its error.txt and results.csv)."""

    def filter(self, record: logging.LogRecord) -> bool:
        lines = record.getMessage().strip().splitlines() or [""]
        more = len(lines) > 1 or record.exc_info is not None
        record.msg = lines[0] + (" [... --ray-logs shows the rest]" if more else "")
        record.args, record.exc_info, record.exc_text, record.stack_info = (), None, None, None
        return True


class _Drop(logging.Filter):
    """Ray's records that contradict wdsweep or that wdsweep says itself, in one line:
    Tune's advice to `Tuner.restore(...)` (a study continues with `wdsweep resume`; always
    dropped, --ray-logs too), and unless --ray-logs Tune's page per failed trial (wdsweep's
    line names the trial by its key, its members and the error: sweep.runner.progress) and
    its closing list of the trials that did not complete (the outcome line counts them)."""

    RESTORE = ("Tuner.restore(", "Resume experiment with:", "Resume training with:")
    SAID = ("Trial task failed for trial", "Trials did not complete")

    def __init__(self, whole: bool) -> None:
        super().__init__()
        self.drop = self.RESTORE if whole else self.RESTORE + self.SAID

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: not one of these
            return True
        return not any(s in msg for s in self.drop)


_RAY_LOGGERS = ("ray", "ray.tune", "ray.train", "ray.data")


def one_line_ray_logs() -> list[tuple[logging.Handler, logging.Filter]]:
    """Put `_Drop` and (unless --ray-logs) `_FirstLine` on the handlers Ray's loggers
    write to; returns what it added, for `quiet_ray_records` to take off again."""
    added = []
    for name in _RAY_LOGGERS:
        for h in logging.getLogger(name).handlers:
            want = [_Drop(_OPTIONS["ray_logs"])] + ([] if _OPTIONS["ray_logs"] else [_FirstLine()])
            for f in want:  # in this order: drop first, then cut what is left to a line
                if not any(type(g) is type(f) for g in h.filters):
                    h.addFilter(f)
                    added.append((h, f))
    return added


@contextmanager
def quiet_ray_records() -> Iterator[None]:
    """`one_line_ray_logs` while a sweep runs, taken off after it (a notebook's own Ray
    use afterwards sees Ray's records as Ray writes them)."""
    added = one_line_ray_logs()
    try:
        yield
    finally:
        for h, f in added:
            h.removeFilter(f)


@contextmanager
def stderr_quiet() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a moment (unless --ray-logs): Ray's C++ logging
    writes there directly."""
    if _OPTIONS["ray_logs"]:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
