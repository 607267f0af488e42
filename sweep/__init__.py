"""wdsweep's sweep service: specs -> Ray Tune trials -> a study directory.

Python API (mirrors the CLI; Ray is imported only when a sweep runs):
    sweep.parse(spec, base=None) -> Spec    TOML text, or a Path / a str naming a .toml file
    sweep.load(path) -> Spec                a spec file
    sweep.run(spec, study, address=None, dry_run=False, yes=False, callbacks=(),
              trust_code=False)
        -> SweepResult: the outcome dict, plus .results / .history (DataFrames),
           .status() and .analyze(out=None) (analysis.analyze: DataFrames, .fit dict)
    sweep.resume(study, retry_errored=False, address=None, callbacks=(), trust_code=False)
        -> SweepResult
    sweep.status(study) -> dict (counts and the per-member table)
`callbacks`: Ray Tune Callback instances (e.g. MLflowLoggerCallback, WandbLoggerCallback),
added to the spec's `[run] callbacks`. `trust_code`: use a study's code and storage
paths although this user's wdsweep did not seal it (docs/security.md). Bad input raises
`SpecError` (one line naming the field and what is allowed; `.key` is the field).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweep.plan import spec as _spec
from sweep.plan.spec import Spec, SpecError
from sweep.result import SweepResult


def run(spec: str | Path | Spec, study: str | Path, *, address: str | None = None,
        dry_run: bool = False, yes: bool = False, callbacks: list[Any] = (),
        trust_code: bool = False) -> SweepResult:
    """Run the members of `spec` that `study` has not completed: a new study, or an
    existing one extended with the spec's new members (edit the grid, run again).

    spec: a Spec (`sweep.parse`), or the path of a TOML spec file.
    study: the study directory (created; its tables are `results.csv`, `history.csv`).
    address: a Ray cluster (`"auto"`, `"host:port"`; not Ray Client's ray://); None starts a
        new local Ray on loopback (an already connected Ray, e.g. a notebook's, is used).
    dry_run: only plan; the outcome's `plan` holds every trial and member.
    yes: run even beyond the size and compute bounds (else refused, one line).
    callbacks: Ray Tune Callback instances, added to the spec's `[run] callbacks`.
    trust_code: use the study's code and storage although this user's wdsweep did not
        seal it, or although its code directories changed (docs/security.md).

    Returns a SweepResult: the outcome dict (`completed`, `errored`, `ran`, ...) with
    `.results` / `.history` DataFrames, `.status()` and `.analyze()`. Raises SpecError
    for bad input (nothing is written), trainer.errors.Fault when the machine fails."""
    from sweep.runner import driver as _driver  # lazy: `import sweep` stays light until it is used

    s = spec if isinstance(spec, Spec) else load(spec)
    return SweepResult(Path(study), _driver.run(s, Path(study), address=address,
                                                dry_run=dry_run, yes=yes,
                                                callbacks=list(callbacks),
                                                trust_code=trust_code))


def resume(study: str | Path, *, retry_errored: bool = False, address: str | None = None,
           callbacks: list[Any] = (), trust_code: bool = False, yes: bool = False
           ) -> SweepResult:
    """Finish what `study` left unfinished (an interrupted or killed driver), in a new Tune
    experiment, each pack from its newest verified checkpoint; with `retry_errored`, its
    errored trials too. Other arguments as `run`; returns a SweepResult."""
    from sweep.runner import driver as _driver  # lazy: `import sweep` stays light until it is used

    return SweepResult(Path(study), _driver.resume(Path(study), retry_errored=retry_errored,
                                                   address=address,
                                                   callbacks=list(callbacks),
                                                   trust_code=trust_code, yes=yes))


def refine(study: str | Path, *, rounds: int | None = None, budget: float | None = None,
           address: str | None = None, callbacks: list[Any] = (), trust_code: bool = False,
           yes: bool = False) -> SweepResult:
    """More refinement rounds on a study run with a `[refine]` spec (an interrupted round
    is finished first): `rounds` beyond those recorded, `budget` a new total of
    member-steps. `sweep.run` of a spec with `[refine]` runs its grid and its rounds."""
    from sweep.runner import driver as _driver  # lazy: `import sweep` stays light until it is used

    return SweepResult(Path(study), _driver.refine(Path(study), rounds=rounds, budget=budget,
                                                   address=address, callbacks=list(callbacks),
                                                   trust_code=trust_code, yes=yes))


def status(study: str | Path) -> dict[str, Any]:
    """`wdsweep status --json` without Ray: member counts (total, completed, running,
    pending, errored), the experiments, and one row per member (λ in PyTorch units, seed,
    b, B, `epochs` T, `total_steps`, status, step, latest test accuracy, ETA in seconds)."""
    from sweep.runner import driver as _driver  # lazy: `import sweep` stays light until it is used

    return _driver.status(Path(study))


def load(path: str | Path) -> Spec:
    """The spec in the TOML file `path`, checked whole (SpecError names the field);
    `code` directories are resolved against the file's directory."""
    return _spec.load(Path(path))


def parse(spec: str | Path, base: str | Path | None = None) -> Spec:
    """A Spec from TOML text, or from a file: a Path, or a str of one line that ends in
    `.toml` and names an existing file (`sweep.parse("examples/demo.toml")`). TOML text is
    never taken for a path. A file's `code` directories are resolved against its own
    directory; a text's against `base` (default: the current directory)."""
    if isinstance(spec, Path):
        return load(spec)
    if not isinstance(spec, str):
        raise SpecError("spec", f"got {type(spec).__name__}; allowed: TOML text, or a Path or "
                        "str naming a .toml file")
    named = "\n" not in spec and spec.strip().endswith(".toml")
    if named and Path(spec.strip()).is_file():
        return load(spec.strip())
    try:
        return _spec.parse(spec, None if base is None else Path(base))
    except SpecError:
        if named:  # not a file, and not a valid spec either: say what was missing
            raise SpecError("spec", f"no file {spec.strip()!r}; allowed: TOML text, or a "
                            "Path or str naming an existing .toml file") from None
        raise


__all__ = ["Spec", "SpecError", "SweepResult", "load", "parse", "refine", "resume", "run",
           "status"]
