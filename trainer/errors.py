"""wdsweep's error kinds, one module for the whole house (torch-free).

Two outcomes a person must tell apart, each with its exit status:
    BadInput(key, reason)  the input is wrong (a spec field, a flag, a table); exit 2,
                           nothing launched or written. `key` names the field.
    Fault(message)         the machine or a run failed (a full disk, a dead node); exit 1.
StudyDamaged is its own kind: a study file that is unreadable or differs from what
study.json recorded (exit 2: nothing is run on it; `wdsweep repair` is the fix).

Every error pickles (Ray sends a trial's exception to the driver) and prints as one line.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

PathLike = str | os.PathLike
STATE = "study.json"  # the study's record (sweep.store); named here for the repair hint
EXIT_BAD_INPUT, EXIT_FAULT = 2, 1


class WdsweepError(Exception):
    """Base of wdsweep's errors; `exit_code` is what the CLI returns for it."""

    exit_code = EXIT_FAULT


class BadInput(WdsweepError, ValueError):
    """Bad user input. ``str(err)`` is one line naming the key and what is allowed."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, key: str, reason: str) -> None:
        self.key, self.reason = key, reason
        super().__init__(f"{key}: {reason}" if key else reason)

    def rekey(self, key: str) -> SpecError:
        """The same complaint about the field as the spec names it (e.g. `grid.lr` for
        the trainer's `lr`); raise it `from None`."""
        return SpecError(key, self.reason)

    def __reduce__(self):
        # Subclasses take other arguments: rebuilt from key, reason and text, not __init__.
        return _restore, (type(self), self.key, self.reason, self.args)


class Fault(WdsweepError, RuntimeError):
    """A fault (not bad input) that stopped a command; the message is one line."""


MACHINE_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EIO)  # the machine's, not the input's


def not_started(e: OSError) -> Fault:
    """The Fault for a machine's error (a full disk) that stopped a command before it
    started or recorded anything: the same command is the next step."""
    where = f" ({e.filename})" if e.filename else ""
    fix = "free space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "fix it"
    return Fault(f"{e.strerror or e}{where}; nothing was started or recorded: {fix}, then "
                 "run the same command again")


class SpecError(BadInput):
    """Bad input already keyed by the spec's dotted field (e.g. `grid.weight_decay`):
    callers that re-key a trainer error let this one through unchanged."""


class AnalysisError(BadInput):
    """A table or study the analysis cannot use; the message names the file."""

    def __init__(self, reason: str, key: str = "") -> None:
        super().__init__(key, reason)


class StudyUnsafe(BadInput):
    """Something in a study that wdsweep will not follow or use: a symbolic link, a
    path outside the study, a name that is not one wdsweep writes. Not repaired
    automatically: a person should look at it."""

    def __init__(self, study: PathLike, name: str, what: str) -> None:
        super().__init__(name, f"{Path(study) / name} {what}")


class StudyBusy(BadInput):
    """Another wdsweep holds the study's lock."""


class StudyDamaged(WdsweepError):
    """A study file is unreadable or differs from what study.json recorded; `key`
    names the file, the message says how to repair it."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, study: PathLike, name: str, what: str) -> None:
        fix = (f"run `wdsweep repair {study}` to rebuild it" if name != STATE else
               f"run `wdsweep repair {study}` to rebuild it from {Path(study) / 'plans'}")
        self.key, self.reason = name, f"{Path(study) / name} is damaged: {what}; {fix}"
        super().__init__(f"{self.key}: {self.reason}")

    __reduce__ = BadInput.__reduce__


class StudyLegacy(SpecError):
    """study.json without a checksum: written by an older wdsweep or edited by hand. Not
    damage (repair does not rebuild it): a person checks it and adopts it."""

    def __init__(self, study: PathLike) -> None:
        super().__init__(STATE, f"{Path(study) / STATE} has no checksum (written by an older "
                         "wdsweep, or edited by hand): check the study, then run "
                         f"`wdsweep repair --migrate {study}` to adopt it")


def _restore(cls: type, key: str, reason: str, args: tuple) -> Exception:
    e = Exception.__new__(cls)
    Exception.__init__(e, *args)
    e.key, e.reason = key, reason
    return e
