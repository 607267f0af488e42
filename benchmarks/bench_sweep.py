"""Scheduling overhead of a sweep: wall time over ideal time.

A dozen ~20-second trials (the seed model, one member each, one CPU each) run
through `wdsweep run` on a local Ray. Ideal time = the sum of the trials' own
training time (measured inside each trial, data set-up included) divided by the
CPU slots. Reported: the whole command's wall time (Ray start-up, planning,
result collection included) and Tuner.fit's share of it, each over ideal.

    python benchmarks/bench_sweep.py [--trials 12] [--steps 4500] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SPEC = """
name = "bench"
preset = "seed"
[fixed]
steps = {steps}
eval_every = 500
[grid]
weight_decay = {wds}
[resources]
cpus_per_trial = 1
[run]
pack = 1
checkpoint_every = 1500
max_failures = 0
"""


def once(trials: int, steps: int, slots: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        spec, study = Path(d) / "bench.toml", Path(d) / "study"
        wds = [round(0.01 * (i + 1), 4) for i in range(trials)]
        spec.write_text(SPEC.format(steps=steps, wds=wds))
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "sweep.cli", "run", str(spec), "--study",
                            str(study), "--no-report"], capture_output=True, text=True)
        wall = time.perf_counter() - t
        if r.returncode != 0:
            sys.exit(r.stdout + r.stderr)
        res = pd.read_csv(study / "results.csv")
        ideal = res.train_seconds.sum() / slots
        fit = float(next(ln for ln in r.stdout.splitlines() if "Tune ran" in ln)
                    .split(" in ")[1].split()[0])
        return {"wall": wall, "fit": fit, "ideal": ideal, "ratio": wall / ideal,
                "fit_ratio": fit / ideal, "trial_mean_s": res.train_seconds.mean()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--steps", type=int, default=4500)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    slots = len(os.sched_getaffinity(0))
    runs = [once(args.trials, args.steps, slots) for _ in range(args.repeats)]
    for i, r in enumerate(runs):
        print(f"run {i}: command wall {r['wall']:.1f} s, Tuner.fit {r['fit']:.1f} s, ideal "
              f"{r['ideal']:.1f} s (mean trial {r['trial_mean_s']:.1f} s); ratio: command "
              f"{r['ratio']:.3f}, Tuner.fit {r['fit_ratio']:.3f}")
    med = {k: statistics.median(r[k] for r in runs) for k in ("ratio", "fit_ratio")}
    print(f"median over {len(runs)} runs ({args.trials} trials, {slots} CPU slots): command "
          f"{med['ratio']:.3f}, Tuner.fit {med['fit_ratio']:.3f}")


if __name__ == "__main__":
    main()
