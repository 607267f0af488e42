"""The whole-pack ("flat") optimizer update against torch.optim and the fused path."""

import pytest
import torch

from tests.trainer.test_equivalence import TINY, assert_member_matches, reference_run
from trainer import build, preset
from trainer.loop import load_data
from trainer.model import PackedResMLP, reference_model
from trainer.optim import PackedOptimizer


def packed_run(cfgs, steps, impl, decay_mode="all"):
    data = load_data(cfgs, torch.device("cpu"))
    x, y = data["train"].x, data["train"].y
    c0 = cfgs[0]
    model = PackedResMLP([reference_model(x.shape[-1], y.shape[-1], c0.width, c0.depth,
                                          c0.batch_norm, c.bn_eps, c.seed) for c in cfgs],
                         [c.bn_eps for c in cfgs], torch.device("cpu"))
    opt = PackedOptimizer(c0.optimizer, model, lr=[c.lr for c in cfgs],
                          wd=[c.decay.weight_decay for c in cfgs],
                          matrices_only=decay_mode == "matrices", beta1=c0.beta1,
                          beta2=c0.beta2, eps=c0.adam_eps, momentum=c0.momentum, impl=impl)
    b, spe = c0.batch_size, c0.steps_per_epoch
    for step in range(steps):
        i = step % spe
        loss = ((model(x[i * b : (i + 1) * b]) - y[i * b : (i + 1) * b]) ** 2).mean(dim=(0, 2))
        model.zero_grad()
        loss.sum().backward()
        opt.step()
    return model, opt


@pytest.mark.parametrize("kind, decay_mode", [("adamw", "all"), ("adamw", "matrices"),
                                              ("adam_l2", "all"), ("sgdw", "all"),
                                              ("sgdw", "matrices")])
@pytest.mark.parametrize("uniform_lr", [True, False], ids=["shared-lr", "per-member-lr"])
def test_flat_update_matches_torch_optim_in_float64(kind, decay_mode, uniform_lr, float64):
    """Members differing in decay and seed (and lr), 60 steps: a per-element and a
    0-d (shared) lr must both reproduce torch.optim to float64 rounding."""
    base = build(preset("seed"), {**TINY, "optimizer": kind, "decay_mode": decay_mode,
                                  "lr": 1e-2 if kind == "sgdw" else 1e-3})
    lrs = (base.lr,) * 3 if uniform_lr else (base.lr, 2 * base.lr, base.lr / 2)
    cfgs = [base.replace(weight_decay=w, seed=s, lr=lr)
            for w, s, lr in zip((0.5, 0.05, 0.0), (0, 1, 2), lrs)]
    model, _ = packed_run(cfgs, 60, "flat", decay_mode)
    for k, c in enumerate(cfgs):
        ref = reference_run(c, kind, c.weight_decay, steps=60, decay_mode=decay_mode)
        assert_member_matches(model, k, ref, rtol=1e-9, atol=1e-11)


def test_flat_and_fused_agree_in_float32_and_count_steps_alike():
    base = build(preset("seed"), TINY)
    cfgs = [base.replace(weight_decay=w, seed=s) for w, s in ((0.1, 0), (1.0, 1))]
    (a, oa), (b, ob) = packed_run(cfgs, 30, "flat"), packed_run(cfgs, 30, "fused")
    torch.testing.assert_close(a.flat, b.flat, rtol=1e-4, atol=1e-5)
    assert oa.t == ob.t == 30 and oa.step_t.item() == ob.step_t.item() == 30


def test_flat_update_is_a_constant_number_of_ops_whatever_k():
    """The point of the flat update: no per-member loop (one kernel per op on a GPU)."""
    from torch.profiler import ProfilerActivity, profile

    def ops(K):
        cfgs = [build(preset("tiny"), {"seed": s}) for s in range(K)]
        model, opt = packed_run(cfgs, 1, "flat")
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            opt.update()
        return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))

    assert ops(1) == ops(3) == ops(8)
