"""Weight-decay units: the one place they are converted.

Three conventions are in use for "the weight decay" of decoupled optimizers:

* ``weight_decay`` -- PyTorch's ``AdamW(weight_decay=...)``: each step does
  ``p *= 1 - lr * weight_decay``. Dimensionless, but only meaningful together
  with ``lr``.
* ``decay_per_step`` (d) -- the AdamW paper's lambda: the fraction of each
  weight removed per step, ``p *= 1 - d``. Hence ``d = lr * weight_decay``.
  This is the clean variable for scaling laws (tau_iter = 1/d steps).
* ``lambda_norm`` -- the paper's normalized decay (Loshchilov & Hutter 2019,
  appendix B.1): ``d = lambda_norm * sqrt(b / (B * T))`` with b the batch size,
  B the training-set size and T the number of epochs.

The seed blog plugged ``lambda_norm * sqrt(b/(B*T))`` straight into PyTorch's
``weight_decay``; at lr 1e-3 that is a factor 1000 too weak. Here every result
records all three, converted by :func:`resolve_decay` and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

# Scalars, numpy arrays and pandas Series alike: the analysis converts whole columns here.
X = TypeVar("X")


@dataclass(frozen=True)
class Decay:
    weight_decay: float  # PyTorch units: per-step shrink is lr * weight_decay
    decay_per_step: float  # d = lr * weight_decay (the AdamW paper's lambda)
    lambda_norm: float  # d / sqrt(b / (B * T))


def norm_factor(batch_size: X, train_size: X, epochs: X) -> X:
    """sqrt(b / (B * T)): the paper's normalization of the per-step decay."""
    return (batch_size / (train_size * epochs)) ** 0.5  # type: ignore[operator]


def to_weight_decay(lambda_norm: X, lr: X, batch_size: X, train_size: X, epochs: X) -> X:
    """λ_norm in PyTorch AdamW weight_decay units at this lr, b, B, T."""
    return lambda_norm * norm_factor(batch_size, train_size, epochs) / lr  # type: ignore


def to_lambda_norm(decay_per_step: X, batch_size: X, train_size: X, epochs: X) -> X:
    """The per-step decay d in the paper's normalized units."""
    return decay_per_step / norm_factor(batch_size, train_size, epochs)  # type: ignore


def resolve_decay(
    *,
    lr: float,
    batch_size: int,
    train_size: int,
    epochs: float,
    weight_decay: float | None = None,
    decay_per_step: float | None = None,
    lambda_norm: float | None = None,
) -> Decay:
    """Convert whichever one unit is given into all three."""
    given = [v is not None for v in (weight_decay, decay_per_step, lambda_norm)]
    if sum(given) != 1:
        raise ValueError("give exactly one of weight_decay, decay_per_step, lambda_norm")
    k = norm_factor(batch_size, train_size, epochs)
    if weight_decay is not None:
        d = lr * weight_decay
    elif decay_per_step is not None:
        d = decay_per_step
    else:
        d = lambda_norm * k  # type: ignore[operator]
    return Decay(weight_decay=d / lr, decay_per_step=d, lambda_norm=d / k)


def integrated_decay(decay_per_step: X, factor_sum: X) -> X:
    """The run's total decay Σ_k lr_k·wd = d·Σ_k f(k) under a learning-rate schedule
    (f: trainer.schedule; Σ_k f(k) = `Schedule.integral()`, T steps when constant):
    the quantity the timescale rules integrate, since each step removes lr_k·wd."""
    return decay_per_step * factor_sum  # type: ignore[operator]

