"""`wdsweep analyze`: the analysis (loaded lazily) on a study, a Tune experiment or a table.

A study is checked first (a damaged one stops with one line) and analyzed from a
consistent snapshot of its checked tables (a running one: its completed members,
saying how many are still pending); a published directory from its tables checked
against its manifest. The report is written into a private new directory and then
swapped into place, so no link planted in the old one is ever written through. Without
`--out` a study's report goes to STUDY/report (where `run` and `resume` write it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from sweep.plan.spec import SpecError

log = logging.getLogger(__name__)


def analyze(args: argparse.Namespace) -> int:
    from analysis import cli as analysis_cli  # lazy: matplotlib and pandas

    counts: dict[str, Any] = {}
    refine = None
    out = _out(Path(args.path), args.out)
    with tempfile.TemporaryDirectory(prefix="wdsweep-analyze-") as tmp:
        path = Path(args.path)
        if _is_study(path):  # only the checked tables: a consistent snapshot of them
            counts = _study_counts(path)
            refine = _refine_record(path)
            path = _snapshot(path, tmp)
        elif path.is_dir() and (path / "published.json").exists():
            path = _published(path, tmp)  # checked against its manifest, as import does
        staged = _staging(out)
        try:
            run = argparse.Namespace(**{**vars(args), "path": path, "out": staged,
                                        "refine": refine})
            with contextlib.redirect_stdout(io.StringIO()):  # its "wrote" names `staged`
                rc = analysis_cli.main(run)
            if rc == 0:
                _swap(staged, out)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    if rc == 0 and args.json:
        fit = json.loads((out / "fit.json").read_text())
        json.dump({"report": str(out / "report.html"), **counts, "fit": fit},
                  sys.stdout, indent=2)
        print()
    elif rc == 0:
        print(f"wrote {out / 'report.html'}")
    return rc


def _out(path: Path, out: Path | None) -> Path:
    """`--out`, or STUDY/report for a study (where `run` and `resume` write it)."""
    if out is not None:
        return Path(out)
    if _is_study(path):
        return path / "report"
    raise SpecError("--out", f"{path} is not a study directory, so the report needs a place; "
                    "allowed: --out DIR (optional only for a study)")


def _staging(out: Path) -> Path:
    """A new private directory beside `out` (0700, a random name): the report is written
    there, where nobody else can plant a link, and then swapped into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))


def _swap(staged: Path, out: Path) -> None:
    """`staged` becomes `out` (renames: an old report is moved aside, then removed;
    rmtree removes links, never what they point to)."""
    if out.exists() and not out.is_dir():
        raise SpecError("--out", f"{out} exists and is not a directory")
    old = None
    if out.exists() or out.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(old / out.name)
    staged.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _published(src: Path, tmp: str) -> Path:
    """A published directory's tables, each a regular file matching its manifest's
    sha256 (within import's size caps), copied out to be analyzed."""
    from sweep.store import publish as _publish  # lazy: each command imports only what it runs

    manifest = _publish._manifest(src)
    out = Path(tmp) / src.resolve().name
    out.mkdir()
    for name in _publish.TABLES:
        data = _publish._read(src, name, manifest, _publish.MAX_BYTES)
        if data is None and name in manifest.get("tables", {}):
            raise SpecError(name, f"{src} lacks the {name} its manifest records")
        if data is not None:
            (out / name).write_bytes(data)
    return out


def _is_study(path: Path) -> bool:
    """A study directory (also a damaged one: checked, never read around). A published
    directory (`wdsweep export`) is not one: the analysis checks its manifest."""
    if not path.is_dir() or (path / "published.json").exists():
        return False
    return any((path / n).exists() or (path / n).is_symlink()
               for n in ("study.json", "plans", ".lock"))


def _study_counts(study: Path) -> dict[str, Any]:
    from sweep.store.status import status  # checks the study: a damaged one stops here

    s = status(study)
    pending = s["total"] - s["completed"] - s["errored"]
    if pending:
        why = "its driver is running" if s["driver_alive"] else f"`wdsweep resume {study}`"
        log.info("%s: analyzing its %d completed members; %d pending (%s)", study,
                 s["completed"], pending, why)
    return {"completed_members": s["completed"], "pending_members": pending,
            "errored_members": s["errored"], "driver_running": s["driver_alive"]}


def _refine_record(study: Path) -> dict[str, Any] | None:
    """study.json's record of a refined study's rounds (checked with the study), for the
    report's "Refinement" section; None for a study that was not refined."""
    from sweep.store import study as st  # lazy: each command imports only what it runs

    rec = st.read_state(study).get("refine")
    return rec if isinstance(rec, dict) else None


def _snapshot(study: Path, tmp: str) -> Path:
    from sweep.store import study as st  # lazy: each command imports only what it runs

    out = Path(tmp) / study.name
    out.mkdir()
    for name, data in st.snapshot(study).items():
        (out / name).write_bytes(data)
    return out
