"""Early stopping inside a pack: a member whose outcome is already certain stops.

A member stops when, for `stop_evals` evaluations in a row, its training accuracy
stayed at or below `stop_train_acc` and its training loss improved by less than
`stop_tol` (relative, over that window): collapsed and flat, not merely slow to
start (a member still learning lowers its loss). Its rows end at the stop, the
stopping row says why (`stop` column), and the pack shrinks: the survivors continue
in a pack without it. A member's arithmetic does not depend on its pack (the packed
matmuls, batch norm and the optimizer act per member, and every per-member reduction
is taken on that member alone: tests/trainer/test_early_stop.py), so the survivors'
numbers are bit-identical to a run without the stop. Models that draw random numbers
while training (dropout) share the generator across the pack; for them the survivors
match only to float tolerance.

Nothing here is on by default: `stop_train_acc = None` never stops, and leaves the
config hash as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

Rows = list[dict[str, Any]]


def stop_reason(rows: Rows, acc: float, evals: int, tol: float) -> str | None:
    """Why this member (its evaluation rows, oldest first) stops now, or None."""
    if len(rows) < evals:
        return None
    window = rows[-evals:]
    if any(r["train_acc"] > acc for r in window):
        return None
    first = window[0]["train_loss"]
    best = min(r["train_loss"] for r in window)
    if best < (1 - tol) * first:  # still improving (NaN compares False: a diverged run stops)
        return None
    return (f"train_acc <= {acc:g} and train loss within {tol:.0%} for {evals} "
            "evaluations")


def select_flat(slots: Sequence[Any], K: int, flat: torch.Tensor,
                keep: Sequence[int]) -> torch.Tensor:
    """The members `keep` of a buffer laid out like a pack's `flat` (slot by slot, a
    block of K * numel each), laid out for a pack of len(keep)."""
    if flat.numel() == 0:  # SGD's unused second moment
        return flat.clone()
    return torch.cat([flat[s.offset + k * s.numel: s.offset + (k + 1) * s.numel]
                      for s in slots for k in keep])


def select_buffer(t: torch.Tensor, K: int, keep: Sequence[int]) -> torch.Tensor:
    """Members `keep` of a per-member buffer: (K, ...) stacked or (K * C,) flat."""
    rows = t.reshape(K, -1)[list(keep)]
    return rows.reshape(len(keep), *t.shape[1:]) if t.shape[0] == K else rows.reshape(-1)


def select_model_state(st: dict, slots: Sequence[Any], K: int, keep: Sequence[int]) -> dict:
    """A pack's model state (PackedResMLP or StackedModule) for the members `keep`."""
    out: dict = {"flat": select_flat(slots, K, st["flat"], keep)}
    for k, v in st.items():
        if k == "buffers":
            out[k] = {n: select_buffer(b, K, keep) for n, b in v.items()}
        elif k != "flat":
            out[k] = select_buffer(v, K, keep)
    return out


def select_opt_state(st: dict, slots: Sequence[Any], K: int, keep: Sequence[int]) -> dict:
    return dict(st, m=select_flat(slots, K, st["m"], keep), v=select_flat(slots, K, st["v"],
                                                                          keep))
