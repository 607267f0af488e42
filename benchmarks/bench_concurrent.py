"""The packed step as a CPU sweep runs it: P processes at once, one thread and one pack each.

On the 2-core box a sweep runs two 1-thread trials of 12 members side by side, and they
share the memory bus and the L3 cache (a 12-member pack's parameters, gradients and Adam
moments are ~56 MB). A one-process benchmark misses that, so this one starts P
processes together for every variant (variants in turn, repeats interleaved) and reports
the slowest process's ms per member-step, median over repeats.

Variants: the linear layers' backward (`own`: trainer.packed_linear, gradients written
in place; `autograd`: baddbmm's autograd backward plus zeroing and accumulating into the
flat buffer) x precision (fp32, bf16).

    python benchmarks/bench_concurrent.py [--procs 2] [--k 12] [--repeats 5] [--steps 100]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _worker(own: bool, precision: str, k: int, steps: int, q: mp.Queue) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
    import torch
    from bench_trainer import packed, time_steps

    from trainer import build, preset

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    step = packed(build(preset("seed"), {"steps": 1000}), k, "fused", precision, own)
    q.put(time_steps(step, steps, warm=10) / k)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--k", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    args = ap.parse_args()
    mp.set_start_method("spawn")
    variants = [(own, p) for p in args.precisions for own in (False, True)]
    times: dict[tuple[bool, str], list[float]] = {v: [] for v in variants}
    print(f"{args.procs} processes x K={args.k}, 1 thread each; load average "
          f"{os.getloadavg()[0]:.2f}; {args.repeats} repeats, variants interleaved", flush=True)
    for _ in range(args.repeats):
        for own, prec in variants:
            q: mp.Queue = mp.Queue()
            ps = [mp.Process(target=_worker, args=(own, prec, args.k, args.steps, q))
                  for _ in range(args.procs)]
            for p in ps:
                p.start()
            got = [q.get() for _ in ps]
            for p in ps:
                p.join()
            times[(own, prec)].append(max(got))
    print("| precision | backward | ms per member-step (median) | runs | vs autograd |")
    print("|---|---|---|---|---|")
    for own, prec in variants:
        med = statistics.median(times[(own, prec)])
        base = statistics.median(times[(False, prec)])
        runs = " ".join(f"{t:.2f}" for t in times[(own, prec)])
        print(f"| {prec} | {'own' if own else 'autograd'} | {med:.3f} | {runs} | "
              f"{base / med:.2f}x |")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
