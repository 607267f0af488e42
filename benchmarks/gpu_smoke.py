"""CUDA smoke check of the trainer's entry point (seconds; run before bench_gpu.py).

On the GPU, through trainer.train as a sweep trial calls it:
  1. the captured step (cuda_graph=True) gives the same metrics as eager, bit for bit;
  2. a run interrupted after a checkpoint and resumed ends bit-identical (graph on);
  3. compile_update=True stays within float32 rounding of eager.
Exit status 1 on any mismatch.

    python benchmarks/gpu_smoke.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout

from trainer import build, preset, train  # noqa: E402

METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "weight_norm")


class Stop(Exception):
    pass


def members(**over):
    base = build(preset("tiny"), {"device": "cuda", "steps": 400, "eval_every": 50,
                                  "checkpoint_every": 100, **over})
    return [base.replace(weight_decay=w, seed=s) for w in (0.1, 1.0) for s in (0, 1)]


def run(ms, out=None, stop_at=None):
    def on_eval(rows):
        if stop_at is not None and rows[0]["step"] >= stop_at:
            raise Stop
    t = time.perf_counter()
    rows = train(ms, out, on_eval=on_eval, log=lambda s: None)
    return rows, time.perf_counter() - t


def table(rows):
    return torch.tensor([[r[c] for c in METRICS] for r in rows], dtype=torch.float64)


def main() -> int:
    ok = True
    eager, te = run(members(cuda_graph=False))
    graph, tg = run(members(cuda_graph=True))
    same = torch.equal(table(eager), table(graph))
    print(f"graph vs eager: bitwise {same} (eager {te:.1f} s, graph {tg:.1f} s); "
          f"max abs diff {(table(eager) - table(graph)).abs().max():.3g}")
    ok &= same
    with tempfile.TemporaryDirectory() as d:
        try:
            run(members(), Path(d), stop_at=250)
        except Stop:
            pass
        resumed, _ = run(members(), Path(d))
    same = torch.equal(table(resumed), table(graph))
    print(f"interrupted at 250, resumed from 200, graph on: bitwise {same}")
    ok &= same
    try:
        comp, tc = run(members(compile_update=True))
        diff = (table(comp) - table(eager)).abs().max().item()
        print(f"compile_update vs eager: max abs metric diff {diff:.3g} ({tc:.1f} s)")
        ok &= diff < 5e-2  # 400 steps of float32 rounding differences through batch norm
    except Exception as e:  # noqa: BLE001 - report a missing compiler, do not hide others
        print(f"compile_update failed: {type(e).__name__}: {str(e)[:300]}")
        ok = False
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
