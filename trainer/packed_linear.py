"""The packed linear layer with its own backward: gradients written in place.

K members' linear layers are one batched matmul over activations laid out (N, K*C).
Through autograd, each weight gradient is computed into a fresh tensor and then
added into the flat gradient buffer (AccumulateGrad), and the buffer must be zeroed
every step first: two extra passes over the weights' size, which on CPU -- where a
12-member pack's parameters, gradients and Adam moments (~56 MB) do not fit in the
caches -- cost more than they look. Here the backward writes dW and db straight
into their slices of the flat buffer (`out=`), so those slices need no zeroing.

Under torch.autocast it computes what autocast would (matmul inputs cast to the
autocast dtype, output in that dtype) with the casts made once per step; the bias
gradient is summed in the parameter's dtype. In fp32 it runs the same kernels on
the same operands as autograd's baddbmm backward (bit-identical; tests compare).
"""

from __future__ import annotations

from typing import Any

import torch


class PackedLinear(torch.autograd.Function):
    """y (N, K*out) = h (N, K*in) @ W (K, in, out) + b (K, 1, out), per member; the
    gradients of W and b land in gW and gb (views into the flat gradient buffer)."""

    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
                gW: torch.Tensor, gb: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
        N, (K, i, o) = h.shape[0], W.shape
        # (K, N, in), dense: bmm on the strided view is ~10% (fp32) to 2x (bf16) slower
        hk = h.reshape(N, K, i).transpose(0, 1).to(dt, memory_format=torch.contiguous_format)
        Wd = W.to(dt)
        y = torch.baddbmm(b.to(dt), hk, Wd)  # (K, N, out)
        ctx.save_for_backward(hk, Wd)
        ctx.gW, ctx.gb, ctx.h_dtype = gW, gb, h.dtype
        return y.transpose(0, 1).reshape(N, K * o)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        hk, Wd = ctx.saved_tensors
        (K, N, i), o = hk.shape, Wd.shape[2]
        gyk = gy.reshape(N, K, o).transpose(0, 1).to(Wd.dtype,  # (K, N, out), dense
                                                      memory_format=torch.contiguous_format)
        if ctx.gW.dtype == Wd.dtype:
            torch.bmm(hk.transpose(1, 2), gyk, out=ctx.gW)
        else:  # bf16 matmul, fp32 master gradient: one cast, no accumulate
            ctx.gW.copy_(torch.bmm(hk.transpose(1, 2), gyk))
        torch.sum(gyk, dim=1, keepdim=True, dtype=ctx.gb.dtype, out=ctx.gb)
        dx = None
        if ctx.needs_input_grad[0]:
            dx = torch.bmm(gyk, Wd.transpose(1, 2)).transpose(0, 1).reshape(N, K * i)
            dx = dx.to(ctx.h_dtype)
        return dx, None, None, None, None, None


def packed_linear(h: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PackedLinear at the autocast dtype in effect (W's dtype outside autocast)."""
    dev = h.device.type
    dt = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else W.dtype
    with torch.autocast(dev, enabled=False):  # the casts above are autocast's, made once
        return PackedLinear.apply(h, W, b, W.grad, b.grad, dt)
