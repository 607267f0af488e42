"""Learning-rate schedules over a run's own length (torch-free: the units use it too).

The multiplier f(k) of the base lr at 0-based step k of a run of T steps, warmup W:

    k < W          (k + 1) / W                        linear warmup, on every schedule
    constant       1
    cosine         m + (1 - m) (1 + cos(pi p)) / 2     p = (k - W) / (T - W) in [0, 1)
    linear         m + (1 - m) (1 - p)
    wsd            1 for p < 1 - WSD_DECAY, then linear to m over the last WSD_DECAY

m = `lr_min` (a fraction of lr). The optimizer applies lr·f(k) at step k, to the Adam
step and to the decoupled decay alike (p *= 1 - lr·f(k)·wd), as torch.optim does under
`torch.optim.lr_scheduler.LambdaLR(opt, f)` stepped once per optimizer step. So T is the
schedule's length: a T = 96 run is no longer the first 96 epochs of a T = 385 one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("constant", "cosine", "linear", "wsd")
# wsd (warmup-stable-decay, Hägele et al. 2024): the fraction of the run, at its end, over
# which the lr decays linearly to lr_min.
WSD_DECAY = 0.2


@dataclass(frozen=True)
class Schedule:
    kind: str = "constant"
    total: int = 1  # T, steps
    warmup: int = 0  # W, steps
    lr_min: float = 0.0  # fraction of lr

    @property
    def trivial(self) -> bool:
        """f(k) = 1 at every step: the optimizer's unscheduled path (bit for bit)."""
        return self.kind == "constant" and self.warmup == 0

    def factor(self, k: int) -> float:
        if k < self.warmup:
            return (k + 1) / self.warmup
        if self.kind == "constant":
            return 1.0
        p, m = (k - self.warmup) / (self.total - self.warmup), self.lr_min
        if self.kind == "cosine":
            return m + (1 - m) * 0.5 * (1 + math.cos(math.pi * p))
        if self.kind == "linear":
            return m + (1 - m) * (1 - p)
        s = 1 - WSD_DECAY
        return 1.0 if p < s else m + (1 - m) * (1 - (p - s) / WSD_DECAY)

    def integral(self) -> float:
        """Σ_k f(k) over the run: total decay Σ_k lr_k·wd = lr·wd·integral() (what the
        timescale rules integrate; T steps for the constant schedule)."""
        if self.trivial:
            return float(self.total)
        return math.fsum(self.factor(k) for k in range(self.total))


def warmup_steps(warmup: float, total: int) -> int:
    """`warmup` as given (steps when >= 1, else a fraction of the run) in steps."""
    return int(warmup) if warmup >= 1 else int(round(warmup * total))
