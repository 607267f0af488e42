"""Optimizers over the packed model, with a learning rate and decay per member.

Each mirrors its torch.optim counterpart step for step (tests compare them):
  adamw   -- torch.optim.AdamW: decoupled decay p *= 1 - lr*wd, then Adam.
  adam_l2 -- torch.optim.Adam(weight_decay=wd): coupled L2, g += wd*p, then Adam.
  sgdw    -- SGD with momentum and decoupled decay p *= 1 - lr*wd (SGDW).
`wd` is in PyTorch units; see trainer.units for the conversions.

The Adam variants call PyTorch's fused multi-tensor kernel (the one behind
`AdamW(fused=True)`) once per (member, decayed-or-not) group: lr and wd are
scalars per member there, so K members cost K or 2K kernel calls per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trainer.model import PackedResMLP


class PackedOptimizer:
    def __init__(self, kind: str, model: PackedResMLP, *, lr: Sequence[float],
                 wd: Sequence[float], matrices_only: bool, beta1: float, beta2: float,
                 eps: float, momentum: float):
        self.kind, self.model = kind, model
        self.beta1, self.beta2, self.eps, self.momentum = beta1, beta2, eps, momentum
        self.t = 0
        flat = model.flat
        self.m = torch.zeros_like(flat)  # Adam first moment, or SGD momentum buffer
        self.v = torch.zeros_like(flat) if kind != "sgdw" else torch.zeros(0)
        self.step_t = torch.zeros((), device=flat.device)  # read by the fused kernel
        # (params, grads, m, v, lr, wd) per member and decay group.
        self.groups: list[tuple[list[torch.Tensor], ...] | tuple] = []
        for k in range(model.K):
            views = {n: model.member_views(b, k) for n, b in
                     (("p", flat), ("g", model.grad), ("m", self.m), ("v", self.v))}
            for decayed in (True, False):
                pick = [i for i, (s, _) in enumerate(views["p"])
                        if (s.is_matrix or not matrices_only) == decayed]
                if pick:
                    lists = [[views[n][i][1] for i in pick] if n != "v" or kind != "sgdw"
                             else [] for n in ("p", "g", "m", "v")]
                    self.groups.append((*lists, float(lr[k]), float(wd[k]) if decayed else 0.0))

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        self.step_t.fill_(self.t)
        for p, g, m, v, lr, wd in self.groups:
            if self.kind == "sgdw":
                torch._foreach_mul_(p, 1 - lr * wd)
                torch._foreach_mul_(m, self.momentum)
                torch._foreach_add_(m, g)
                torch._foreach_add_(p, m, alpha=-lr)
                continue
            fused = torch._fused_adamw_ if self.kind == "adamw" else torch._fused_adam_
            fused(p, g, m, v, [], [self.step_t] * len(p), lr=lr, beta1=self.beta1,
                  beta2=self.beta2, weight_decay=wd, eps=self.eps, amsgrad=False,
                  maximize=False)

    def state(self) -> dict[str, object]:
        return {"t": self.t, "m": self.m.cpu().clone(), "v": self.v.cpu().clone()}

    @torch.no_grad()
    def load_state(self, st: dict) -> None:
        self.t = int(st["t"])
        self.m.copy_(st["m"])
        self.v.copy_(st["v"])
