"""The packed linear layer's own backward (trainer.packed_linear) against autograd's.

Both paths of PackedResMLP must give the same outputs and the same flat gradient
buffer, bit for bit in fp32 and fp64, step after step (so the partial zeroing of the
buffer is checked too); under bf16 autocast they agree to bf16's rounding.
"""

from __future__ import annotations

import pytest
import torch

from trainer import build, preset
from trainer.loop import load_data
from trainer.model import PackedResMLP, reference_model


def _steps(K: int, batch_norm: bool, dtype: torch.dtype, own: bool, amp: bool = False,
           n: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    cfg = build(preset("seed"), dict(width=48, batch_norm=batch_norm, steps=10))
    cfgs = [cfg.replace(seed=s, bn_eps=1e-2 * (s + 1)) for s in range(K)]  # per-member eps
    data = load_data(cfgs, torch.device("cpu"))
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # the packed buffers take the default dtype
    try:
        refs = [reference_model(64, 32, 48, 2, batch_norm, c.bn_eps, c.seed) for c in cfgs]
        m = PackedResMLP(refs, [c.bn_eps for c in cfgs], torch.device("cpu"), own_backward=own)
    finally:
        torch.set_default_dtype(prev)
    out = []
    for i in range(n):  # no optimizer: a stale gradient would add up across steps
        rows = slice(32 * i, 32 * (i + 1))
        x, y = data["train"].x[rows].to(dtype), data["train"].y[rows]
        m.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            pred = m(x)
        ((pred.to(dtype) - y.to(dtype)) ** 2).mean(dim=(0, 2)).sum().backward()
        out.append((pred.detach().clone(), m.grad.clone()))
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("batch_norm", [True, False], ids=["bn", "no-bn"])
@pytest.mark.parametrize("K", [1, 3])
def test_own_backward_is_autograd_to_the_bit(K: int, batch_norm: bool, dtype: torch.dtype):
    want = _steps(K, batch_norm, dtype, own=False)
    got = _steps(K, batch_norm, dtype, own=True)
    for (p, g), (pw, gw) in zip(got, want):
        assert torch.equal(p, pw)
        assert torch.equal(g, gw), f"max |diff| {(g - gw).abs().max().item()}"
        assert g.abs().sum() > 0


def test_own_backward_under_bf16_autocast_agrees_to_bf16_rounding():
    want = _steps(3, True, torch.float32, own=False, amp=True)
    got = _steps(3, True, torch.float32, own=True, amp=True)
    for (p, g), (pw, gw) in zip(got, want):
        assert p.dtype == pw.dtype == torch.bfloat16
        torch.testing.assert_close(p, pw, rtol=0, atol=0)  # same casts, same kernels
        assert torch.nn.functional.cosine_similarity(g, gw, dim=0) > 0.9999
        assert (g - gw).abs().max() < 2**-7 * gw.abs().max()  # bf16 epsilon (bias sums)


def test_cpu_packs_use_it_and_cuda_keeps_autograd():
    refs = [reference_model(64, 32, 16, 1, True, 1e-2, 0)]
    assert PackedResMLP(refs, [1e-2], torch.device("cpu")).own_backward
    assert not PackedResMLP(refs, [1e-2], torch.device("meta")).own_backward
