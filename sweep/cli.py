"""`wdsweep`: the service's front door.

Subcommands: train (one run, no Ray), run / resume / status / repair (sweeps on
Ray Tune), export / import (published tables), analyze (reports; loads `analysis`
lazily). Bad input (or a damaged
study) prints one line naming the field or file and what is allowed, and exits
with status 2; a fault (a full disk, an I/O error) prints one line and exits 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_FAULT = 1


class UsageError(ValueError):
    """Bad user input at the CLI level; the message is one line."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wdsweep", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train one pack of members, without Ray")
    t.add_argument("--preset", default="seed", help="starting config (seed, modular, tiny)")
    t.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key; packable keys take comma lists")
    t.add_argument("--out", required=True, type=Path, help="run directory (resumed if present)")
    t.add_argument("--yes", action="store_true", help="run even beyond the compute bounds")

    r = sub.add_parser("run", help="run (or extend) a sweep from a TOML spec")
    r.add_argument("spec", type=Path)
    r.add_argument("--study", required=True, type=Path, help="study directory")
    r.add_argument("--address", default=None, help="Ray cluster: auto, host:port, ray://host:port")
    r.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    r.add_argument("--no-report", action="store_true", help="skip the analysis report")
    r.add_argument("--yes", action="store_true",
                   help="run even beyond the size and compute bounds")

    s = sub.add_parser("resume", help="continue an interrupted sweep")
    s.add_argument("study", type=Path)
    s.add_argument("--retry-errored", action="store_true", help="rerun errored trials")
    s.add_argument("--address", default=None)
    s.add_argument("--no-report", action="store_true")

    rp = sub.add_parser("repair", help="rebuild a damaged study's tables from its checkpoints")
    rp.add_argument("study", type=Path)

    ex = sub.add_parser("export", help="publish a study's tables (gzipped, with a manifest)")
    ex.add_argument("study", type=Path, help="study directory")
    ex.add_argument("dest", type=Path, help="directory for results.csv.gz, history.csv.gz, "
                    "specs/ and published.json")

    im = sub.add_parser("import", help="start a study from published tables, to extend it")
    im.add_argument("source", type=Path, help="directory written by `wdsweep export` (or "
                    "holding results.csv[.gz] and history.csv[.gz])")
    im.add_argument("--study", required=True, type=Path, help="new study directory")

    st = sub.add_parser("status", help="per-trial table and counts")
    st.add_argument("study", type=Path)
    st.add_argument("--json", action="store_true")

    a = sub.add_parser("analyze", help="best lambda per cell, scaling-rule fit, HTML report")
    a.add_argument("path", type=Path, help="study dir, Ray Tune experiment dir, CSV or Parquet")
    a.add_argument("--out", required=True, type=Path)
    g = a.add_mutually_exclusive_group()  # the same options as analysis.cli.add_options
    g.add_argument("--window", type=float, default=None, metavar="FRACTION",
                   help="final metrics = mean over the last FRACTION of each run's steps "
                        "(default 0.1)")
    g.add_argument("--last", type=int, default=None, metavar="N",
                   help="final metrics = mean of each run's last N evaluations instead")
    return p


def _train(args: argparse.Namespace) -> int:
    import trainer
    from sweep import _bounds

    members = trainer.members(trainer.preset(args.preset), args.sets)
    _bounds.check_members(members, prefix="--set ")
    _bounds.check_unique(members, "--set")
    _bounds.check_compute(_bounds.core_hours(members), "--set steps", args.yes)
    fresh = not args.out.exists() or not any(args.out.iterdir())
    try:
        trainer.run(members, args.out, log=lambda s: print(s, flush=True))
    except BaseException:
        # A run that failed before its first checkpoint leaves nothing behind.
        if fresh and args.out.is_dir() and not any((args.out / "checkpoints").glob("*.pt")):
            shutil.rmtree(args.out)
        raise
    print(f"wrote {args.out / 'metrics.csv'}")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "train":
        return _train(args)
    if args.cmd in ("run", "resume", "status", "repair", "export", "import"):
        from sweep import _commands

        return getattr(_commands, args.cmd.replace("import", "import_"))(args)
    if args.cmd == "analyze":
        from analysis import cli as analysis_cli  # lazy: matplotlib and pandas

        if (args.path / "study.json").is_file():  # a study: refuse a damaged one first
            from sweep.study import check

            check(args.path)
        return analysis_cli.main(args)
    raise AssertionError(args.cmd)


def main(argv: Sequence[str] | None = None) -> int:
    from trainer import ConfigError

    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (ConfigError, UsageError) as e:
        print(f"wdsweep {args.cmd}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"wdsweep {args.cmd}: error: out of memory; allowed: a smaller model or pack",
              file=sys.stderr)
        return EXIT_FAULT
    except OSError as e:  # a fault of the machine, not of the input: one line, exit 1
        if isinstance(e, BrokenPipeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        where = f" ({e.filename})" if e.filename else ""
        print(f"wdsweep {args.cmd}: fault: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_FAULT
    except RuntimeError as e:
        from sweep._driver import StudyFault

        if not isinstance(e, StudyFault):
            raise
        print(f"wdsweep {args.cmd}: fault: {e}", file=sys.stderr)
        return EXIT_FAULT


if __name__ == "__main__":
    sys.exit(main())
