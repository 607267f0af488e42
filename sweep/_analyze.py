"""`wdsweep analyze`: the analysis (loaded lazily) on a study, a Tune experiment or a table.

A study is checked first (a damaged one stops with one line). A running study is
analyzed from a consistent snapshot of its tables: its completed members, saying
how many are still pending.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def analyze(args: argparse.Namespace) -> int:
    from analysis import cli as analysis_cli  # lazy: matplotlib and pandas

    counts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="wdsweep-analyze-") as tmp:
        if _is_study(args.path):
            counts = _study_counts(args.path)
            if counts["driver_running"]:
                args = argparse.Namespace(**{**vars(args), "path": _snapshot(args.path, tmp)})
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            rc = analysis_cli.main(args)
    if rc == 0 and args.json:
        fit = json.loads((Path(args.out) / "fit.json").read_text())
        json.dump({"report": str(Path(args.out) / "report.html"), **counts, "fit": fit},
                  sys.stdout, indent=2)
        print()
    return rc


def _is_study(path: Path) -> bool:
    """A study directory (also a damaged one: checked, never read around). A published
    directory (`wdsweep export`) is not one: the analysis checks its manifest."""
    if not path.is_dir() or (path / "published.json").exists():
        return False
    return any((path / n).exists() or (path / n).is_symlink()
               for n in ("study.json", "plans", ".lock"))


def _study_counts(study: Path) -> dict[str, Any]:
    from sweep._status import status  # checks the study: a damaged one stops here

    s = status(study)
    pending = s["total"] - s["completed"] - s["errored"]
    if pending:
        why = "its driver is running" if s["driver_alive"] else f"`wdsweep resume {study}`"
        log.info("%s: analyzing its %d completed members; %d pending (%s)", study,
                 s["completed"], pending, why)
    return {"completed_members": s["completed"], "pending_members": pending,
            "errored_members": s["errored"], "driver_running": s["driver_alive"]}


def _snapshot(study: Path, tmp: str) -> Path:
    from sweep import study as st

    out = Path(tmp) / study.name
    out.mkdir()
    for name, data in st.snapshot(study).items():
        (out / name).write_bytes(data)
    return out
