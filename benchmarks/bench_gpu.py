"""GPU throughput of the seed model's training step: a K-scan, side by side in one run.

For K = 1, 2, 4, ... members (width 256, batch 64, AdamW, a distinct weight decay per
member) it times, on one GPU and in one process:
  plain    -- one reference model + torch.optim.AdamW (K of them run one after another)
  eager    -- wdsweep's packed step, flat optimizer update, no graph
  graph    -- the same step captured once in a CUDA graph and replayed (the default)
  compiled -- graph, with the optimizer update fused by torch.compile (compile_update)
and reports ms/step and member-steps/s (medians of --repeats timed runs, each after
warm-up), the peak memory next to the planner's estimate, and the pack size the
sweep planner picks from this card's memory (timed too). Before timing it checks
that the captured step computes what the eager one does (loss trajectory and final
weights, bitwise) and how far the compiled update drifts (float32 rounding).

All members read the same data (an expanded view: the arithmetic is the trainer's,
the data memory is not); the trainer keeps per-member data.

    python benchmarks/bench_gpu.py --out gpu.json [--kmax 4096] [--repeats 3] [--quick]
        [--seed-sweep 30000]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout

from trainer import build, preset, train  # noqa: E402
from trainer.loop import load_data  # noqa: E402
from trainer.memory import fit_members, member_bytes  # noqa: E402
from trainer.model import PackedResMLP, reference_model  # noqa: E402
from trainer.optim import PackedOptimizer  # noqa: E402
from trainer.step import TrainStep  # noqa: E402

FLOP_PER_MEMBER_STEP = 3 * 2 * 64 * (64 * 256 + 4 * 256 * 256 + 256 * 32)  # matmuls only


def timed(step: Callable[[int], None], repeats: int, target_s: float) -> float:
    """Median ms per step over `repeats` runs, each long enough to last ~target_s."""
    for i in range(5):  # warm-up (and, for the graph, capture after 3 steps)
        step(i)
    torch.cuda.synchronize()
    t = time.perf_counter()
    step(5)
    torch.cuda.synchronize()
    n = max(5, min(500, int(target_s / max(time.perf_counter() - t, 1e-6))))
    runs = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t = time.perf_counter()
        for i in range(n):
            step(i)
        torch.cuda.synchronize()
        runs.append((time.perf_counter() - t) / n * 1e3)
    return statistics.median(runs)


class Pack:
    """K members on the GPU: model, data views and a fresh optimizer + step per variant."""

    def __init__(self, cfg, K: int, x: torch.Tensor, y: torch.Tensor, refs: list):
        self.K, self.b, self.spe = K, cfg.batch_size, cfg.steps_per_epoch
        self.x, self.y = x.expand(-1, K, -1), y.expand(-1, K, -1)
        self.model = PackedResMLP([refs[k % len(refs)] for k in range(K)], [cfg.bn_eps] * K,
                                  x.device)
        self.init = self.model.state()
        self.cfg = cfg

    def stepper(self, graph: bool, compile: bool) -> TrainStep:
        self.model.load_state(self.init)
        wd = torch.logspace(-4, 0, self.K).tolist()  # a lambda sweep: distinct decays
        c = self.cfg
        opt = PackedOptimizer("adamw", self.model, lr=[c.lr] * self.K, wd=wd,
                              matrices_only=False, beta1=c.beta1, beta2=c.beta2,
                              eps=c.adam_eps, momentum=0.0, impl="flat", compile=compile)
        return TrainStep(self.model, opt, graph=graph, log=print)

    def run(self, ts: TrainStep) -> Callable[[int], None]:
        b, spe = self.b, self.spe

        def step(i: int) -> None:
            j = i % spe
            ts(self.x[j * b : (j + 1) * b], self.y[j * b : (j + 1) * b])
        return step


def plain_ms(cfg, x: torch.Tensor, y: torch.Tensor, repeats: int, target_s: float) -> float:
    m = reference_model(64, 32, 256, 2, True, cfg.bn_eps, 0).to(x.device)
    opt = torch.optim.AdamW(m.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            eps=cfg.adam_eps, weight_decay=0.1)
    b, spe, x, y = cfg.batch_size, cfg.steps_per_epoch, x[:, 0], y[:, 0]

    def step(i: int) -> None:
        j = i % spe
        loss = ((m(x[j * b : (j + 1) * b]) - y[j * b : (j + 1) * b]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return timed(step, repeats, target_s)


def trajectory(pack: Pack, graph: bool, compile: bool, steps: int):
    ts = pack.stepper(graph, compile)
    run, losses = pack.run(ts), []
    for i in range(steps):
        run(i)
        losses.append(ts.acc_sum[0].clone())
        ts.acc_sum.zero_()
    torch.cuda.synchronize()
    return torch.stack(losses), pack.model.flat.clone(), ts.captured


def correctness(cfg, x, y, refs, steps: int = 200) -> dict:
    pack = Pack(cfg, 8, x, y, refs)
    le, fe, _ = trajectory(pack, False, False, steps)
    lg, fg, cap = trajectory(pack, True, False, steps)
    out = dict(K=8, steps=steps, graph_captured=cap,
               graph_bitwise_loss=bool(torch.equal(le, lg)),
               graph_bitwise_weights=bool(torch.equal(fe, fg)),
               graph_max_abs_loss_diff=float((le - lg).abs().max()))
    try:
        lc, fc, _ = trajectory(pack, True, True, steps)
        out.update(compiled_max_rel_loss_diff=float(((le - lc).abs() / le.abs()).max()),
                   compiled_max_abs_weight_diff=float((fe - fc).abs().max()))
    except Exception as e:  # noqa: BLE001 - no triton/compiler: report and go on
        out.update(compiled_error=f"{type(e).__name__}: {e}"[:300])
    return out


def seed_sweep(steps: int) -> dict:
    """The seed's lambda sweep (12 decays x 2 seeds, one pack of 24) through
    trainer.train as a sweep trial runs it: evaluation every epoch, no checkpoints."""

    base = build(preset("seed"), {"steps": steps, "device": "cuda"})
    decays = [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]  # plain_tune's
    members = [base.replace(weight_decay=w, seed=s) for w in decays for s in (0, 1)]
    t = time.perf_counter()
    rows = train(members, log=lambda _: None)
    total = time.perf_counter() - t
    last = rows[-len(members):]
    return dict(members=len(members), steps=steps, total_s=total,
                train_s=last[0]["wall_time"], member_steps_per_s=len(members) * steps / total,
                best_test_acc=max(r["test_acc"] for r in last))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True, help="JSON results")
    ap.add_argument("--kmax", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.5, help="per timed run")
    ap.add_argument("--quick", action="store_true", help="K = 1, 16, 256, kmax; 1 s budget")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--seed-sweep", type=int, default=0, metavar="STEPS",
                    help="also train the seed's 24-member lambda sweep for STEPS steps")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_gpu: torch sees no GPU")
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    cfg = build(preset("seed"), {"steps": 1000, "data_seed": 0})
    data = load_data([cfg], dev)
    x, y = data["train"].x, data["train"].y
    refs = [reference_model(64, 32, 256, 2, True, cfg.bn_eps, s) for s in range(8)]
    # What sweep.plan.packs.pack_size picks for a spec with gpus_per_trial = 1 and no run.pack
    # (sweep/ needs numpy, which a bare GPU box may lack; the rule is this function).
    pick = fit_members(cfg, props.total_memory)
    head = dict(device=props.name, memory_gib=props.total_memory / 2**30, torch=torch.__version__,
                cuda=torch.version.cuda, python=platform.python_version(), planner_pick=pick,
                est_mib_per_member=member_bytes(cfg) / 2**20)
    print(json.dumps(head))
    result: dict = dict(head, correctness=correctness(cfg, x, y, refs), rows=[])
    print("correctness (graph vs eager, K=8):", json.dumps(result["correctness"]))

    ks = [1 << i for i in range(args.kmax.bit_length()) if 1 << i <= args.kmax]
    if args.quick:
        ks = sorted({1, 16, 256, args.kmax})
    ks = ks + ([pick] if pick not in ks else [])
    plain = plain_ms(cfg, x, y, args.repeats, args.seconds)
    result["plain_ms_per_step"] = plain
    variants = [("eager", False, False), ("graph", True, False)]
    variants += [] if args.no_compile else [("compiled", True, True)]
    print(f"\n{props.name}, torch {torch.__version__}; plain PyTorch {plain:.3f} ms/step "
          f"({1e3 / plain:,.0f} member-steps/s); medians of {args.repeats}\n")
    print("| K | plain ms (K in turn) | " + " | ".join(f"{v} ms" for v, *_ in variants)
          + " | best member-steps/s | vs plain | TFLOP/s | peak GiB | est GiB |")
    print("|" + "---|" * (7 + len(variants)))
    for K in ks:
        row: dict = dict(K=K, plain_ms=plain * K)
        try:
            torch.cuda.reset_peak_memory_stats()
            pack = Pack(cfg, K, x, y, refs)
            for name, graph, comp in variants:
                if comp:
                    torch._dynamo.reset()  # one compile per K, not the recompile limit
                t0 = time.perf_counter()
                ts = pack.stepper(graph, comp)
                row[name] = timed(pack.run(ts), args.repeats, args.seconds)
                row[f"{name}_setup_s"] = time.perf_counter() - t0
                del ts
                gc.collect()
            row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        except torch.cuda.OutOfMemoryError as e:
            row["error"] = f"OOM: {str(e)[:120]}"
        finally:
            pack = None
            gc.collect()
            torch.cuda.empty_cache()
        row["est_gib"] = K * member_bytes(cfg) / 2**30
        best = min((row[v] for v, *_ in variants if v in row), default=float("nan"))
        row["member_steps_per_s"] = K / best * 1e3
        result["rows"].append(row)
        cells = " | ".join(f"{row[v]:.3f}" if v in row else "-" for v, *_ in variants)
        print(f"| {K}{' (planner)' if K == pick else ''} | {plain * K:.2f} | {cells} | "
              f"{row['member_steps_per_s']:,.0f} | {plain * K / best:.0f}x | "
              f"{FLOP_PER_MEMBER_STEP * K / best / 1e9:.1f} | {row.get('peak_gib', 0):.1f} | "
              f"{row['est_gib']:.1f} |" + (f" {row['error']}" if "error" in row else ""),
              flush=True)
        args.out.write_text(json.dumps(result, indent=1))  # partial results survive a kill
    if args.seed_sweep:
        result["seed_sweep"] = seed_sweep(args.seed_sweep)
        print("\nseed sweep (trainer.train, one pack of 24):", json.dumps(result["seed_sweep"]))
    args.out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
