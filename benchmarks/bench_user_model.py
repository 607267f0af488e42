"""Member-steps/s of a packed user model (issue 9) vs the same model one member per trial.

The model and task are examples/own_model's two-moons MLP (with and without batch norm),
trained by trainer.train on CPU: K members at once (stacked + vmapped, trainer.vmapped)
against the same K members trained one at a time (K runs of one member: what a plan
that cannot pack does). Both in this process, interleaved and repeated, so machine load
hits both alike; the ratio is the number to read. Prints the load average too.

    .venv/bin/python benchmarks/bench_user_model.py [--members 8] [--steps 240] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "own_model" / "models")]

from trainer import build, preset, train  # noqa: E402


def members(k: int, steps: int, bn: bool, width: int) -> list:
    base = build(preset("tiny"), dict(task="moons:two_moons", model="moons:mlp",
                                      task_args={"n_train": 256, "dims": 8},
                                      model_args={"width": width, "batch_norm": bn},
                                      train_size=256, batch_size=32, steps=steps,
                                      eval_every=steps, threads=1, device="cpu", lr=1e-2))
    return [base.replace(weight_decay=10 ** (-3 + 3 * i / max(k - 1, 1)), seed=i)
            for i in range(k)]


def rate(ms: list, packed: bool) -> float:
    t = time.perf_counter()
    if packed:
        train(ms)
    else:
        for m in ms:
            train([m])
    return len(ms) * ms[0].total_steps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--width", type=int, default=64)
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()}; cpus: {os.cpu_count()}; threads 1")
    for bn in (False, True):
        ms = members(a.members, a.steps, bn, a.width)
        rate(ms[:1], True)  # warm up imports and the allocator
        got: dict[str, list[float]] = {"packed": [], "alone": []}
        for _ in range(a.repeats):
            got["packed"].append(rate(ms, True))
            got["alone"].append(rate(ms, False))
        p, s = (statistics.median(got[k]) for k in ("packed", "alone"))
        ratios = [x / y for x, y in zip(got["packed"], got["alone"])]
        print(f"mlp width {a.width} batch_norm={bn}, K={a.members}: packed {p:,.0f} "
              f"member-steps/s, one per trial {s:,.0f}; ratio {p / s:.2f} "
              f"(per repeat {', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
