"""Packed members against plain PyTorch models and torch.optim, trained alone."""

import pytest
import torch

from trainer import build, preset
from trainer.loop import load_data
from trainer.model import PackedResMLP, reference_model
from trainer.optim import PackedOptimizer

TINY = dict(width=32, depth=2, train_size=640, val_size=64, test_size=64, batch_size=32,
            steps=200, threads=1)


def reference_run(cfg, opt_kind, wd, steps, decay_mode="all"):
    """One member trained the plain PyTorch way."""
    data = load_data([cfg], torch.device("cpu"))
    x, y = data["train"].x[:, 0], data["train"].y[:, 0]
    m = reference_model(x.shape[1], y.shape[1], cfg.width, cfg.depth, cfg.batch_norm,
                        cfg.bn_eps, cfg.seed)
    params = list(m.parameters())
    if opt_kind == "adamw":
        groups = ([{"params": [p for p in params if p.dim() == 2], "weight_decay": wd},
                   {"params": [p for p in params if p.dim() != 2], "weight_decay": 0.0}]
                  if decay_mode == "matrices" else [{"params": params, "weight_decay": wd}])
        opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                eps=cfg.adam_eps)
    elif opt_kind == "adam_l2":
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                               eps=cfg.adam_eps, weight_decay=wd)
    else:  # SGD with momentum, decay applied decoupled by hand
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    b, spe = cfg.batch_size, cfg.steps_per_epoch
    for step in range(steps):
        i = step % spe
        xb, yb = x[i * b : (i + 1) * b], y[i * b : (i + 1) * b]
        loss = ((m(xb) - yb) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        if opt_kind == "sgdw":
            with torch.no_grad():
                for p in params:
                    if decay_mode == "all" or p.dim() == 2:
                        p.mul_(1 - cfg.lr * wd)
        opt.step()
    return m


def packed_run(cfgs, steps, decay_mode="all", impl="auto"):
    """The members packed, with the first member's optimizer, impl and lr schedule."""
    data = load_data(cfgs, torch.device("cpu"))
    x, y = data["train"].x, data["train"].y
    c0 = cfgs[0]
    model = PackedResMLP([reference_model(x.shape[-1], y.shape[-1], c0.width, c0.depth,
                                          c0.batch_norm, c.bn_eps, c.seed) for c in cfgs],
                         [c.bn_eps for c in cfgs], torch.device("cpu"))
    opt = PackedOptimizer(c0.optimizer, model, lr=[c.lr for c in cfgs],
                          wd=[c.decay.weight_decay for c in cfgs],
                          matrices_only=decay_mode == "matrices", beta1=c0.beta1,
                          beta2=c0.beta2, eps=c0.adam_eps, momentum=c0.momentum, impl=impl,
                          schedule=c0.schedule)
    b, spe = c0.batch_size, c0.steps_per_epoch
    for step in range(steps):
        i = step % spe
        loss = ((model(x[i * b : (i + 1) * b]) - y[i * b : (i + 1) * b]) ** 2).mean(dim=(0, 2))
        model.zero_grad()
        loss.sum().backward()
        opt.step()
    return model, data


def unpack(model, k, name):
    p = model.p[name][k]
    return p.t() if name.endswith("weight") and p.shape[0] != 1 else p.reshape(-1)


def assert_member_matches(model, k, ref, rtol=2e-3, atol=2e-4):
    for name, p in ref.named_parameters():
        torch.testing.assert_close(unpack(model, k, name), p.detach(), rtol=rtol, atol=atol,
                                   msg=lambda m, n=name: f"member {k} {n}: {m}")


def test_packed_init_equals_pytorch_init_for_each_seed():
    cfgs = [build(preset("seed"), {**TINY, "seed": s}) for s in (0, 1, 2)]
    model, _ = packed_run(cfgs, steps=0)
    for k, c in enumerate(cfgs):
        ref = reference_model(64, 32, c.width, c.depth, True, c.bn_eps, c.seed)
        assert_member_matches(model, k, ref, rtol=0, atol=0)


def test_seed_model_has_290080_parameters():
    assert sum(p.numel() for p in reference_model(64, 32, 256, 2, True, 1e-2, 0).parameters()) \
        == 290_080


@pytest.mark.parametrize("shared_eps", [True, False], ids=["native-bn", "per-member-eps"])
def test_four_packed_members_match_four_plain_adamw_runs(shared_eps, float64):
    """K=4 members differing in decay, seed, lr and bn_eps, a few hundred steps."""
    base = build(preset("seed"), TINY)
    variants = [dict(weight_decay=0.1, seed=0, lr=1e-3, bn_eps=1e-2),
                dict(weight_decay=1.0, seed=1, lr=1e-3, bn_eps=1e-2 if shared_eps else 1e-5),
                dict(weight_decay=0.0, seed=2, lr=3e-3, bn_eps=1e-2 if shared_eps else 1e-3),
                dict(weight_decay=0.3, seed=3, lr=1e-3, bn_eps=1e-2)]
    cfgs = [base.replace(**v) for v in variants]
    model, data = packed_run(cfgs, steps=300)
    model.training = False
    out = model(data["test"].x)
    tol = dict(rtol=1e-9, atol=1e-11)
    for k, c in enumerate(cfgs):
        ref = reference_run(c, "adamw", c.weight_decay, steps=300)
        assert_member_matches(model, k, ref, **tol)
        ref.eval()
        with torch.no_grad():
            ref_out = ref(data["test"].x[:, k])
        torch.testing.assert_close(out[:, k], ref_out, **tol)
        rv = model.buffers["blocks.1.bn2.running_var"].view(len(cfgs), -1)[k]
        torch.testing.assert_close(rv, ref.blocks[1].bn2.running_var, **tol)


def test_packed_float32_members_match_plain_runs_to_float_tolerance():
    base = build(preset("seed"), TINY)
    cfgs = [base.replace(weight_decay=w, seed=s) for w, s in ((0.1, 0), (1.0, 1), (0.0, 2))]
    model, _ = packed_run(cfgs, steps=50)
    for k, c in enumerate(cfgs):
        assert_member_matches(model, k, reference_run(c, "adamw", c.weight_decay, 50),
                              rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind, decay_mode", [("adamw", "matrices"), ("adam_l2", "all"),
                                              ("sgdw", "all"), ("sgdw", "matrices")])
def test_each_optimizer_matches_torch_optim_step_by_step(kind, decay_mode):
    base = build(preset("seed"), {**TINY, "optimizer": kind, "decay_mode": decay_mode,
                                  "lr": 1e-2 if kind == "sgdw" else 1e-3})
    cfgs = [base.replace(weight_decay=w, seed=s) for w, s in ((0.5, 0), (0.05, 1))]
    for steps in (1, 2, 50):
        model, _ = packed_run(cfgs, steps=steps, decay_mode=decay_mode)
        for k, c in enumerate(cfgs):
            ref = reference_run(c, kind, c.weight_decay, steps=steps, decay_mode=decay_mode)
            assert_member_matches(model, k, ref)
