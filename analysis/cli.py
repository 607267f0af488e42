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
from analysis._options import DEFAULT_WINDOW, add_options, add_table_options  # noqa: F401
from analysis._schema import AnalysisError

EXIT_BAD_INPUT = 2


def main(args: argparse.Namespace) -> int:
    """`args` has .path, .out and optionally .window, .last (None: the defaults),
    .run_col, .ignore and .figures (see `add_options`)."""
    window = getattr(args, "window", None)
    try:
        a = analyze(args.path, args.out, window=DEFAULT_WINDOW if window is None else window,
                    last=getattr(args, "last", None), run_col=getattr(args, "run_col", None),
                    ignore=getattr(args, "ignore", None) or (),
                    figures=getattr(args, "figures", True),
                    refine=getattr(args, "refine", None))  # a refined study's record
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


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The same arguments as `wdsweep analyze`, for `python -m analysis.cli`."""
    p = argparse.ArgumentParser(prog="wdsweep analyze")
    p.add_argument("path", type=Path)
    p.add_argument("--out", required=True, type=Path)
    add_options(p)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main(parse()))
