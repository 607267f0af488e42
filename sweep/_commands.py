"""CLI glue for run / resume / status: argument objects in, exit codes out."""

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
    rc = analysis_cli.main(argparse.Namespace(path=study, out=out, last=None))
    if rc == 0:
        print(f"report: {out / 'report.html'}")


def run(args: argparse.Namespace) -> int:
    from sweep import _driver

    spec = spec_mod.load(args.spec)
    if args.study.exists() and not args.study.is_dir():
        raise UsageError(f"--study: {args.study} exists and is not a directory")
    out = _driver.run(spec, args.study, address=args.address, dry_run=args.dry_run)
    return _after(args, out)


def _after(args: argparse.Namespace, out: dict) -> int:
    """Exit status: 130 when interrupted (resume later), 1 with errored members."""
    if out.get("unfinished_trials"):
        return 130
    trained = out.get("ran") or out.get("resumed")  # 0 for a dry run or nothing to do
    if trained and not args.no_report and (args.study / "results.csv").exists():
        _report(args.study)
    return 1 if out.get("errored") else 0


def resume(args: argparse.Namespace) -> int:
    from sweep import _driver

    if not (args.study / "study.json").exists():
        raise UsageError(f"study: {args.study} is not a wdsweep study (no study.json)")
    out = _driver.resume(args.study, retry_errored=args.retry_errored, address=args.address)
    return _after(args, out)


def status(args: argparse.Namespace) -> int:
    from sweep._status import status as study_status

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
