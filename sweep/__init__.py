"""wdsweep's sweep service: specs -> Ray Tune trials -> a study directory.

Python API (mirrors the CLI; Ray is imported only when a sweep runs):
    sweep.run(spec_path, study, address=None, dry_run=False, yes=False)
    sweep.resume(study, retry_errored=False, address=None)
    sweep.status(study) -> dict
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweep.spec import Spec, SpecError, load, parse


def run(spec: str | Path | Spec, study: str | Path, *, address: str | None = None,
        dry_run: bool = False, yes: bool = False) -> dict[str, Any]:
    from sweep import _driver

    s = spec if isinstance(spec, Spec) else load(Path(spec))
    return _driver.run(s, Path(study), address=address, dry_run=dry_run, yes=yes)


def resume(study: str | Path, *, retry_errored: bool = False,
           address: str | None = None) -> dict[str, Any]:
    from sweep import _driver

    return _driver.resume(Path(study), retry_errored=retry_errored, address=address)


def status(study: str | Path) -> dict[str, Any]:
    from sweep import _driver

    return _driver.status(Path(study))


__all__ = ["Spec", "SpecError", "load", "parse", "resume", "run", "status"]
