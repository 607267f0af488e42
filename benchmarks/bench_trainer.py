"""Trainer speed: ms per step and achieved GFLOP/s of the seed model, side by side.

Compares, in one process and on the same data, with the variants interleaved (each
repeat times every variant once, so load from other processes hits all alike): a
plain PyTorch model with torch.optim.AdamW (the seed code's loop; and with a
shuffling DataLoader, as benchmarks/plain_tune.py trains) against wdsweep's packed
step at K = 1 ... 32 members (the per-member fused optimizer, the CPU default, and
the whole-pack flat update side by side), on 1 and 2 threads. GFLOP/s counts the
matmul work (forward + two backward matmuls per linear layer) and is set against
an fp32 matmul peak measured in the same process and thread count.

    python benchmarks/bench_trainer.py [--steps 300] [--repeats 5] [--ks 1 12]
        [--threads 1] [--impls fused] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from trainer import build, preset
from trainer.loop import load_data
from trainer.model import PackedResMLP, reference_model
from trainer.optim import PackedOptimizer
from trainer.step import TrainStep, amp


def matmul_flops_per_step(n: int, width: int = 256, depth: int = 2, n_in=64, n_out=32) -> int:
    macs = n_in * width + depth * 2 * width * width + width * n_out
    return 3 * 2 * n * macs  # forward, grad wrt input, grad wrt weight


def peak_gflops(threads: int, size: int = 1024, reps: int = 20) -> float:
    torch.set_num_threads(threads)
    a, b = torch.rand(size, size), torch.rand(size, size)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * size**3 * reps / (time.perf_counter() - t) / 1e9


def time_steps(step, steps: int, warm: int = 5) -> float:
    for i in range(warm):
        step(i)
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    return (time.perf_counter() - t) / steps * 1e3


def plain(cfg, data):
    """The seed code's loop: one model, torch.optim.AdamW, batches sliced in order."""
    x, y = data["train"].x[:, 0], data["train"].y[:, 0]
    m = reference_model(64, 32, 256, 2, True, cfg.bn_eps, 0)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-3,
                            weight_decay=0.1)
    b, spe = cfg.batch_size, cfg.steps_per_epoch

    def step(i):
        j = i % spe
        loss = ((m(x[j * b:(j + 1) * b]) - y[j * b:(j + 1) * b]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def plain_loader(cfg, data):
    """benchmarks/plain_tune.py's loop: DataLoader with shuffle, F.mse_loss, .item()."""
    ds = TensorDataset(data["train"].x[:, 0], data["train"].y[:, 0])
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, drop_last=True)
    m = reference_model(64, 32, 256, 2, True, cfg.bn_eps, 0)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-3,
                            weight_decay=0.1)
    it = iter(loader)

    def step(i):
        nonlocal it
        try:
            xb, yb = next(it)
        except StopIteration:
            it = iter(loader)
            xb, yb = next(it)
        loss = F.mse_loss(m(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
    return step


def packed(cfg, K, impl="auto", precision="fp32", own_backward=None):
    cfgs = [cfg.replace(seed=s) for s in range(K)]
    data = load_data(cfgs, torch.device("cpu"))
    x, y = data["train"].x, data["train"].y
    model = PackedResMLP([reference_model(64, 32, 256, 2, True, c.bn_eps, c.seed)
                          for c in cfgs], [c.bn_eps for c in cfgs], torch.device("cpu"),
                         own_backward=own_backward)
    opt = PackedOptimizer("adamw", model, lr=[1e-3] * K, wd=[0.1] * K, matrices_only=False,
                          beta1=0.9, beta2=0.98, eps=1e-3, momentum=0.0, impl=impl)
    ts = TrainStep(model, opt, graph=False,  # what trainer.train runs per step
                   amp=amp(precision, torch.device("cpu")))
    b, spe = cfg.batch_size, cfg.steps_per_epoch

    def step(i):
        j = i % spe
        ts(x[j * b:(j + 1) * b], y[j * b:(j + 1) * b])
    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300, help="per timed run at K=1")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 12, 16, 32])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--impls", nargs="+", default=["fused", "flat"])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"],
                    help="bf16: torch.autocast matmuls (the `precision` option)")
    ap.add_argument("--quick", action="store_true", help="K 1, 12; 1 thread; 60 steps x 3")
    args = ap.parse_args()
    if args.quick:
        args.ks, args.threads, args.steps, args.repeats = [1, 12], [1], 60, 3
        args.impls = ["fused"]
    torch.set_flush_denormal(True)
    cfg = build(preset("seed"), {"steps": 1000})
    data = load_data([cfg], torch.device("cpu"))
    flops = matmul_flops_per_step(cfg.batch_size)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()}; load average {os.getloadavg()[0]:.2f}; "
          f"seed model, batch 64; variants interleaved, median of {args.repeats} runs")
    rows = [("plain torch", 1, plain(cfg, data)),
            ("plain+loader", 1, plain_loader(cfg, data))]
    rows += [(f"K={k} {impl}{'' if p == 'fp32' else ' ' + p}", k, packed(cfg, k, impl, p))
             for k in args.ks for impl in args.impls for p in args.precisions
             if p == "fp32" or impl == "fused"]
    print(f"{'threads':>7} {'variant':>19} {'ms/step':>8} {'ms/member':>9} {'GFLOP/s':>8} "
          f"{'% peak':>6} {'vs plain':>8}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        times: dict[str, list[float]] = {name: [] for name, _, _ in rows}
        peaks = []
        for _ in range(args.repeats):  # interleaved: load changes hit every variant alike
            peaks.append(peak_gflops(threads))
            for name, k, step in rows:
                times[name].append(time_steps(step, max(10, args.steps // k)))
        peak = statistics.median(peaks)
        base = None
        for name, k, _ in rows:
            ms = statistics.median(times[name])
            per = ms / k
            base = base or per
            gf = flops * k / (ms / 1e3) / 1e9
            print(f"{threads:>7} {name:>19} {ms:8.2f} {per:9.2f} {gf:8.1f} {100 * gf / peak:5.0f}%"
                  f" {base / per:7.2f}x", flush=True)
        print(f"{threads:>7} {'fp32 peak':>19} {'':>8} {'':>9} {peak:8.1f}  (1024^3 matmul)")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
