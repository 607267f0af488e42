"""CLI glue for run / resume / status / repair: argument objects in, exit codes out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sweep import spec as spec_mod
from sweep.cli import UsageError


def _report(study: Path) -> None:
    from analysis import cli as analysis_cli  # lazy: matplotlib

    out = study / "report"
    rc = analysis_cli.main(argparse.Namespace(path=study, out=out, window=None, last=None))
    if rc == 0:
        print(f"report: {out / 'report.html'}")


def run(args: argparse.Namespace) -> int:
    from sweep import _driver

    spec = spec_mod.load(args.spec)
    if args.study.exists() and not args.study.is_dir():
        raise UsageError(f"--study: {args.study} exists and is not a directory")
    out = _driver.run(spec, args.study, address=args.address, dry_run=args.dry_run,
                      yes=args.yes)
    return _after(args, out)


def _report_stale(study: Path) -> bool:
    """No report, or one older than the results (a kill during the report)."""
    html, res = study / "report" / "report.html", study / "results.csv"
    return res.exists() and (not html.exists() or html.stat().st_mtime < res.stat().st_mtime)


def _after(args: argparse.Namespace, out: dict) -> int:
    """Exit status: 130 when interrupted (resume later), 1 with errored members."""
    if out.get("unfinished_trials"):
        return 130
    trained = out.get("ran") or out.get("resumed")  # 0 for a dry run or nothing to do
    if not args.no_report and not getattr(args, "dry_run", False) and (
            (trained and (args.study / "results.csv").exists()) or _report_stale(args.study)):
        _report(args.study)
    return 1 if out.get("errored") else 0


def _need_study(study: Path) -> None:
    if not (study / "study.json").exists():
        raise UsageError(f"study: {study} is not a wdsweep study (no study.json)")


def resume(args: argparse.Namespace) -> int:
    from sweep import _driver

    _need_study(args.study)
    out = _driver.resume(args.study, retry_errored=args.retry_errored, address=args.address)
    return _after(args, out)


def repair(args: argparse.Namespace) -> int:
    from sweep._repair import repair as repair_study

    _need_study(args.study)
    out = repair_study(args.study)
    return 0 if not out["unrecoverable"] else 1


def export(args: argparse.Namespace) -> int:
    from sweep._publish import export as export_study

    _need_study(args.study)
    m = export_study(args.study, args.dest)
    rows = ", ".join(f"{k} {v['rows']} rows" for k, v in m["tables"].items())
    print(f"exported {args.study} to {args.dest}: {rows}")
    return 0


def import_(args: argparse.Namespace) -> int:
    from sweep._publish import import_ as import_study

    out = import_study(args.source, args.study)
    print(f"imported {out['members']} members ({out['completed']} completed) and "
          f"{out['history_rows']} history rows into {args.study}; `wdsweep run SPEC "
          f"--study {args.study}` runs only what they lack")
    return 0


def status(args: argparse.Namespace) -> int:
    from sweep import _reap
    from sweep._status import status as study_status
    from sweep.study import is_locked

    if not is_locked(args.study):
        _reap.reap(args.study)  # Ray processes a killed driver left behind
    s = study_status(args.study)
    if args.json:
        json.dump(s, sys.stdout, indent=2)
        print()
        return 0
    print(f"study {s['study']}: {s['completed']}/{s['total']} members completed, "
          f"{s['running']} running, {s['pending']} pending, {s['errored']} errored"
          f" (driver {'running' if s['driver_alive'] else 'not running'})")
    for e in s["experiments"]:
        print(f"  {e['name']}: {e['status']}")
    if s["trials"]:
        print(f"  {'trial':<14} {'status':<10} {'members':>7} {'step':>8} {'test_acc':>8} node")
        for t in s["trials"]:
            acc = "" if t["test_acc_mean"] is None else f"{t['test_acc_mean']:.3f}"
            print(f"  {t['key']:<14} {t['status']:<10} {t['members']:>7} {t['step']:>8} "
                  f"{acc:>8} {(t['node'] or '')[:12]}")
    return 0
