"""`wdsweep analyze` at scale: wall time and peak memory against the number of runs.

A synthetic study shaped like the seed task's (two-edge accuracy curves, batch-norm
collapses in some runs) with N runs x E evaluations is written to a temporary study
directory, then analyzed in a fresh process per size (so peak RSS is that size's own):

    python benchmarks/bench_analysis.py --runs 1000 3000 10000 --evals 200 [--repeats 1]

Prints a markdown table: runs, rows, seconds (median), peak RSS, and the share of the
time in each stage (load, summarize, fit, figures, report).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def make(path: Path, n_runs: int, n_evals: int, seed: int = 0) -> None:
    """results.csv + history.csv of n_runs runs: 16 cells (b x B x T), seeds and λ."""
    rng = np.random.default_rng(seed)
    cells = [(b, B, T) for b in (32, 64, 128, 256) for B in (2500, 5000) for T in (100, 200)]
    lams = 0.01 * np.sqrt(2) ** np.arange(18)
    per_cell = n_runs // len(cells)
    rows = []
    for c, (b, B, T) in enumerate(cells):
        for i in range(per_cell):
            lam, s = lams[i % len(lams)], i // len(lams)
            rows.append(dict(config_hash=f"{c:02d}{i:06d}", status="completed", seed=s,
                             lr=1e-3, weight_decay=lam, batch_size=b, train_size=B, epochs=T,
                             batch_norm=True))
    res = pd.DataFrame(rows)
    n = len(res)
    steps = np.arange(1, n_evals + 1) * 100
    x = np.log(res["weight_decay"].to_numpy())[:, None] - np.log(res["batch_size"] / 64
                                                                    ).to_numpy()[:, None] / 2
    grok = 1 / (1 + np.exp(-(x + 2.5) / 0.2)) / (1 + np.exp((x + 0.5) / 0.3))
    rise = 1 / (1 + np.exp(-(steps[None, :] - steps[-1] / 3) / (steps[-1] / 20)))
    test = np.clip(0.02 + 0.95 * grok * rise + 0.02 * rng.standard_normal((n, n_evals)), 0, 1)
    hit = (rng.random(n) < 0.2)[:, None] & (steps[None, :] % 3000 < 100)
    test = np.where(hit, test / 3, test)
    loss = np.where(hit, 0.2, 0.01) * (1 + 0.1 * rng.random((n, n_evals)))
    hist = pd.DataFrame({
        "config_hash": np.repeat(res["config_hash"].to_numpy(), n_evals),
        "step": np.tile(steps, n), "test_acc": test.ravel(),
        "train_acc": np.clip(1 - loss, 0, 1).ravel(), "train_loss": loss.ravel(),
        "weight_norm": (50 + 10 * np.exp(-steps / 1e4))[None, :].repeat(n, 0).ravel()})
    path.mkdir(parents=True, exist_ok=True)
    res.to_csv(path / "results.csv", index=False)
    hist.to_csv(path / "history.csv", index=False)


_CHILD = """
import json, resource, sys, time
t = {}
t0 = time.perf_counter()
from analysis import _best, _decide, _load, _normalize, _summary
from analysis._analysis import analyze
a = analyze(sys.argv[1], sys.argv[2])
t['total'] = time.perf_counter() - t0
t['peak_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(t))
"""


def run_one(study: Path, out: Path) -> dict[str, float]:
    r = subprocess.run([sys.executable, "-c", _CHILD, str(study), str(out)], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, nargs="+", default=[1000, 3000, 10000])
    p.add_argument("--evals", type=int, default=200)
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    print("| runs | rows | seconds (median) | peak RSS (MiB) |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.runs:
            study = Path(tmp) / f"s{n}"
            t = time.perf_counter()
            make(study, n, a.evals)
            gen = time.perf_counter() - t
            res = [run_one(study, Path(tmp) / f"out{n}-{i}") for i in range(a.repeats)]
            sec = statistics.median(r["total"] for r in res)
            mib = max(r["peak_mib"] for r in res)
            print(f"| {n:,} | {n * a.evals:,} | {sec:.1f} | {mib:,.0f} |  (generated in "
                  f"{gen:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
