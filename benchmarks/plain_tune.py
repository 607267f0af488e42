"""The seed's weight-decay sweep as a plain Ray Tune script, written the way a user would.

One Tune trial per (weight decay, seed): the seed's model (trainer.model.ResMLP, the
plain PyTorch reference), a DataLoader with shuffle, torch.optim.AdamW, default
threads and default trial resources (1 CPU), a test evaluation and a report once
per epoch. No wdsweep machinery; the data come from the same generator so both
sides of benchmarks/bench_sweep_vs_tune.py do the same arithmetic.

    python benchmarks/plain_tune.py --steps 3000 [--storage DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from ray import tune
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer import build, preset  # noqa: E402
from trainer.model import ResMLP  # noqa: E402
from trainer.tasks import get  # noqa: E402

WEIGHT_DECAYS = [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]


def train_fn(config: dict) -> None:
    cfg = build(preset("seed"), {"steps": config["steps"], "seed": config["seed"]})
    data = get(cfg.task).make(cfg, config["seed"])
    torch.manual_seed(config["seed"])
    model = ResMLP(64, 32, cfg.width, cfg.depth, True, cfg.bn_eps)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            eps=cfg.adam_eps, weight_decay=config["weight_decay"])
    loader = DataLoader(TensorDataset(data.train.x, data.train.y), batch_size=cfg.batch_size,
                        shuffle=True, drop_last=True)
    step = 0
    while step < config["steps"]:
        model.train()
        total, n = 0.0, 0
        for xb, yb in loader:
            loss = F.mse_loss(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n, step = total + loss.item(), n + 1, step + 1
            if step == config["steps"]:
                break
        model.eval()
        with torch.no_grad():
            out = model(data.test.x)
            test_acc = ((out > 0.5) == (data.test.y > 0.5)).all(-1).float().mean().item()
        tune.report({"step": step, "train_loss": total / n, "test_acc": test_acc,
                     "threads": torch.get_num_threads()})


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--storage", default=None)
    args = ap.parse_args(argv)
    storage = args.storage or tempfile.mkdtemp(prefix="plain-tune-")
    space = {"weight_decay": tune.grid_search(WEIGHT_DECAYS),
             "seed": tune.grid_search(list(range(args.seeds))), "steps": args.steps}
    t = time.perf_counter()
    tuner = tune.Tuner(train_fn, param_space=space,
                       run_config=tune.RunConfig(storage_path=str(Path(storage).resolve()),
                                                 verbose=0))
    results = tuner.fit()
    fit = time.perf_counter() - t
    errors = [r.error for r in results if r.error]
    if errors:
        sys.exit(f"plain tune: {len(errors)} trials failed: {errors[0]}")
    threads = sorted({r.metrics.get("threads") for r in results})
    print(f"plain tune: {len(results)} trials ({threads} torch threads each), "
          f"Tuner.fit {fit:.1f} s")
    return fit


if __name__ == "__main__":
    main()
