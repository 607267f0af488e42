"""Any nn.Module packed K members at a time: stacked parameters, one vmapped call.

Members are one architecture with their own parameters and buffers. Every parameter
is a dense (K, ...) view into one flat buffer (its grad into another), laid out like
trainer.model.PackedResMLP, so trainer.optim's per-member optimizer runs unchanged.
A forward pass is ``torch.func.vmap`` over ``torch.func.functional_call`` of the
member's module with that member's parameters *and buffers* (in_dims 0 for both):
batch norm then normalizes with each member's own batch statistics in training mode,
updates each member's own running statistics in place, and uses them in eval mode.
A pack of one calls the module directly (no vmap). Whether a model packs is decided
by `pack_check` on the driver: a vmapped pair must compute what each member computes
alone (outputs, gradients, buffers; train and eval mode), else one member per trial.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from trainer.errors import BadInput as ConfigError
from trainer.model import FlatPacked, Slot
from trainer.step import Amp, TrainStep, member_mean, upcast

if TYPE_CHECKING:
    from trainer.optim import PackedOptimizer
    from trainer.refs import Objective

Scores = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]


class StackedModule(FlatPacked):
    """K members of one module architecture; x (N, K, n_in) -> outputs (N, K, ...)."""

    def __init__(self, refs: Sequence[nn.Module], device: torch.device):
        K = self.K = len(refs)
        self.base = copy.deepcopy(refs[0]).to(device)  # structure only: tensors swapped in
        named = [dict(r.named_parameters()) for r in refs]
        shapes = {n: (p.shape, p.dtype) for n, p in named[0].items()}
        for r, n in zip(refs[1:], named[1:]):
            bufs = {k: (b.shape, b.dtype) for k, b in r.named_buffers()}
            if {k: (p.shape, p.dtype) for k, p in n.items()} != shapes or bufs != {
                    k: (b.shape, b.dtype) for k, b in refs[0].named_buffers()}:
                raise ConfigError("model", "members of a pack built modules with different "
                                  "parameters or buffers; allowed: one architecture per pack "
                                  "(it may depend on model_args, not on the seed)")
        dtypes = {p.dtype for p in named[0].values()}
        if len(dtypes) != 1 or not next(iter(dtypes)).is_floating_point:
            raise ConfigError("model", f"parameters of dtypes {sorted(map(str, dtypes))}; "
                              "allowed: one floating dtype")
        self.slots: list[Slot] = []
        off = 0
        for name, p in named[0].items():
            self.slots.append(Slot(name, tuple(p.shape), off, p.numel(), p.dim() >= 2))
            off += K * p.numel()
        dt = next(iter(dtypes))
        self.flat = torch.empty(off, device=device, dtype=dt)
        self.grad = torch.zeros(off, device=device, dtype=dt)
        self.p: dict[str, torch.Tensor] = {}
        for s in self.slots:
            view = self.flat[s.offset : s.offset + K * s.numel].view(K, *s.shape)
            view.copy_(torch.stack([n[s.name].detach() for n in named]))
            view.requires_grad_(True)
            view.grad = self.grad[s.offset : s.offset + K * s.numel].view(K, *s.shape)
            self.p[s.name] = view
        self.buffers = {name: torch.stack([dict(r.named_buffers())[name].detach()
                                           for r in refs]).to(device)
                        for name, _ in refs[0].named_buffers()}
        self.training = True
        self._vcall = vmap(self._call, in_dims=(0, 0, 1), out_dims=1, randomness="error")

    def _call(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
              x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.base.train(self.training)
        if self.K == 1:  # alone: the module itself, on views of member 0
            out = self._call({n: v[0] for n, v in self.p.items()},
                             {n: b[0] for n, b in self.buffers.items()}, x[:, 0])
            return out.unsqueeze(1)
        return self._vcall(self.p, self.buffers, x)

    def state(self) -> dict[str, object]:
        return {"flat": self.flat.detach().cpu().clone(),
                "buffers": {k: v.cpu().clone() for k, v in self.buffers.items()}}

    @torch.no_grad()
    def load_state(self, st: dict) -> None:
        self.flat.copy_(st["flat"])
        for k, v in self.buffers.items():
            v.copy_(st["buffers"][k])


# -- losses and scores, per member ---------------------------------------------------
def member_loss(pred: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """(K,): each member's mean loss over the batch. pred (N, K, ...), y (N, K[, ...])."""
    if loss == "cross_entropy":
        return F.cross_entropy(pred.movedim(-1, 1), y, reduction="none").mean(0)
    return ((pred - y) ** 2).flatten(2).mean(dim=(0, 2))


def reported_loss(pred: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """member_loss's values with each member reduced on its own (trainer.step.member_mean):
    what is reported, independent of the pack (the training gradient is the same)."""
    with torch.no_grad():
        if loss == "cross_entropy":
            return member_mean(F.cross_entropy(pred.movedim(-1, 1), y, reduction="none"))
        return member_mean((pred - y) ** 2)


def member_hits(pred: torch.Tensor, y: torch.Tensor, accuracy: str) -> tuple[torch.Tensor, ...]:
    """(right (N, K), per-output right (N, K, n) or None) as pred's dtype."""
    if accuracy == "argmax":
        want = y if y.dim() == 2 else y.argmax(-1)
        return ((pred.argmax(-1) == want).to(pred.dtype),)
    hit = ((pred > 0.5) == (y > 0.5)).flatten(2)
    return hit.all(-1).to(pred.dtype), hit.to(pred.dtype)


def scores_fn(objective: Objective) -> Scores:
    """Per member: loss, accuracy, and per-output accuracy (= accuracy for argmax)."""
    def scores(out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hits = member_hits(out, y, objective.accuracy)
        acc = hits[0].mean(0)
        bit = hits[1].mean(dim=(0, 2)) if len(hits) > 1 else acc
        return reported_loss(out, y, objective.loss), acc, bit

    return scores


class UserStep(TrainStep):
    """One eager step of a stacked user model with the task's loss (no CUDA graph)."""

    def __init__(self, model: StackedModule, opt: PackedOptimizer, objective: Objective,
                 amp: Amp = contextlib.nullcontext):
        super().__init__(model, opt, graph=False, amp=amp)  # type: ignore[arg-type]
        self.objective = objective

    def _eager(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        with self.amp():
            pred = self.model(xb)
        pred = upcast(pred)  # the task's loss in fp32 whatever the matmuls ran in
        loss = member_loss(pred, yb, self.objective.loss)  # members are independent
        self.model.zero_grad()
        loss.sum().backward()
        self.opt.update()
        with torch.no_grad():
            hit = member_hits(pred, yb, self.objective.accuracy)[0].mean(0)
            self.acc_sum += torch.stack([reported_loss(pred, yb, self.objective.loss),
                                         hit]).to(self.acc_sum.dtype)


# -- the driver's packability check ----------------------------------------------------
def pack_check(refs: Sequence[nn.Module], xb: torch.Tensor) -> tuple[bool, str]:
    """(True, "") when two members vmapped compute exactly what each computes alone:
    outputs and gradients in training mode, running buffers, outputs in eval mode.
    `refs`: the two members' freshly built modules (trainer.user.build_model)."""
    alone = [copy.deepcopy(r) for r in refs]
    try:
        pack = StackedModule(refs, torch.device("cpu"))
        x2 = torch.stack([xb, xb.flip(0)], 1)
        out = pack(x2)
        out.float().sum().backward()
        pack.training = False
        with torch.no_grad():
            out_eval = pack(x2)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever vmap refuses, the member runs alone
        return False, f"vmap failed ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
    for k, m in enumerate(alone):
        m.train()
        o = m(x2[:, k])
        o.float().sum().backward()
        m.eval()
        with torch.no_grad():
            o_eval = m(x2[:, k])
        same = _close(o, out[:, k]) and _close(o_eval, out_eval[:, k]) and all(
            _close(p.grad, pack.p[n].grad[k]) for n, p in m.named_parameters()
            if p.grad is not None) and all(
            _close(b, pack.buffers[n][k]) for n, b in m.named_buffers())
        if not same:
            return False, "vmapped members compute something else than each member alone"
    return True, ""


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape:
        return False
    if not a.is_floating_point():
        return bool((a == b).all())
    return bool(torch.allclose(a.detach().double(), b.detach().double(), rtol=1e-4,
                               atol=1e-5))
