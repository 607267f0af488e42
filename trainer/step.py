"""One training step of a pack: eager, or replayed from a captured CUDA graph.

At small K a GPU step is launch-bound (a hundred-odd small kernels for forward,
backward and update), so on CUDA the whole step -- forward, backward, the flat
optimizer update and the running train-metric sums -- is captured once with the
public torch.cuda.graphs API and replayed. Shapes are static and the data are
already on the device; each step copies its batch into static input buffers and
replays. The step count advances on the device inside the graph (the optimizer's
float64 `step_t`), and its host copy `opt.t` advances here, so checkpoints and
resume are the same as eager.

Capture follows the documented recipe: a few warm-up steps run eagerly on a side
stream first (they are real training steps, counted as such; capture itself runs
nothing), then one step is captured. If capture fails the trainer warns and stays
eager, which computes the same thing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from trainer.model import PackedResMLP
from trainer.optim import PackedOptimizer

WARMUP_STEPS = 3  # eager steps on a side stream before capture (PyTorch's docs use 3)

Amp = Callable[[], contextlib.AbstractContextManager[object]]


def amp(precision: str, device: torch.device) -> Amp:
    """The context the forward passes run in: nothing for fp32; for bf16, torch.autocast,
    which runs matmuls on bf16 inputs (fp32 accumulation) and leaves the weights, the
    optimizer and everything autocast keeps in fp32 alone. Autocast's weight-cast cache
    is off on CUDA: a cache entry must not outlive a captured graph (PyTorch's docs)."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = {"bf16": torch.bfloat16}[precision]
    return lambda: torch.autocast(device.type, dtype=dtype,
                                  cache_enabled=device.type != "cuda")


def member_mean(t: torch.Tensor) -> torch.Tensor:
    """(K,): the mean of each member's slice t[:, k] (t is (N, K, ...)), each reduced on
    its own: a reduction across the K axis adds in an order that depends on K, and a
    member's numbers must not depend on its pack (trainer.early_stop shrinks packs)."""
    return torch.stack([t[:, k].contiguous().mean() for k in range(t.shape[1])])


def upcast(t: torch.Tensor) -> torch.Tensor:
    """A bf16/fp16 output as fp32; fp32 and fp64 (the equivalence tests) untouched."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class TrainStep:
    """Calls advance the pack by one step on the batch (xb (b, K, n_in), yb (b, K, n_out)).
    `acc_sum` (2, K) accumulates per-member training loss and exact-match accuracy; it
    is updated in place (the graph writes into this very tensor)."""

    def __init__(self, model: PackedResMLP, opt: PackedOptimizer, *, graph: bool,
                 log: Callable[[str], None] = print, amp: Amp = contextlib.nullcontext):
        dev = model.flat.device
        self.model, self.opt, self.log, self.amp = model, opt, log, amp
        self.acc_sum = torch.zeros(2, model.K, device=dev, dtype=model.flat.dtype)
        self.want_graph = graph and dev.type == "cuda" and opt.graph_safe
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warm = 0
        self._static: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        self.opt.t += 1  # host copy; the device count advances inside the update
        if self.graph is not None and self._static is not None:
            self._static[0].copy_(xb)
            self._static[1].copy_(yb)
            self.graph.replay()
        elif not self.want_graph:
            self._eager(xb, yb)
        else:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._eager(xb, yb)
            torch.cuda.current_stream().wait_stream(side)
            self.warm += 1
            if self.warm >= WARMUP_STEPS:
                self._capture(xb, yb)

    def _eager(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        with self.amp():
            pred = self.model(xb)
        pred = upcast(pred)  # the loss in fp32 whatever the matmuls ran in
        loss = ((pred - yb) ** 2).mean(dim=(0, 2))  # (K,): members are independent
        self.model.zero_grad()
        loss.sum().backward()
        self.opt.update()
        with torch.no_grad():
            hit = ((pred > 0.5) == (yb > 0.5)).all(-1).to(pred.dtype).mean(0)  # exact
            self.acc_sum += torch.stack([member_mean((pred - yb) ** 2), hit])

    def _capture(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        static = (xb.clone(), yb.clone())
        g = torch.cuda.CUDAGraph()
        torch.cuda.synchronize()
        try:
            with torch.cuda.graph(g):
                self._eager(*static)  # recorded, not run: no state changes here
        except RuntimeError as e:  # e.g. an op that syncs with the host
            self.want_graph = False
            self.log(f"WARNING: CUDA graph capture failed ({e}); training eagerly")
            return
        self.graph, self._static = g, static
