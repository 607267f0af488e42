"""CLI glue for run / resume / status / repair: argument objects in, exit codes out.
Data goes to stdout (print); messages are logging records (stderr)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from sweep.cli.analyze import analyze
from sweep.plan import spec as spec_mod
from sweep.plan.spec import SpecError

log = logging.getLogger(__name__)

def _report(study: Path) -> None:
    out = study / "report"
    with contextlib.redirect_stdout(sys.stderr):  # its "wrote ..." is a message here
        rc = analyze(argparse.Namespace(path=study, out=out, window=None, last=None,
                                        json=False))
    if rc == 0:
        log.info("report: %s", out / "report.html")


def spec_path(path: Path) -> Path:
    """`examples/NAME.toml` that is not here: the copy installed with the package."""
    if path.exists() or path.parent.name != "examples":
        return path

    packaged = Path(str(files("sweep") / "examples" / path.name))
    if packaged.is_file():
        log.info("using the packaged example %s", packaged)
        return packaged
    return path


def run(args: argparse.Namespace) -> int:
    from sweep.runner import driver as _driver  # lazy: each command imports only what it runs

    spec = _load(spec_path(args.spec), getattr(args, "sets", []))
    if args.study.exists() and not args.study.is_dir():
        raise SpecError("--study", f"{args.study} exists and is not a directory")
    out = _driver.run(spec, args.study, address=args.address, dry_run=args.dry_run,
                      yes=args.yes, trust_code=args.trust_code)
    if args.dry_run:
        _print_plan(out["plan"], args.json)
    elif args.json:
        _json(out)
    return _after(args, out)


def _load(path: Path, sets: list[str]) -> spec_mod.Spec:
    """The spec file, with `--set KEY=VALUE` overrides applied to its TOML before it is
    checked (sweep.cli.overrides): a bad value is refused naming its spec field."""
    if not sets:
        return spec_mod.load(path)
    from sweep.cli.overrides import apply  # lazy: each command imports only what it runs

    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        spec_mod.load(path)  # its one line: cannot read it, or not UTF-8
        raise
    return spec_mod.parse(apply(text, sets), path.parent)


def _json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    print()


def _print_plan(plan: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _json(plan)
        return
    print(plan["summary"])
    # T is epochs, as in the rule λ_norm·sqrt(b/(B·T)) and the report; steps are steps.
    axes = sorted({k for t in plan["trials"] for m in t["members"] for k in m
                   if k.startswith(("task_args.", "model_args."))})  # your code's axes
    print(f"{'trial':<13} {'weight_decay':>12} {'seed':>5} {'b':>5} {'B':>7} {'T':>7} "
          f"{'steps':>8}  config_hash" + "".join(f"  {a}" for a in axes))
    for t in plan["trials"]:
        for m in t["members"]:
            print(f"{t['key']:<13} {m['weight_decay']:>12.4g} {m['seed']:>5} "
                  f"{m['batch_size']:>5} {m['train_size']:>7} {m['epochs']:>7.4g} "
                  f"{m['total_steps']:>8}  {m['config_hash']}"
                  + "".join(f"  {str(m.get(a, '')):<{len(a)}}" for a in axes))
    print("T: epochs of the training set; steps: T x floor(B / b), the member's steps")


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


def _need_study(study: Path, plans_will_do: bool = False) -> None:
    """A study directory; for `repair`, plans/ alone will do (it rebuilds study.json)."""
    if not study.is_dir():
        raise SpecError("study", f"{study} is not a directory")
    if (study / "study.json").exists() or (study / "study.json").is_symlink():
        return
    if plans_will_do and (study / "plans").is_dir():
        return
    from sweep.store.study import read_state  # lazy: each command imports only what it runs

    read_state(study)  # tables or plans without study.json: damaged, says how to repair
    raise SpecError("study", f"{study} is not a wdsweep study (no study.json)")


def resume(args: argparse.Namespace) -> int:
    from sweep.runner import driver as _driver  # lazy: each command imports only what it runs

    _need_study(args.study)
    out = _driver.resume(args.study, retry_errored=args.retry_errored, address=args.address,
                         trust_code=args.trust_code, yes=args.yes)
    if args.json:
        _json(out)
    return _after(args, out)


def refine(args: argparse.Namespace) -> int:
    from sweep.runner import driver as _driver  # lazy: each command imports only what it runs

    _need_study(args.study)
    if args.rounds is not None and args.rounds < 1:
        raise SpecError("--rounds", f"got {args.rounds}; allowed: an integer >= 1")
    if args.budget is not None and not args.budget > 0:
        raise SpecError("--budget", f"got {args.budget:g}; allowed: member-steps > 0")
    out = _driver.refine(args.study, rounds=args.rounds, budget=args.budget,
                         address=args.address, trust_code=args.trust_code, yes=args.yes)
    if args.json:
        _json(out)
    return _after(args, out)


def repair(args: argparse.Namespace) -> int:
    # lazy: each command imports only what it runs
    from sweep.store.repair import repair as repair_study

    _need_study(args.study, plans_will_do=True)
    out = repair_study(args.study, migrate=args.migrate, trust_code=args.trust_code)
    return 0 if not out["unrecoverable"] else 1


def export(args: argparse.Namespace) -> int:
    # lazy: each command imports only what it runs
    from sweep.store.publish import export as export_study

    _need_study(args.study)
    m = export_study(args.study, args.dest)
    rows = ", ".join(f"{k} {v['rows']} rows" for k, v in m["tables"].items())
    print(f"exported {args.study} to {args.dest}: {rows}")
    return 0


def import_(args: argparse.Namespace) -> int:
    # lazy: each command imports only what it runs
    from sweep.store.publish import import_ as import_study

    out = import_study(args.source, args.study)
    print(f"imported {out['members']} members ({out['completed']} completed) and "
          f"{out['history_rows']} history rows into {args.study}; `wdsweep run SPEC "
          f"--study {args.study}` runs only what they lack")
    return 0


def status(args: argparse.Namespace) -> int:
    from sweep.runner import reap as _reap  # lazy: each command imports only what it runs

    # lazy: each command imports only what it runs
    from sweep.store.status import status as study_status

    # lazy: each command imports only what it runs
    from sweep.store.study import check_links, try_locked

    _need_study(args.study)
    check_links(args.study)  # before the lock file is opened
    with try_locked(args.study) as free:
        if free:
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
    if s["members"]:  # T in epochs (as in the report); steps done / the member's steps
        print(f"  {'trial':<13} {'weight_decay':>12} {'seed':>4} {'b':>4} {'B':>6} {'T':>6} "
              f"{'status':<10} {'steps':>13} {'test_acc':>8} {'ETA':>8}")
    for m in s["members"]:
        acc = "" if m["test_acc"] is None else f"{m['test_acc']:.3f}"
        steps = f"{_or_dash(m['step'])}/{_or_dash(m['total_steps'])}"
        eta = "" if m["eta_s"] is None else _fmt_s(m["eta_s"])
        epochs = "-" if m.get("epochs") is None else f"{m['epochs']:.4g}"
        print(f"  {m['trial'] or '':<13} {m['weight_decay']:>12.4g} {m['seed']:>4} "
              f"{m['batch_size']:>4} {m['train_size']:>6} {epochs:>6} "
              f"{m['status']:<10} {steps:>13} {acc:>8} {eta:>8}")
    return 0


def _or_dash(v: Any) -> str:
    return "-" if v is None else str(v)


def _fmt_s(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60}:{s % 60:02d}"
