"""`wdsweep analyze`'s options, one definition for `wdsweep` and `python -m analysis.cli`
(argparse only: the wdsweep CLI builds its parser without loading pandas)."""

from __future__ import annotations

import argparse

DEFAULT_WINDOW = 0.1  # final fraction of each run's steps averaged for its final metrics


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
