"""`wdsweep analyze PATH --out DIR [--last N]`: the entry the wdsweep CLI dispatches to.

Bad input prints ``wdsweep analyze: error: <one line>`` and returns 2, writing
nothing; partial input (a single λ, NaN runs, ...) writes what it can and
prints each warning on stderr as well as in the report.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis._analysis import analyze
from analysis._schema import AnalysisError

EXIT_BAD_INPUT = 2
DEFAULT_WINDOW = 0.1  # final fraction of each run's steps averaged for its final metrics


def main(args: argparse.Namespace) -> int:
    """`args` has .path, .out and optionally .window, .last (None: the defaults),
    .run_col, .ignore and .figures (see `add_options`)."""
    window = getattr(args, "window", None)
    try:
        a = analyze(args.path, args.out, window=DEFAULT_WINDOW if window is None else window,
                    last=getattr(args, "last", None), run_col=getattr(args, "run_col", None),
                    ignore=getattr(args, "ignore", None) or (),
                    figures=getattr(args, "figures", True))
    except AnalysisError as e:
        print(f"wdsweep analyze: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:  # --out not writable, or a file where the directory should be
        print(f"wdsweep analyze: error: cannot write {args.out}: {e.strerror or e}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    for w in a.warnings:
        print(f"wdsweep analyze: warning: {w}", file=sys.stderr)
    print(f"wrote {Path(args.out) / 'report.html'}")
    return 0


def add_options(p: argparse.ArgumentParser) -> None:
    """--window / --last, --run-col, --ignore, --no-figures (as `wdsweep analyze`)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--window", type=float, default=None, metavar="FRACTION",
                   help="final metrics = mean over the last FRACTION of each run's steps "
                        f"(default {DEFAULT_WINDOW})")
    g.add_argument("--last", type=int, default=None, metavar="N",
                   help="final metrics = mean of each run's last N evaluations instead")
    add_table_options(p)


def add_table_options(p: argparse.ArgumentParser) -> None:
    """How a foreign table's runs are told apart, and headless batch use."""
    p.add_argument("--run-col", default=None, metavar="COL",
                   help="the column naming runs (default: found by name: run_id, run_name, "
                        "trial_id, name, id, ...)")
    p.add_argument("--ignore", nargs="+", default=None, metavar="COL",
                   help="columns to leave out of the analysis (never cell axes)")
    p.add_argument("--no-figures", dest="figures", action="store_false",
                   help="write the tables and the report without figures")


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The same arguments as `wdsweep analyze`, for `python -m analysis.cli`."""
    p = argparse.ArgumentParser(prog="wdsweep analyze")
    p.add_argument("path", type=Path)
    p.add_argument("--out", required=True, type=Path)
    add_options(p)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse()))
