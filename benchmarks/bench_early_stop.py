"""Early stopping inside a pack: member-steps saved, and how far any estimate moves.

Two comparisons, each with and without the stop rule, side by side in one run:

* ``--replay DIR`` (default docs/data/seed_lambda, the seed task's λ sweep: 14 λ × 3
  seeds, 30,000 steps): the trainer's rule (trainer.early_stop.stop_reason) applied to
  each member's recorded evaluations, exactly as the trainer applies it after each
  evaluation, and the history cut at the stop. Exact for what a real run would record:
  a stopped member's rows are a prefix of its full run and the survivors' numbers do
  not depend on the pack (tests/trainer/test_early_stop.py, bit for bit).
* ``--real``: the demo preset's λ sweep trained twice on this machine through the
  sweep (embedded local Ray), once with ``stop_train_acc`` set.

For each: member-steps with and without, the estimates (λ*, onset, collapse and
their intervals) of both analyses, and the largest change of any estimate in ln λ and
as a fraction of the full-run interval's half-width.

    python benchmarks/bench_early_stop.py                 # replay the seed sweep
    RAY_ADDRESS=local python benchmarks/bench_early_stop.py --real
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import analysis  # noqa: E402
from sweep.store.rows import member_steps  # noqa: E402
from trainer.early_stop import stop_reason  # noqa: E402

ESTIMATES = ("lambda_star", "lambda_onset", "lambda_collapse")
RULE = dict(acc=0.02, evals=5, tol=0.01)  # stop_train_acc, stop_evals, stop_tol


def _table(d: Path, name: str) -> pd.DataFrame:
    for f in (d / f"{name}.csv", d / f"{name}.csv.gz"):
        if f.exists():
            return pd.read_csv(f, dtype={"config_hash": str})
    raise FileNotFoundError(d / f"{name}.csv")


def replay(res: pd.DataFrame, hist: pd.DataFrame, acc: float, evals: int, tol: float
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results, history) as a run with the stop rule would have recorded them."""
    keep, res = [], res.copy()
    res["stopped_step"] = np.nan
    res["stop_reason"] = None
    for h, g in hist.sort_values("step").groupby("config_hash", sort=False):
        rows = g.to_dict("records")
        end = int(g.step.max())
        cut = len(rows)
        for i in range(len(rows)):
            if rows[i]["step"] < end and (why := stop_reason(rows[: i + 1], acc, evals, tol)):
                cut = i + 1
                at = res.config_hash == h
                res.loc[at, "stopped_step"] = rows[i]["step"]
                res.loc[at, "stop_reason"] = why
                for c in [c for c in res.columns if c.startswith("last_")]:
                    res.loc[at, c] = rows[i][c.removeprefix("last_")]
                break
        keep.append(g.iloc[:cut])
    return res, pd.concat(keep, ignore_index=True)


def compare(full: Path, early: Path) -> dict:
    a, b = (analysis.analyze(d, figures=False) for d in (full, early))
    out: dict = {"cells": len(a.cells), "stopped": int(b.runs.stopped_step.notna().sum())}
    worst_ln = worst_rel = 0.0
    for e in ESTIMATES:
        for (_, x), (_, y) in zip(a.cells.iterrows(), b.cells.iterrows()):
            if not (np.isfinite(x[e]) and np.isfinite(y[e])):
                if np.isfinite(x[e]) != np.isfinite(y[e]):
                    worst_ln = math.inf
                continue
            d = abs(math.log(y[e] / x[e]))
            half = 0.5 * math.log(x[f"{e}_ci_high"] / x[f"{e}_ci_low"])
            worst_ln, worst_rel = max(worst_ln, d), max(worst_rel, d / half if half else 0)
            out[e] = (f"{x[e]:.4g} [{x[e + '_ci_low']:.4g}, {x[e + '_ci_high']:.4g}] -> "
                      f"{y[e]:.4g} [{y[e + '_ci_low']:.4g}, {y[e + '_ci_high']:.4g}]")
    out.update(max_change_ln=worst_ln, max_change_of_half_width=worst_rel,
               verdict=(a.fit.get("verdict", {}).get("preferred"),
                        b.fit.get("verdict", {}).get("preferred")))
    return out


def _write(d: Path, res: pd.DataFrame, hist: pd.DataFrame) -> Path:
    d.mkdir(parents=True)
    res.to_csv(d / "results.csv", index=False)
    hist.to_csv(d / "history.csv", index=False)
    return d


def run_replay(src: Path) -> None:
    res, hist = _table(src, "results"), _table(src, "history")
    er, eh = replay(res, hist, **RULE)
    with tempfile.TemporaryDirectory() as t:
        c = compare(_write(Path(t) / "full", res, hist), _write(Path(t) / "early", er, eh))
    full, early = member_steps(res), member_steps(er)
    print(f"replay of {src} ({len(res)} members), rule {RULE}:")
    print(f"  member-steps {full:,.0f} -> {early:,.0f} ({early / full:.3f} of the full runs; "
          f"{c['stopped']} members stopped)")
    for k, v in c.items():
        print(f"  {k}: {v}")


def run_real(epochs: int, workdir: Path | None) -> None:
    import sweep
    from sweep.plan.spec import parse

    text = f"""
name = "es-bench"
preset = "demo"
[fixed]
epochs = {epochs}
eval_every = 31
{{stop}}
[grid]
weight_decay = [0.0, 0.01, 0.03, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0]
seed = [0, 1, 2]
[run]
pack = 7
checkpoint_every = 100000
"""
    rule = (f"stop_train_acc = {RULE['acc']}\nstop_evals = {RULE['evals']}\n"
            f"stop_tol = {RULE['tol']}")
    with tempfile.TemporaryDirectory() as tmp:
        t = workdir or Path(tmp)
        dirs = {}
        for arm, stop in (("full", ""), ("early", rule)):
            dirs[arm] = Path(t) / arm
            if not (dirs[arm] / "results.csv").exists():  # a kept workdir: analyze again
                sweep.run(parse(text.replace("{stop}", stop)), dirs[arm])
        res = {k: pd.read_csv(d / "results.csv") for k, d in dirs.items()}
        c = compare(dirs["full"], dirs["early"])
    full, early = member_steps(res["full"]), member_steps(res["early"])
    print(f"real: demo preset, 14 λ × 3 seeds, {epochs} epochs, rule {RULE}:")
    print(f"  member-steps {full:,.0f} -> {early:,.0f} ({early / full:.3f}; "
          f"{c['stopped']} members stopped)")
    for k, v in c.items():
        print(f"  {k}: {v}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replay", type=Path, default=ROOT / "docs/data/seed_lambda")
    p.add_argument("--real", action="store_true", help="train the demo sweep twice as well")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--workdir", type=Path, default=None, help="keep the --real studies here")
    a = p.parse_args()
    run_replay(a.replay)
    if a.real:
        run_real(a.epochs, a.workdir)


if __name__ == "__main__":
    main()
