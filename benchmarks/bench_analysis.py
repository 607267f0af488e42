"""`wdsweep analyze` at scale, on wdsweep studies and on foreign tables.

Synthetic runs shaped like the seed task's (two-edge accuracy curves over ln λ, batch-norm
collapses in a fifth of the runs): 16 cells (b × B × T), 20 λ, as many seeds as the run
count needs, E evaluations each. Each input kind is written to a temporary directory:

* ``csv``: one flat per-evaluation CSV as a tracker exports it, runs named in ``run_id``;
* ``parquet``: the same table as Parquet;
* ``tune``: a plain Ray Tune experiment (``<trial>/params.json`` + ``progress.csv``);
* ``study``: a wdsweep study (``results.csv`` + ``history.csv``).

Each is then analyzed by ``python -m sweep.cli analyze`` in a fresh process (figures and
report included; peak RSS is that process's own, from getrusage), and, for the table
kinds, ``pandas.read_csv`` / ``read_parquet`` of the same file is timed in another fresh
process, so the ratio analyze / read is side by side in one run::

    python benchmarks/bench_analysis.py --runs 1920 --evals 200 --kinds csv parquet \\
        --repeats 3
    python benchmarks/bench_analysis.py --runs 10000 --evals 200 --kinds csv

Prints a markdown table: kind, runs, rows, analyze seconds (median), read seconds
(median), their ratio, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CELLS = [(b, B, T) for b in (32, 64, 128, 256) for B in (2500, 5000) for T in (100, 200)]
LAMS = 0.01 * np.sqrt(2) ** np.arange(20)


def runs_table(n_runs: int, seed: int = 0) -> pd.DataFrame:
    """One row per run: its config (16 cells, 20 λ, seeds to fill n_runs)."""
    per_cell = n_runs // len(CELLS)
    i = np.arange(per_cell)
    rows = [pd.DataFrame(dict(batch_size=b, train_size=B, epochs=T, lr=1e-3,
                              weight_decay=LAMS[i % len(LAMS)], seed=i // len(LAMS)))
            for b, B, T in CELLS]
    res = pd.concat(rows, ignore_index=True)
    rng = np.random.default_rng(seed)
    res.insert(0, "run_id", [f"{rng.integers(1 << 40):010x}-{k}" for k in range(len(res))])
    return res


def history(res: pd.DataFrame, n_evals: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-evaluation metrics, run-major (n_runs × n_evals, flattened)."""
    rng = np.random.default_rng(seed)
    n = len(res)
    frac = np.arange(1, n_evals + 1) / n_evals
    total = (res["epochs"] * np.floor(res["train_size"] / res["batch_size"])).to_numpy()
    x = (np.log(res["weight_decay"].to_numpy()) - np.log(res["batch_size"] / 64).to_numpy() / 2
         + np.log(res["epochs"] / 100).to_numpy() / 2)[:, None]
    grok = 1 / (1 + np.exp(-(x + 2.5) / 0.2)) / (1 + np.exp((x + 0.5) / 0.3))
    rise = 1 / (1 + np.exp(-(frac[None, :] - 1 / 3) / 0.05))
    test = np.clip(0.02 + 0.95 * grok * rise + 0.02 * rng.standard_normal((n, n_evals)), 0, 1)
    hit = (rng.random(n) < 0.2)[:, None] & ((np.arange(n_evals) % 30) == 29)[None, :]
    test = np.where(hit, test / 3, test)
    loss = np.where(hit, 0.2, 0.01) * (1 + 0.1 * rng.random((n, n_evals)))
    return {"step": np.round(total[:, None] * frac[None, :]).ravel(), "test_acc": test.ravel(),
            "train_acc": np.clip(1 - loss, 0, 1).ravel(), "test_loss": (1 - test).ravel() / 5,
            "train_loss": loss.ravel(),
            "weight_norm": np.tile(50 + 10 * np.exp(-frac * 3), n)}


def flat(res: pd.DataFrame, n_evals: int) -> pd.DataFrame:
    """The tracker export: config repeated on every evaluation row."""
    cfg = {c: np.repeat(res[c].to_numpy(), n_evals) for c in res.columns}
    return pd.DataFrame({**cfg, **history(res, n_evals)})


def make(kind: str, path: Path, n_runs: int, n_evals: int) -> Path:
    res = runs_table(n_runs)
    path.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        flat(res, n_evals).to_csv(path / "runs.csv", index=False)
        return path / "runs.csv"
    if kind == "parquet":
        flat(res, n_evals).to_parquet(path / "runs.parquet", index=False)
        return path / "runs.parquet"
    if kind == "tune":
        h = pd.DataFrame(history(res, n_evals))
        h["training_iteration"] = np.tile(np.arange(1, n_evals + 1), len(res))
        for k, r in enumerate(res.drop(columns="run_id").to_dict("records")):
            t = path / f"train_fn_{k:05d}"
            t.mkdir()
            (t / "params.json").write_text(json.dumps(r))
            h.iloc[k * n_evals:(k + 1) * n_evals].to_csv(t / "progress.csv", index=False)
        return path
    if kind == "study":
        study = res.rename(columns={"run_id": "config_hash"}).assign(status="completed",
                                                                     batch_norm=True)
        h = pd.DataFrame({"config_hash": np.repeat(study["config_hash"].to_numpy(), n_evals),
                          **history(res, n_evals)})
        study.to_csv(path / "results.csv", index=False)
        h.to_csv(path / "history.csv", index=False)
        (path / "spec.toml").write_text("# synthetic\n")
        return path
    raise ValueError(f"unknown kind {kind!r}")


_ANALYZE = """
import json, resource, sys, time
t0 = time.perf_counter()
from sweep.cli.main import main
rc = main(["analyze", sys.argv[1], "--out", sys.argv[2]])
t = time.perf_counter() - t0
print(json.dumps({"rc": rc, "seconds": t,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
_READ = """
import json, sys, time
import pandas as pd
t0 = time.perf_counter()
df = (pd.read_parquet if sys.argv[1].endswith(".parquet") else pd.read_csv)(sys.argv[1])
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": len(df)}))
"""


def child(code: str, *args: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                       text=True, check=True, env=env)
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(kind: str, src: Path, tmp: Path, repeats: int) -> dict[str, float]:
    """Median analyze and read seconds, interleaved (analyze, read, analyze, ...) so load
    on a shared machine hits both alike; peak RSS the largest of the analyze runs."""
    an, rd = [], []
    for i in range(repeats):
        r = child(_ANALYZE, str(src), str(tmp / f"out-{kind}-{i}"))
        if r["rc"] != 0:
            raise SystemExit(f"wdsweep analyze {src} exited {r['rc']}")
        an.append(r)
        if src.is_file():
            rd.append(child(_READ, str(src))["seconds"])
    out = {"analyze": statistics.median(r["seconds"] for r in an),
           "peak_mib": max(r["peak_mib"] for r in an)}
    if rd:
        out["read"] = statistics.median(rd)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, nargs="+", default=[1920])
    p.add_argument("--evals", type=int, default=200)
    p.add_argument("--kinds", nargs="+", default=["csv", "parquet", "tune", "study"],
                   choices=["csv", "parquet", "tune", "study"])
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args()
    print("| input | runs | rows | analyze s (median) | read s (median) | ratio | "
          "peak RSS MiB |\n|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for n in a.runs:
            for kind in a.kinds:
                t = time.perf_counter()
                src = make(kind, tmp / f"{kind}{n}", n, a.evals)
                gen = time.perf_counter() - t
                m = measure(kind, src, tmp, a.repeats)
                read = f"{m['read']:.2f}" if "read" in m else "–"
                ratio = f"{m['analyze'] / m['read']:.0f}×" if "read" in m else "–"
                print(f"| {kind} | {n:,} | {n * a.evals:,} | {m['analyze']:.1f} | {read} | "
                      f"{ratio} | {m['peak_mib']:,.0f} |  (generated in {gen:.0f} s)",
                      flush=True)


if __name__ == "__main__":
    main()
