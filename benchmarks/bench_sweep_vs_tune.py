"""The seed's lambda sweep, side by side: a plain Ray Tune script vs `wdsweep run`.

12 weight decays x 2 seeds x 3,000 steps of the seed model (72,000 member-steps),
on this machine, in one run: benchmarks/plain_tune.py (one trial per config,
DataLoader with shuffle, torch.optim.AdamW, default threads) and `wdsweep run` of
the same grid, interleaved (plain, wdsweep, plain, ...) so that other load on the
machine hits both alike; plus the fp32 matrix-product rate measured before and
after. Reported per run: the command's wall time and Tune's fit time; the ratio
plain / wdsweep of each pair, and medians. Each --variant is one wdsweep layout:

  p12x1    2 trials of 12 members, 1 CPU (thread) each    [the default]
  p24x2    1 trial of 24 members, 2 threads
  p6x1     4 trials of 6 members, 1 CPU each
  p12x1-e500  as p12x1, evaluating every 500 steps instead of every epoch (78)
  p12x1-c3000 as p12x1, checkpointing only at the end instead of every 2,000 steps
  p12x1-bf16  as p12x1 with precision = "bf16" (autocast matmuls; not the same numbers)

    python benchmarks/bench_sweep_vs_tune.py [--repeats 3] [--variant p12x1 ...]
        [--out sweep.json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_trainer import matmul_flops_per_step, peak_gflops  # noqa: E402
from plain_tune import WEIGHT_DECAYS  # noqa: E402

VARIANTS = {  # name: (pack, cpus_per_trial, extra [fixed] lines, checkpoint_every)
    "p12x1": (12, 1, "", 2000),
    "p24x2": (24, 2, "", 2000),
    "p6x1": (6, 1, "", 2000),
    "p12x1-e500": (12, 1, "eval_every = 500\n", 2000),
    "p12x1-c3000": (12, 1, "", 3000),
    "p12x1-bf16": (12, 1, 'precision = "bf16"\n', 2000),
}
SPEC = """name = "bench-vs-tune"
preset = "seed"
[fixed]
steps = {steps}
{extra}[grid]
weight_decay = {wds}
seed = [0, 1]
[resources]
cpus_per_trial = {cpus}
[run]
pack = {pack}
checkpoint_every = {ckpt}
max_failures = 0
"""


def _run(cmd: list[str], pattern: str) -> tuple[float, float]:
    """(command wall, the fit seconds parsed from the line holding `pattern`)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    line = next(ln for ln in (r.stdout + r.stderr).splitlines() if pattern in ln)
    print("   ", line.strip(), flush=True)
    return wall, float(line.split(" in " if " in " in line else "fit ")[-1].split()[0])


def plain(steps: int, d: Path) -> tuple[float, float]:
    return _run([sys.executable, "benchmarks/plain_tune.py", "--steps", str(steps),
                 "--storage", str(d / "plain")], "Tuner.fit")


def wdsweep(steps: int, variant: str, d: Path) -> tuple[float, float]:
    pack, cpus, extra, ckpt = VARIANTS[variant]
    spec = d / f"{variant}.toml"
    spec.write_text(SPEC.format(steps=steps, extra=extra, wds=WEIGHT_DECAYS, cpus=cpus,
                                pack=pack, ckpt=min(ckpt, steps)))
    return _run([sys.executable, "-m", "sweep.cli", "run", str(spec), "--study",
                 str(d / f"study-{variant}"), "--no-report", "--yes"], "Tune ran")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variant", action="append", choices=sorted(VARIANTS))
    ap.add_argument("--quick", action="store_true", help="300 steps, 1 repeat")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.repeats = 300, 1
    variants = args.variant or ["p12x1"]
    torch.set_flush_denormal(True)
    peaks = {f"peak_{n}t": statistics.median(peak_gflops(n) for _ in range(3)) for n in (1, 2)}
    work = len(WEIGHT_DECAYS) * 2 * args.steps * matmul_flops_per_step(64)  # FLOP
    load = os.getloadavg()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}; load average {load[0]:.2f} at start; fp32 matmul "
          f"{peaks['peak_1t']:.0f} GFLOP/s (1 thread), {peaks['peak_2t']:.0f} (2 threads)")
    runs: list[dict] = []
    for rep in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            pw, pf = plain(args.steps, d)
            runs.append(dict(rep=rep, side="plain", wall=pw, fit=pf))
            print(f"rep {rep} plain tune: wall {pw:.1f} s, fit {pf:.1f} s", flush=True)
            for v in variants:
                w, f = wdsweep(args.steps, v, d)
                runs.append(dict(rep=rep, side=v, wall=w, fit=f, ratio_wall=pw / w,
                                 ratio_fit=pf / f, matmul_share=work / f / 1e9
                                 / peaks["peak_2t"]))
                print(f"rep {rep} wdsweep {v}: wall {w:.1f} s, fit {f:.1f} s; plain/wdsweep "
                      f"{pw / w:.2f}x wall, {pf / f:.2f}x fit", flush=True)
    peaks_after = {f"{k}_after": statistics.median(peak_gflops(int(k[5])) for _ in range(3))
                   for k in peaks}
    print("\n| side | wall s (median) | Tune fit s | plain/side wall | plain/side fit | "
          "GFLOP/s over fit | % of 2-thread matmul |\n|---|---|---|---|---|---|---|")
    summary = {}
    for side in ["plain", *variants]:
        rs = [r for r in runs if r["side"] == side]
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0] if k not in ("rep", "side")}
        summary[side] = med
        gf = work / med["fit"] / 1e9
        print(f"| {side} | {med['wall']:.1f} | {med['fit']:.1f} | "
              f"{med.get('ratio_wall', 1):.2f}x | {med.get('ratio_fit', 1):.2f}x | {gf:.1f} | "
              f"{100 * gf / peaks['peak_2t']:.0f}% |")
    print(f"load average at end {os.getloadavg()[0]:.2f}; matmul after: "
          f"{peaks_after['peak_1t_after']:.0f} / {peaks_after['peak_2t_after']:.0f} GFLOP/s")
    if args.out:
        args.out.write_text(json.dumps(dict(steps=args.steps, repeats=args.repeats,
                                            load_start=load, load_end=os.getloadavg(),
                                            **peaks, **peaks_after, runs=runs,
                                            summary=summary), indent=1))


if __name__ == "__main__":
    main()
