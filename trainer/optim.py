"""Optimizers over the packed model, with a learning rate and decay per member.

Each mirrors its torch.optim counterpart step for step (tests compare them):
  adamw   -- torch.optim.AdamW: decoupled decay p *= 1 - lr*wd, then Adam.
  adam_l2 -- torch.optim.Adam(weight_decay=wd): coupled L2, g += wd*p, then Adam.
  sgdw    -- SGD with momentum and decoupled decay p *= 1 - lr*wd (SGDW).
`wd` is in PyTorch units; see trainer.units for the conversions. With a learning-rate
schedule (trainer.schedule) step k uses lr·f(k) for the Adam step and the decay alike,
as torch.optim does under LambdaLR; the unscheduled path is unchanged bit for bit.

Two implementations of the same update:
  flat  -- one update for the whole pack: plain tensor ops over the flat buffers,
           with lr and decay as tensors spread over the buffer's layout (0-d when
           every member shares the value). A step is a constant number of kernels
           whatever K is, everything stays on the device (the step count too), so
           the update can be captured in a CUDA graph; `compile=True` fuses it
           into one kernel with torch.compile (it is memory-bound at large K).
  fused -- PyTorch's fused multi-tensor Adam kernel once per (member, decayed or
           not) group: 2K calls per step, a private op (torch._fused_adamw_), and
           the step count is written from the host. Kept because on CPU it is the
           faster one (one pass over memory instead of a dozen; see
           docs/benchmarks.md); never captured.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch

from trainer.model import PackedResMLP
from trainer.schedule import WSD_DECAY, Schedule

IMPLS = ("auto", "flat", "fused")


def default_impl(device: torch.device) -> str:
    """flat on accelerators (constant kernel count, graph-capturable); fused on CPU,
    where its single pass over memory wins (docs/benchmarks.md)."""
    return "fused" if device.type == "cpu" else "flat"


class PackedOptimizer:
    def __init__(self, kind: str, model: PackedResMLP, *, lr: Sequence[float],
                 wd: Sequence[float], matrices_only: bool, beta1: float, beta2: float,
                 eps: float, momentum: float, impl: str = "auto", compile: bool = False,
                 schedule: Schedule | None = None):
        if impl not in IMPLS:
            raise ValueError(f"impl: got {impl!r}; allowed: {', '.join(IMPLS)}")
        self.kind, self.model = kind, model
        self.schedule = schedule if schedule is not None and not schedule.trivial else None
        self.impl = default_impl(model.flat.device) if impl == "auto" else impl
        self.beta1, self.beta2, self.eps, self.momentum = beta1, beta2, eps, momentum
        self.t = 0  # host copy of the step count (checkpoints)
        flat = model.flat
        self.m = torch.zeros_like(flat)  # Adam first moment, or SGD momentum buffer
        self.v = torch.zeros_like(flat) if kind != "sgdw" else torch.zeros(0)
        # float64: bias corrections are computed from it on the device, and torch.optim
        # computes them in double precision on the host.
        self.step_t = torch.zeros((), device=flat.device, dtype=torch.float64)
        self.graph_safe = self.impl == "flat"
        if self.impl == "fused":
            self._fused_step_t = torch.zeros((), device=flat.device)
            self.groups = _fused_groups(model, self.m, self.v, kind, lr, wd, matrices_only)
        else:
            self._build_flat(lr, wd, matrices_only, compile)

    # -- flat --------------------------------------------------------------------
    def _build_flat(self, lr: Sequence[float], wd: Sequence[float], matrices_only: bool,
                    compile: bool) -> None:
        model, dt = self.model, self.model.flat.dtype
        self.lr_e = _spread(model, lr, False, dt)
        if self.kind == "adam_l2":  # coupled: g + wd*p
            self.decay_e = _spread(model, wd, matrices_only, dt)
        else:  # decoupled: p * (1 - lr*wd), the factor computed in double as torch does
            self.decay_e = _spread(model, [1 - a * b for a, b in zip(lr, wd)], matrices_only,
                                   dt, off=1.0)
            # scheduled: p * (1 - f(k) * lr*wd), f(k) computed on the device each step
            self.lrwd_e = _spread(model, [a * b for a, b in zip(lr, wd)], matrices_only, dt)
        fn: Callable[..., None] = _sgdw if self.kind == "sgdw" else _adam
        self._eager_fn = fn
        self._fn = torch.compile(fn, fullgraph=True, dynamic=False) if compile else fn

    @torch.no_grad()
    def update(self) -> None:
        """The step's device work only (no host state): what a CUDA graph captures.
        The fused implementation reads the host step count `t`; call step() instead."""
        if self.impl == "fused":
            self._fused_update()
            return
        g = self.model.grad
        lr, decay = self.lr_e, self.decay_e
        if self.schedule is not None:  # from the device's step count: graph-capturable
            f = schedule_factor(self.step_t, self.schedule)
            lr = lr * f
            if self.kind != "adam_l2":
                decay = 1 - self.lrwd_e * f
        if self.kind == "sgdw":
            self.step_t.add_(1)  # Adam's update counts its own steps; SGD's does not
            args: tuple = (self.model.flat, g, self.m, lr, decay, self.momentum)
        else:
            args = (self.model.flat, g, self.m, self.v, lr, decay, self.step_t,
                    self.beta1, self.beta2, self.eps, self.kind == "adam_l2")
        try:
            self._fn(*args)
        except Exception as e:  # noqa: BLE001 - compiling fails before running anything
            if self._fn is self._eager_fn:
                raise
            warnings.warn(f"compile_update: torch.compile failed ({type(e).__name__}: "
                          f"{str(e)[:200]}); using the eager update", stacklevel=2)
            self._fn = self._eager_fn
            self._fn(*args)

    def step(self) -> None:
        self.t += 1
        self.update()

    # -- fused (CPU) ---------------------------------------------------------------
    def _fused_update(self) -> None:
        self.step_t.fill_(self.t)
        self._fused_step_t.fill_(self.t)
        f = 1.0 if self.schedule is None else self.schedule.factor(self.t - 1)
        for p, g, m, v, lr0, wd in self.groups:
            lr = lr0 * f  # exact when unscheduled: f is 1.0
            if self.kind == "sgdw":
                torch._foreach_mul_(p, 1 - lr * wd)
                torch._foreach_mul_(m, self.momentum)
                torch._foreach_add_(m, g)
                torch._foreach_add_(p, m, alpha=-lr)
                continue
            fused = torch._fused_adamw_ if self.kind == "adamw" else torch._fused_adam_
            fused(p, g, m, v, [], [self._fused_step_t] * len(p), lr=lr, beta1=self.beta1,
                  beta2=self.beta2, weight_decay=wd, eps=self.eps, amsgrad=False,
                  maximize=False)

    # -- state -------------------------------------------------------------------
    def state(self) -> dict[str, object]:
        return {"t": self.t, "m": self.m.cpu().clone(), "v": self.v.cpu().clone()}

    @torch.no_grad()
    def load_state(self, st: dict) -> None:
        self.t = int(st["t"])
        self.step_t.fill_(self.t)
        self.m.copy_(st["m"])
        self.v.copy_(st["v"])


def schedule_factor(step: torch.Tensor, s: Schedule) -> torch.Tensor:
    """trainer.schedule's f(k) at k = `step` (the steps done so far, a float64 0-d
    tensor), in tensor ops (no host sync: a CUDA graph replays it)."""
    one = torch.ones_like(step)
    if s.kind == "constant":
        main = one
    else:
        p, m = (step - s.warmup) / (s.total - s.warmup), s.lr_min
        if s.kind == "cosine":
            main = m + (1 - m) * 0.5 * (1 + torch.cos(math.pi * p))
        elif s.kind == "linear":
            main = m + (1 - m) * (1 - p)
        else:
            cut = 1 - WSD_DECAY
            main = torch.where(p < cut, one, m + (1 - m) * (1 - (p - cut) / WSD_DECAY))
    if s.warmup:
        main = torch.where(step < s.warmup, (step + 1) / s.warmup, main)
    return main


def _spread(model: PackedResMLP, values: Sequence[float], matrices_only: bool,
            dtype: torch.dtype, off: float = 0.0) -> torch.Tensor:
    """A per-member value as a tensor that broadcasts over the flat buffer: 0-d when
    it is the same everywhere (saves a pass over memory), else one value per element.
    `off` is what non-matrix parameters get under matrices_only (no decay)."""
    vals = [float(v) for v in values]
    if len(set(vals)) == 1 and (not matrices_only or vals[0] == off):
        # double, like the Python float torch.optim passes; cast where it is applied
        return torch.tensor(vals[0], dtype=torch.float64, device=model.flat.device)
    per = torch.tensor(vals, dtype=dtype)
    if not matrices_only:
        return model.per_element(per)
    parts = [(per if s.is_matrix else torch.full_like(per, off)).view(-1, 1)
             .expand(model.K, s.numel).reshape(-1) for s in model.slots]
    return torch.cat(parts).to(model.flat.device)


# The updates, written like torch.optim's single-tensor Adam (same operations in the
# same order) so float64 runs agree to rounding; lr and decay broadcast.
def _adam(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor,
          lr: torch.Tensor, decay: torch.Tensor, step: torch.Tensor, beta1: float,
          beta2: float, eps: float, coupled: bool) -> None:
    step.add_(1)
    if coupled:
        g = torch.addcmul(g, p, decay.to(p.dtype))  # Adam's L2: grad + wd * param
    else:
        p.mul_(decay.to(p.dtype))  # AdamW: param * (1 - lr * wd)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    bc1 = 1 - torch.pow(beta1, step)
    bc2_sqrt = (1 - torch.pow(beta2, step)).sqrt()
    denom = (v.sqrt() / bc2_sqrt.to(v.dtype)).add_(eps)
    # torch: p.addcdiv_(m, denom, value=-lr / bc1); the step size is a tensor here.
    p.addcmul_(m / denom, (lr / bc1).to(p.dtype), value=-1)


def _sgdw(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, lr: torch.Tensor,
          decay: torch.Tensor, momentum: float) -> None:
    p.mul_(decay.to(p.dtype))
    m.mul_(momentum).add_(g)
    p.addcmul_(m, lr.to(p.dtype), value=-1)


def _fused_groups(model: PackedResMLP, m: torch.Tensor, v: torch.Tensor, kind: str,
                  lr: Sequence[float], wd: Sequence[float], matrices_only: bool) -> list:
    """(params, grads, m, v, lr, wd) per member and decay group."""
    groups: list = []
    for k in range(model.K):
        views = {n: model.member_views(b, k) for n, b in
                 (("p", model.flat), ("g", model.grad), ("m", m), ("v", v))}
        for decayed in (True, False):
            pick = [i for i, (s, _) in enumerate(views["p"])
                    if (s.is_matrix or not matrices_only) == decayed]
            if pick:
                lists = [[views[n][i][1] for i in pick] if n != "v" or kind != "sgdw"
                         else [] for n in ("p", "g", "m", "v")]
                groups.append((*lists, float(lr[k]), float(wd[k]) if decayed else 0.0))
    return groups
