"""`wdsweep`: the service's front door.

Subcommands: train (one run, no Ray), run / resume / status / repair (sweeps on
Ray Tune), export / import (published tables), analyze (reports; loads `analysis`
lazily). Bad input (or a damaged
study) prints one line naming the field or file and what is allowed, and exits
with status 2; a fault (a full disk, an I/O error) prints one line and exits 1.

Data (the plan, status tables, --json) goes to stdout; messages and progress are
`logging` records printed on stderr (-q: warnings and errors only; -v: debug).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import trainer
from analysis._options import add_options
from trainer.errors import EXIT_BAD_INPUT, EXIT_FAULT, WdsweepError

# trainer.presets.PRESETS (a test keeps them equal)
PRESETS = ("seed", "modular", "digits", "demo", "tiny")


def _version() -> str:
    try:
        return version("wdsweep")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _common() -> argparse.ArgumentParser:
    """-q / -v, accepted before or after the subcommand."""
    c = argparse.ArgumentParser(add_help=False)
    c.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="print only warnings and errors on stderr")
    c.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="also print debug messages on stderr")
    return c


def _parser() -> argparse.ArgumentParser:
    common = _common()
    p = argparse.ArgumentParser(prog="wdsweep", description=__doc__.splitlines()[0],
                                parents=[common])
    p.add_argument("--version", action="version", version=f"wdsweep {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, parents=[common])

    t = add("train", "train one pack of members, without Ray")
    t.add_argument("--preset", default="seed",  # checked by trainer.preset: one line
                   help="starting config: " + ", ".join(PRESETS) + " (default seed)")
    t.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key; packable keys take comma lists")
    t.add_argument("--out", required=True, type=Path, help="run directory (resumed if present)")
    t.add_argument("--yes", action="store_true", help="run even beyond the compute bounds")

    address = "Ray cluster: auto or host:port (default: an embedded " \
        "local Ray on loopback)"
    ray_logs = "show the trials' own output (Ray worker logs) on stderr"
    trust = ("use the study's code and storage paths although this user's wdsweep did not "
             "seal it, or although its code directories changed (docs/security.md)")
    r = add("run", "run (or extend) a sweep from a TOML spec")
    r.add_argument("spec", type=Path,
                   help="TOML sweep spec (examples/: demo, seed, rules_b, rules_T; a missing "
                        "examples/NAME.toml is taken from the installed package)")
    r.add_argument("--study", required=True, type=Path,
                   help="study directory (created; an existing study is extended)")
    r.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key before the spec is checked, dotted as in the "
                        "file (fixed.lr=0.01, run.pack=4, grid.seed=[0,1], name=x); VALUE is "
                        "a TOML value, else a string; KEY= removes KEY; repeatable")
    r.add_argument("--address", default=None, help=address)
    r.add_argument("--dry-run", action="store_true",
                   help="print the plan (every trial and member) and stop")
    r.add_argument("--json", action="store_true",
                   help="print the plan (with --dry-run) or the outcome as JSON on stdout")
    r.add_argument("--no-report", action="store_true", help="skip the analysis report")
    r.add_argument("--yes", action="store_true",
                   help="run even beyond the size and compute bounds")
    r.add_argument("--ray-logs", action="store_true", help=ray_logs)
    r.add_argument("--trust-code", action="store_true", help=trust)

    s = add("resume", "continue an interrupted sweep")
    s.add_argument("study", type=Path, help="study directory")
    s.add_argument("--retry-errored", action="store_true",
                   help="also rerun errored trials, from their newest checkpoint")
    _launch_flags(s, address, ray_logs, trust, "resume")

    rf = add("refine", "more refinement rounds on a study run with [refine]")
    rf.add_argument("study", type=Path, help="study directory")
    rf.add_argument("--rounds", type=int, default=None,
                    help="rounds to run beyond those recorded (default: up to the spec's)")
    rf.add_argument("--budget", type=float, default=None,
                    help="a new total of member-steps for all rounds (default: the spec's)")
    _launch_flags(rf, address, ray_logs, trust, "run")

    rp = add("repair", "rebuild a damaged study's tables from its checkpoints")
    rp.add_argument("study", type=Path, help="study directory")
    rp.add_argument("--migrate", action="store_true",
                    help="adopt a study written by an older wdsweep (no checksum in "
                         "study.json): check it and seal it")
    rp.add_argument("--trust-code", action="store_true",
                    help="read checkpoints from storage outside the study although this "
                         "user's wdsweep did not seal it")

    ex = add("export", "publish a study's tables (gzipped, with a manifest)")
    ex.add_argument("study", type=Path, help="study directory")
    ex.add_argument("dest", type=Path, help="directory for results.csv.gz, history.csv.gz, "
                    "specs/ and published.json")

    im = add("import", "start a study from published tables, to extend it")
    im.add_argument("source", type=Path, help="directory written by `wdsweep export` (or "
                    "holding results.csv[.gz] and history.csv[.gz])")
    im.add_argument("--study", required=True, type=Path, help="new study directory")

    st = add("status", "counts and the per-member table (live while a driver runs)")
    st.add_argument("study", type=Path, help="study directory")
    st.add_argument("--json", action="store_true", help="print the status as JSON")

    a = add("analyze", "best lambda per cell, scaling-rule fit, HTML report")
    a.add_argument("path", type=Path, help="study dir (also a running one: its completed "
                   "members), Ray Tune experiment dir, CSV or Parquet")
    a.add_argument("--out", type=Path, default=None,
                   help="directory for the report (default: STUDY/report for a study; "
                        "required for anything else)")
    a.add_argument("--json", action="store_true",
                   help="print the fit (fit.json), the report's path and member counts as "
                        "JSON on stdout")
    add_options(a)  # as `python -m analysis.cli` (argparse only: no pandas here)
    return p


def _launch_flags(p: argparse.ArgumentParser, address: str, ray_logs: str, trust: str,
                  verb: str) -> None:
    """The flags of a command that continues a study on Ray (resume, refine)."""
    p.add_argument("--address", default=None, help=address)
    p.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    p.add_argument("--no-report", action="store_true", help="skip the analysis report")
    p.add_argument("--ray-logs", action="store_true", help=ray_logs)
    p.add_argument("--trust-code", action="store_true", help=trust)
    p.add_argument("--yes", action="store_true", help=f"{verb} even beyond the compute bounds")


def _train(args: argparse.Namespace) -> int:
    from sweep.plan import bounds as _bounds  # lazy: each command imports only what it runs
    from sweep.plan.code import train_members  # lazy: each command imports only what it runs

    # like trainer.members, plus code=DIR,... and one probe of your task and model
    members = train_members(trainer.preset(args.preset), args.sets)
    _bounds.check_members(members, prefix="--set ")
    _bounds.check_unique(members, "--set")
    _bounds.check_compute(_bounds.core_hours(members), "--set steps", args.yes)
    fresh = not args.out.exists() or not any(args.out.iterdir())
    try:
        trainer.run(members, args.out)  # progress: logging records (stderr)
    except BaseException:
        # A run that failed before its first checkpoint leaves nothing behind.
        if fresh and args.out.is_dir() and not any((args.out / "checkpoints").glob("*.pt")):
            shutil.rmtree(args.out)
        raise
    print(args.out / "metrics.csv")  # data: the table written
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "train":
        return _train(args)
    if args.cmd in ("run", "resume", "refine", "status", "repair", "export", "import"):
        from sweep.cli import commands as _commands  # lazy: each command imports only what it runs

        return getattr(_commands, args.cmd.replace("import", "import_"))(args)
    if args.cmd == "analyze":
        from sweep.cli.analyze import analyze  # lazy: each command imports only what it runs

        return analyze(args)
    raise AssertionError(args.cmd)


def _setup_logging(args: argparse.Namespace) -> None:
    """Messages on stderr: INFO as is, warnings and errors prefixed."""
    level = (logging.WARNING if getattr(args, "quiet", False) else
             logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_Format(args.cmd))
    root = logging.getLogger()
    for old in [x for x in root.handlers if isinstance(x.formatter, _Format)]:
        root.removeHandler(old)  # main() called again in one process (tests, notebooks)
    root.addHandler(h)
    root.setLevel(logging.WARNING)
    for name in ("sweep", "trainer", "analysis"):
        logging.getLogger(name).setLevel(level)
    from sweep.runner.raylogs import show_ray_logs  # Ray-free until a sweep connects

    show_ray_logs(getattr(args, "ray_logs", False))


class _Format(logging.Formatter):
    def __init__(self, cmd: str) -> None:
        super().__init__()
        self.cmd = cmd

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            msg = f"wdsweep {self.cmd}: {record.levelname.lower()}: {msg}"
        return msg


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args)
    try:
        return _dispatch(args)
    except WdsweepError as e:  # BadInput, StudyDamaged: exit 2; Fault: exit 1
        kind = "error" if e.exit_code == EXIT_BAD_INPUT else "fault"
        _say(f"wdsweep {args.cmd}: {kind}: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        _say(f"wdsweep {args.cmd}: interrupted{_to_continue(args)}")
        return 130
    except MemoryError:
        _say(f"wdsweep {args.cmd}: error: out of memory; allowed: a smaller model or pack")
        return EXIT_FAULT
    except OSError as e:  # a fault of the machine, not of the input: one line, exit 1
        if isinstance(e, BrokenPipeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        where = f" ({e.filename})" if e.filename else ""
        if e.errno is None and args.cmd in _SWEEPS:  # raised by code, e.g. a tracker's
            _say(f"wdsweep {args.cmd}: fault: {_raised(e)}; the sweep stopped: fix it, then "
                 f"{_again(args)}")
        else:
            _say(f"wdsweep {args.cmd}: fault: {e.strerror or e}{where}")
        return EXIT_FAULT
    except Exception as e:  # noqa: BLE001 -- Ray's own errors one line; anything else raises
        if not _from_ray(e):
            raise
        logging.getLogger("sweep.cli").debug("Ray's error, whole:", exc_info=True)
        inner = e.__cause__ or e.__context__  # wdsweep's own error, raised inside Tune
        code = inner.exit_code if isinstance(inner, WdsweepError) else EXIT_FAULT
        kind = "error" if code == EXIT_BAD_INPUT else "fault"
        _say(f"wdsweep {args.cmd}: {kind}: {_ray_failure(e, args)}")
        return code


def _say(line: str) -> None:
    """The command's last line, on stderr, after clearing a progress line drawn there."""
    status = sys.modules.get("sweep.runner.statusline")  # loaded only if a sweep ran
    if status is not None:
        status.clear_line()
    print(line, file=sys.stderr)


def _from_ray(e: BaseException) -> bool:
    return type(e).__module__.partition(".")[0] == "ray"


def _ray_failure(e: BaseException, args: argparse.Namespace) -> str:
    """What stopped Ray Tune, in one line. Tune stops a sweep when code it calls in the
    driver raises -- a callback or tracker (`[run] callbacks`, `sweep.run(callbacks=)`)
    -- and wraps that error in a page of its own tracebacks ending in advice to use
    `Tuner.restore`; a wdsweep study continues with `wdsweep resume` instead."""
    inner = e.__cause__ or e.__context__
    again = _again(args)
    if isinstance(inner, WdsweepError):  # one line already, naming its key
        return f"{inner}; the sweep stopped: fix it, then {again}"
    if inner is not None and not _from_ray(inner):
        what = _raised(inner)
    else:
        lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else ""
        what = f"{type(e).__name__}{': ' + last if last else ''}"
    return (f"Ray Tune stopped: {what}; fix it (a callback or tracker: run.callbacks), then "
            f"{again} (-v shows the traceback)")


_SWEEPS = ("run", "resume", "refine")


def _again(args: argparse.Namespace) -> str:
    study = getattr(args, "study", None)
    return f"`wdsweep resume {study}`" if study is not None else "run it again"


def _to_continue(args: argparse.Namespace) -> str:
    """After Ctrl-C: the command that continues the study's interrupted experiment (for a
    refined study `refine`, which resumes and goes on with the rounds), if one is left."""
    study = getattr(args, "study", None)
    if args.cmd not in _SWEEPS or not isinstance(study, Path) \
            or not (study / "study.json").is_file():
        return ""
    from sweep.store.study import read_state  # lazy: each command imports only what it runs

    try:
        state = read_state(study)
    except (WdsweepError, OSError, ValueError):
        return ""
    if not any(e.get("status") == "running" for e in state["experiments"]):
        return "; no experiment was left unfinished: run the same command again"
    refined = isinstance(state.get("refine"), dict) and "spec" in state["refine"]
    return f"; continue with `wdsweep {'refine' if refined else 'resume'} {study}`"


def _raised(e: BaseException) -> str:
    """`Type: its first line (in function, file:line)`, the line outside Ray that raised."""
    said = _first_line(e)
    where = [f for f in traceback.extract_tb(e.__traceback__)
             if f"{os.sep}ray{os.sep}" not in f.filename]
    at = f" (in {where[-1].name}, {where[-1].filename}:{where[-1].lineno})" if where else ""
    return f"{type(e).__name__}{': ' + said if said else ''}{at}"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


if __name__ == "__main__":
    sys.exit(main())
