"""The seed's residual MLP, plain (the reference) and packed along a member axis K.

Packing trains K variants with identical shapes in one process: every weight has
a leading K axis, linear layers are batched matmuls, and batch norm keeps
statistics per member. All parameters live in one flat buffer (and their grads
in another) so the optimizer is a handful of vector ops instead of a loop over
tensors; each parameter is a dense (K, ...) view into it.

Member k is initialized by building the plain reference model under
torch.manual_seed(seed_k) and copying it in, so a packed member equals what
PyTorch's own nn.Linear / nn.BatchNorm1d give for that seed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.packed_linear import packed_linear

BN_MOMENTUM = 0.1  # PyTorch's default


class Block(nn.Module):
    """Linear -> BN -> ReLU -> Linear -> BN -> add input -> ReLU."""

    def __init__(self, width: int, batch_norm: bool, bn_eps: float):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.bn1 = nn.BatchNorm1d(width, eps=bn_eps) if batch_norm else nn.Identity()
        self.fc2 = nn.Linear(width, width)
        self.bn2 = nn.BatchNorm1d(width, eps=bn_eps) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn2(self.fc2(F.relu(self.bn1(self.fc1(x))))))


class ResMLP(nn.Module):
    """Linear(n_in -> width), `depth` residual blocks, Linear(width -> n_out), Sigmoid."""

    def __init__(self, n_in: int, n_out: int, width: int = 256, depth: int = 2,
                 batch_norm: bool = True, bn_eps: float = 1e-5):
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.blocks = nn.ModuleList(Block(width, batch_norm, bn_eps) for _ in range(depth))
        self.out = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for blk in self.blocks:
            h = blk(h)
        return torch.sigmoid(self.out(h))


def reference_model(n_in: int, n_out: int, width: int, depth: int, batch_norm: bool,
                    bn_eps: float, seed: int) -> ResMLP:
    """The plain model PyTorch initializes for `seed` (global RNG left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ResMLP(n_in, n_out, width, depth, batch_norm, bn_eps)


@dataclass(frozen=True)
class Slot:
    name: str  # reference parameter name, e.g. "blocks.0.fc1.weight"
    shape: tuple[int, ...]  # packed shape without K
    offset: int  # into the flat buffer (a block of K * numel)
    numel: int  # per member
    is_matrix: bool  # a linear layer's weight (decayed under decay_mode="matrices")


class FlatPacked:
    """What the optimizer and the loop use of a pack whose K members' parameters live
    in one flat buffer (`flat`, grads in `grad`) laid out by `slots`, with per-parameter
    (K, ...) views in `p`: PackedResMLP and trainer.vmapped's StackedModule."""

    K: int
    slots: list[Slot]
    flat: torch.Tensor
    grad: torch.Tensor
    p: dict[str, torch.Tensor]

    def per_element(self, values: torch.Tensor, matrices_only: bool = False) -> torch.Tensor:
        """A per-member value (K,) spread over the flat buffer's layout."""
        parts = []
        for s in self.slots:
            v = values if (s.is_matrix or not matrices_only) else torch.zeros_like(values)
            parts.append(v.view(self.K, 1).expand(self.K, s.numel).reshape(-1))
        return torch.cat(parts).to(self.flat.device)

    def member_views(self, buf: torch.Tensor, k: int) -> list[tuple[Slot, torch.Tensor]]:
        """Member k's slice of each parameter in a buffer laid out like `flat`."""
        return [(s, buf[s.offset + k * s.numel : s.offset + (k + 1) * s.numel])
                for s in self.slots]

    @torch.no_grad()
    def weight_norms(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per member: (sum of per-tensor L2 norms, sum of squares), each (K,). Each
        member's norms are reduced on their own: a reduction across the K axis (a
        (K, n).norm(dim=1), a (P, K).sum(0)) adds in an order that depends on K, and a
        member's numbers must not depend on its pack (early stopping shrinks packs)."""
        flat = [p.reshape(self.K, -1) for p in self.p.values()]
        norms = [torch.stack([p[k].norm() for p in flat]) for k in range(self.K)]
        return (torch.stack([n.sum() for n in norms]),
                torch.stack([(n * n).sum() for n in norms]))

    def zero_grad(self) -> None:
        self.grad.zero_()


class PackedResMLP(FlatPacked):
    def __init__(self, refs: Sequence[ResMLP], bn_eps: Sequence[float], device: torch.device,
                 own_backward: bool | None = None):
        K = self.K = len(refs)
        ref = refs[0]
        self.depth, self.batch_norm = len(ref.blocks), bool(ref.blocks) and isinstance(
            ref.blocks[0].bn1, nn.BatchNorm1d)
        self.slots: list[Slot] = []
        off = 0
        for name, p in ref.named_parameters():
            # nn.Linear weight (out, in) is stored transposed, (in, out), for x @ W.
            shape = tuple(p.shape[::-1]) if p.dim() == 2 else (1, p.shape[0])
            self.slots.append(Slot(name, shape, off, p.numel(), p.dim() == 2))
            off += K * p.numel()
        self.flat = torch.empty(off, device=device)  # all parameters
        self.grad = torch.zeros(off, device=device)  # all gradients
        self.p: dict[str, torch.Tensor] = {}
        for s in self.slots:
            vals = [dict(r.named_parameters())[s.name].detach() for r in refs]
            block = torch.stack([v.t() if v.dim() == 2 else v.unsqueeze(0) for v in vals])
            view = self.flat[s.offset : s.offset + K * s.numel].view(K, *s.shape)
            view.copy_(block)
            view.requires_grad_(True)
            view.grad = self.grad[s.offset : s.offset + K * s.numel].view(K, *s.shape)
            self.p[s.name] = view
        self.buffers: dict[str, torch.Tensor] = {}
        for name, _ in ref.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                stacked = torch.stack([dict(r.named_buffers())[name] for r in refs])
                self.buffers[name] = stacked.reshape(-1).to(device)  # (K * C,)
        # CPU: linear layers write their gradients into the flat buffer themselves
        # (trainer.packed_linear; 3-4% with two packs side by side, docs/benchmarks.md);
        # CUDA keeps the measured, graph-captured autograd path. Both compute the same
        # bits (tests/trainer/test_packed_linear.py). A linear layer is one with a
        # weight matrix: its weight and bias slots are the ones it writes.
        self.own_backward = device.type == "cpu" if own_backward is None else own_backward
        linear = {s.name.rsplit(".", 1)[0] for s in self.slots if s.is_matrix}
        self._autograd_slices = [
            slice(s.offset, s.offset + K * s.numel) for s in self.slots
            if not (self.own_backward and s.name.rsplit(".", 1)[0] in linear)]
        self.eps = torch.tensor(list(bn_eps), device=device)
        self.uniform_eps = bn_eps[0] if len(set(bn_eps)) == 1 else None
        self.training = True

    # -- forward ---------------------------------------------------------------
    # Activations are (N, K * C): member k owns columns k*C:(k+1)*C. Batch norm is
    # then one native op over K*C channels (several times faster than a reduction
    # over the middle axis of (K, N, C)); linear layers are batched matmuls.
    def _linear(self, h: torch.Tensor, name: str) -> torch.Tensor:
        W, b = self.p[f"{name}.weight"], self.p[f"{name}.bias"]
        if self.own_backward:
            return packed_linear(h, W, b)
        if self.K == 1:
            return torch.addmm(b[0, 0], h, W[0])
        hk = h.view(h.shape[0], self.K, -1).transpose(0, 1)  # (K, N, in)
        return torch.baddbmm(b, hk, W).transpose(0, 1).reshape(h.shape[0], -1)

    def _bn(self, h: torch.Tensor, name: str) -> torch.Tensor:
        if not self.batch_norm:
            return h
        g, b = self.p[f"{name}.weight"].view(-1), self.p[f"{name}.bias"].view(-1)
        rm, rv = self.buffers[f"{name}.running_mean"], self.buffers[f"{name}.running_var"]
        if self.uniform_eps is not None:
            return F.batch_norm(h, rm, rv, g, b, self.training, BN_MOMENTUM, self.uniform_eps)
        # Members with different eps: the same computation by hand.
        N, K = h.shape[0], self.K
        hk = h.view(N, K, -1)
        if self.training:
            var, mean = torch.var_mean(hk, dim=0, correction=0)  # (K, C)
            with torch.no_grad():  # PyTorch tracks the unbiased variance
                rm.mul_(1 - BN_MOMENTUM).add_(mean.view(-1), alpha=BN_MOMENTUM)
                rv.mul_(1 - BN_MOMENTUM).add_(var.view(-1) * (N / max(N - 1, 1)),
                                               alpha=BN_MOMENTUM)
        else:
            mean, var = rm.view(K, -1), rv.view(K, -1)
        xhat = (hk - mean) * torch.rsqrt(var + self.eps.view(K, 1))
        return torch.addcmul(b.view(K, -1), xhat, g.view(K, -1)).view(N, -1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, K, n_in) -> sigmoid outputs (N, K, n_out)."""
        h = self._linear(x.reshape(x.shape[0], -1), "inp")
        for i in range(self.depth):
            b = f"blocks.{i}"
            z = F.relu(self._bn(self._linear(h, f"{b}.fc1"), f"{b}.bn1"))
            h = F.relu(h + self._bn(self._linear(z, f"{b}.fc2"), f"{b}.bn2"))
        return torch.sigmoid(self._linear(h, "out")).view(x.shape[0], self.K, -1)

    def zero_grad(self) -> None:
        """Zero what autograd accumulates into; own-backward linear layers overwrite theirs."""
        if len(self._autograd_slices) == len(self.slots):
            self.grad.zero_()
            return
        for sl in self._autograd_slices:
            self.grad[sl].zero_()

    def state(self) -> dict[str, torch.Tensor]:
        return {"flat": self.flat.detach().cpu().clone(),
                **{k: v.cpu().clone() for k, v in self.buffers.items()}}

    @torch.no_grad()
    def load_state(self, st: dict[str, torch.Tensor]) -> None:
        self.flat.copy_(st["flat"])
        for k, v in self.buffers.items():
            v.copy_(st[k])


# The grads are views into one flat buffer with the same (dense) strides as the
# params; autograd accumulates into them in place. It warns when a param is a
# view of a larger buffer even though the layouts match.
warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout")
