"""wdsweep's sweep service: specs -> Ray Tune trials -> a study directory.

Python API (mirrors the CLI; Ray is imported only when a sweep runs):
    sweep.run(spec_path, study, address=None, dry_run=False, yes=False, callbacks=(),
              trust_code=False)
        -> SweepResult: the outcome dict, plus .results / .history (DataFrames),
           .status() and .analyze(out=None) (analysis.analyze: DataFrames, .fit dict)
    sweep.resume(study, retry_errored=False, address=None, callbacks=(), trust_code=False)
        -> SweepResult
    sweep.status(study) -> dict (counts and the per-member table)
`callbacks`: Ray Tune Callback instances (e.g. MLflowLoggerCallback, WandbLoggerCallback),
added to the spec's `[run] callbacks`. `trust_code`: use a study's code and storage
paths although this user's wdsweep did not seal it (docs/security.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweep.plan.spec import Spec, SpecError, load, parse
from sweep.result import SweepResult


def run(spec: str | Path | Spec, study: str | Path, *, address: str | None = None,
        dry_run: bool = False, yes: bool = False, callbacks: list[Any] = (),
        trust_code: bool = False) -> SweepResult:
    """Run the members of `spec` (a path or a Spec) that `study` has not completed."""
    from sweep.runner import driver as _driver  # lazy: `import sweep` stays light until it is used

    s = spec if isinstance(spec, Spec) else load(Path(spec))
    return SweepResult(Path(study), _driver.run(s, Path(study), address=address,
                                                dry_run=dry_run, yes=yes,
                                                callbacks=list(callbacks),
                                                trust_code=trust_code))


def resume(study: str | Path, *, retry_errored: bool = False, address: str | None = None,
           callbacks: list[Any] = (), trust_code: bool = False, yes: bool = False
           ) -> SweepResult:
    """Finish what `study` left unfinished (errored trials too, with retry_errored)."""
    from sweep.runner import driver as _driver  # lazy: `import sweep` stays light until it is used

    return SweepResult(Path(study), _driver.resume(Path(study), retry_errored=retry_errored,
                                                   address=address,
                                                   callbacks=list(callbacks),
                                                   trust_code=trust_code, yes=yes))


def status(study: str | Path) -> dict[str, Any]:
    from sweep.runner import driver as _driver  # lazy: `import sweep` stays light until it is used

    return _driver.status(Path(study))


__all__ = ["Spec", "SpecError", "SweepResult", "load", "parse", "resume", "run", "status"]
