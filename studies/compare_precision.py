"""bf16 vs fp32 on the seed curve, paired by (λ, seed), against fp32's own yardstick.

The same member (config, seed, data) trained three ways: fp32 on the GPU
(docs/data/seed_lambda, the same config hashes), fp32 on this CPU and bf16 on this CPU
(studies/precision). Two fp32 runs on different hardware differ only by rounding,
amplified by training; that difference is the floor below which a bf16 effect cannot
be told from noise. Prints, per λ, the seed-mean final accuracies and the paired
differences, then the mean absolute paired difference of each comparison with a
bootstrap 95% interval over the (λ, seed) pairs, and λ* per precision.

    python studies/compare_precision.py [studies/precision] [docs/data/seed_lambda]
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

import analysis

METRIC = "final_test_acc"


def finals(path: str) -> pd.DataFrame:
    f = analysis.load(path)
    runs, _ = analysis.summarize(f.hist, f.keys, f.curves)
    if "precision" not in runs:
        runs["precision"] = "fp32"
    return runs[["weight_decay", "seed", "precision", METRIC, "final_train_acc"]]


def boot_mean_abs(d: np.ndarray, n: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    a = np.abs(d)
    means = a[rng.integers(0, len(a), (n, len(a)))].mean(1)
    return a.mean(), *np.percentile(means, [2.5, 97.5])


def main(argv: list[str]) -> None:
    study, gpu = (argv + ["studies/precision", "docs/data/seed_lambda"][len(argv):])[:2]
    cpu = finals(study)
    ref = finals(gpu).assign(precision="fp32-gpu")
    ref = ref[ref.weight_decay.isin(cpu.weight_decay.unique())]
    wide = (pd.concat([cpu, ref]).pivot_table(index=["weight_decay", "seed"],
                                              columns="precision", values=METRIC)
            .dropna())
    wide["bf16-fp32"] = wide["bf16"] - wide["fp32"]
    wide["fp32-fp32gpu"] = wide["fp32"] - wide["fp32-gpu"]
    per = wide.groupby("weight_decay").agg(["mean", "min", "max"])
    cols = [(c, "mean") for c in ("fp32-gpu", "fp32", "bf16")]
    cols += [(c, s) for c in ("fp32-fp32gpu", "bf16-fp32") for s in ("min", "max")]
    print(f"{METRIC}, mean over seeds (paired differences: min..max over seeds)")
    print(per[cols].round(3).to_string())
    print(f"\n{len(wide)} (λ, seed) pairs; mean |paired difference| [bootstrap 95%]:")
    for c in ("fp32-fp32gpu", "bf16-fp32"):
        m, lo, hi = boot_mean_abs(wide[c].to_numpy())
        print(f"  {c:>13}: {m:.3f} [{lo:.3f}, {hi:.3f}]")
    res = analysis.analyze(study)
    print("\nλ* per cell (analysis.analyze):")
    keep = [c for c in ("cell", "best_acc", "wd_star", "wd_star_ci_low", "wd_star_ci_high",
                        "lambda_onset", "lambda_collapse") if c in res.cells]
    print(res.cells[keep].to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1:])
