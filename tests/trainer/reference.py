"""A plain PyTorch training run: the independent expectation for `trainer.train`.

One member at a time: the reference `ResMLP` built under `manual_seed(seed)`, a
`torch.optim` optimizer, the same data order, and the metrics the trainer records,
computed here from their definitions (not by calling the trainer's helpers).
"""

from __future__ import annotations

from typing import Any

import torch

from trainer import TrainConfig, tasks
from trainer.model import ResMLP

METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc", "bit_acc",
           "weight_norm", "weight_norm_sq")


def epoch_order(data_seed: int, epoch: int, n: int) -> torch.Tensor:
    """The shuffle branch's order: a pure function of (data seed, epoch). Pinned here on
    purpose: changing it changes what every existing config_hash computes."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(data_seed * 1_000_003
                                                                     + epoch))


def _optimizer(cfg: TrainConfig, model: ResMLP) -> torch.optim.Optimizer:
    wd, params = cfg.decay.weight_decay, list(model.parameters())
    if cfg.decay_mode == "matrices":
        groups = [{"params": [p for p in params if p.dim() == 2], "weight_decay": wd},
                  {"params": [p for p in params if p.dim() != 2], "weight_decay": 0.0}]
    else:
        groups = [{"params": params, "weight_decay": wd}]
    betas = (cfg.beta1, cfg.beta2)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, eps=cfg.adam_eps)
    if cfg.optimizer == "adam_l2":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=betas, eps=cfg.adam_eps)
    # sgdw: torch's SGD with momentum; the decoupled decay is applied by hand (below)
    return torch.optim.SGD([{**g, "weight_decay": 0.0, "wd": g["weight_decay"]}
                            for g in groups], lr=cfg.lr, momentum=cfg.momentum)


def _scores(out: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float]:
    """MSE, exact-match accuracy (every bit right at threshold 0.5), bit accuracy."""
    right = (out > 0.5) == (y > 0.5)
    return (((out - y) ** 2).mean().item(), right.all(dim=1).double().mean().item(),
            right.double().mean().item())


def reference_history(cfg: TrainConfig, device: str = "cpu") -> list[dict[str, Any]]:
    """Train `cfg` alone, the plain way; one dict of METRICS (+ step) per evaluation."""
    dev = torch.device(device)
    data = tasks.get(cfg.task).make(cfg, cfg.effective_data_seed)
    x, y = data.train.x.to(dev), data.train.y.to(dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = ResMLP(x.shape[1], y.shape[1], cfg.width, cfg.depth, cfg.batch_norm,
                       cfg.bn_eps)
    model.to(dev)
    opt = _optimizer(cfg, model)
    b, spe, S = cfg.batch_size, cfg.steps_per_epoch, cfg.total_steps
    losses: list[float] = []
    accs: list[float] = []
    history = []
    order = None
    for step in range(S):
        i = step % spe
        if cfg.shuffle:
            if i == 0 or order is None:
                order = epoch_order(cfg.effective_data_seed, step // spe, len(x)).to(dev)
            idx = order[i * b:(i + 1) * b]
            xb, yb = x[idx], y[idx]
        else:
            xb, yb = x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]
        model.train()
        pred = model(xb)
        loss = ((pred - yb) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        if cfg.optimizer == "sgdw":
            with torch.no_grad():
                for g in opt.param_groups:
                    for p in g["params"]:
                        p.mul_(1 - cfg.lr * g["wd"])
        opt.step()
        losses.append(loss.item())
        accs.append(((pred > 0.5) == (yb > 0.5)).all(dim=1).double().mean().item())
        if (step + 1) % cfg.eval_interval == 0 or step + 1 == S:
            history.append(_evaluate(model, data, dev, step + 1, losses, accs))
            losses, accs = [], []
    return history


@torch.no_grad()
def _evaluate(model: ResMLP, data: tasks.TaskData, dev: torch.device, step: int,
              losses: list[float], accs: list[float]) -> dict[str, Any]:
    model.eval()
    te = _scores(model(data.test.x.to(dev)), data.test.y.to(dev))
    va = _scores(model(data.val.x.to(dev)), data.val.y.to(dev))
    norms = [p.norm().item() for p in model.parameters()]
    return dict(step=step, train_loss=sum(losses) / len(losses), train_acc=sum(accs) / len(accs),
                test_loss=te[0], test_acc=te[1], val_loss=va[0], val_acc=va[1], bit_acc=te[2],
                weight_norm=sum(norms), weight_norm_sq=sum(n * n for n in norms))
