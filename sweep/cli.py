"""`wdsweep`: the service's front door.

Subcommands: train (one run, no Ray), run / resume / status (sweeps on Ray
Tune), analyze (reports; loads `analysis` lazily). Bad input prints one line
naming the field and what is allowed, and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_BAD_INPUT = 2


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

    r = sub.add_parser("run", help="run (or extend) a sweep from a TOML spec")
    r.add_argument("spec", type=Path)
    r.add_argument("--study", required=True, type=Path, help="study directory")
    r.add_argument("--address", default=None, help="Ray cluster: auto, host:port, ray://host:port")
    r.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    r.add_argument("--no-report", action="store_true", help="skip the analysis report")

    s = sub.add_parser("resume", help="continue an interrupted sweep")
    s.add_argument("study", type=Path)
    s.add_argument("--retry-errored", action="store_true", help="rerun errored trials")
    s.add_argument("--address", default=None)
    s.add_argument("--no-report", action="store_true")

    st = sub.add_parser("status", help="per-trial table and counts")
    st.add_argument("study", type=Path)
    st.add_argument("--json", action="store_true")

    a = sub.add_parser("analyze", help="best lambda per cell, scaling-rule fit, HTML report")
    a.add_argument("path", type=Path, help="study dir, Ray Tune experiment dir, CSV or Parquet")
    a.add_argument("--out", required=True, type=Path)
    a.add_argument("--last", type=int, default=None, help="evaluations averaged per run")
    return p


def _train(args: argparse.Namespace) -> int:
    import trainer

    members = trainer.members(trainer.preset(args.preset), args.sets)
    trainer.run(members, args.out, log=lambda s: print(s, flush=True))
    print(f"wrote {args.out / 'metrics.csv'}")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.cmd == "train":
        return _train(args)
    if args.cmd in ("run", "resume", "status"):
        from sweep import _commands

        return getattr(_commands, args.cmd)(args)
    if args.cmd == "analyze":
        from analysis import cli as analysis_cli  # lazy: matplotlib and pandas

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
    except BrokenPipeError:  # `wdsweep status --json | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
