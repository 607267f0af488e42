"""One training run's configuration: a frozen, validated dataclass.

A config describes one *member*. Members whose configs differ only in
:data:`PACKABLE` keys can be trained together in one process (see
:mod:`trainer.model`); everything else must match.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

from trainer.errors import BadInput
from trainer.refs import check_user_keys
from trainer.schedule import SCHEDULES, Schedule, warmup_steps
from trainer.units import Decay, resolve_decay

ConfigError = BadInput  # the trainer's name for bad input (trainer/errors.py)


# Keys that may differ between members of one pack.
PACKABLE = ("weight_decay", "decay_per_step", "lambda_norm", "seed", "data_seed", "bn_eps", "lr")
# The decay units, in trainer.units' order (Decay's fields): a config gives one of them.
DECAY_KEYS = tuple(f.name for f in fields(Decay))
# Allowed values of the string keys. `task` is not here: its names are the task
# registry's (trainer.registry), checked with the task references (trainer.refs).
CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": ("adamw", "adam_l2", "sgdw"),
    "decay_mode": ("all", "matrices"),
    "device": ("auto", "cpu", "cuda"),
    "precision": ("fp32", "bf16"),
    "lr_schedule": SCHEDULES,
}
# Keys that change how a run is executed, not what it computes: left out of the hash.
EXECUTION_ONLY = ("device", "threads", "checkpoint_every", "cuda_graph", "compile_update")
USER_KEYS = ("model", "task_args", "model_args")  # trainer.refs / trainer.user
# What resolved() records besides the fields: the run's length in its other spellings.
DERIVED_KEYS = ("total_steps", "epochs_T", "steps_per_epoch")
MAX_THREADS = 1024  # torch threads of one process; more is a typo (or a forged plan)
MAX_INT = 2**63 - 1  # every integer key: the data and the schedule are int64 tensors


@dataclass(frozen=True)
class TrainConfig:
    # task
    task: str = "binary_add"
    train_size: int = 5000  # B, training pairs
    val_size: int = 500  # in-domain validation pairs
    test_size: int = 500  # out-of-domain test pairs
    train_digits: tuple[int, ...] = (2, 4)  # decimal digit counts of training operands
    test_digits: tuple[int, ...] = (3,)
    bits: int = 32  # bits per number, LSB first
    noise: float = 0.0  # probability that a training label bit is replaced by a random bit
    modulus: int = 97  # modular_add: p
    # your own task / model (trainer.user): task = "package.module:function" as well
    model: str | None = None  # "package.module:function"; None: the built-in ResMLP
    task_args: dict[str, Any] = field(default_factory=dict, hash=False)
    model_args: dict[str, Any] = field(default_factory=dict, hash=False)
    # model
    width: int = 256
    depth: int = 2  # residual blocks
    batch_norm: bool = True
    bn_eps: float = 1e-5  # PyTorch default; the seed preset uses 1e-2 (the blog's fix)
    # optimizer
    optimizer: str = "adamw"
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.98
    adam_eps: float = 1e-3
    momentum: float = 0.9  # sgdw only
    weight_decay: float | None = None  # PyTorch units (see trainer.units)
    decay_per_step: float | None = None  # = lr * weight_decay
    lambda_norm: float | None = None  # decay_per_step / sqrt(b / (B * T))
    decay_mode: str = "all"  # all parameters (the seed) or weight matrices only
    # learning-rate schedule over the run's own total steps (trainer.schedule); the lr
    # above is its peak, and the decoupled decay follows it (p *= 1 - lr_t * wd)
    lr_schedule: str = "constant"  # constant | cosine | linear | wsd
    warmup: float = 0.0  # steps (>= 1) or a fraction of the run (< 1); linear from 0
    lr_min: float = 0.0  # fraction of lr at the end of cosine / linear / wsd
    # schedule
    batch_size: int = 64  # b
    epochs: int | None = None  # T; steps per epoch = floor(B / b), last partial batch dropped
    steps: int | None = None  # alternative to epochs
    shuffle: bool = False  # the seed keeps one fixed random order
    eval_every: int | None = None  # steps; default once per epoch
    checkpoint_every: int = 2000  # steps
    seed: int = 0  # initialization (and data unless data_seed is set)
    data_seed: int | None = None
    # execution
    device: str = "auto"
    threads: int | None = None  # torch threads; default: the CPUs this process may use
    cuda_graph: bool = True  # CUDA: capture the whole step in a CUDA graph (eager if False)
    # CUDA: fuse the optimizer update into one kernel with torch.compile (~10-30 s to
    # compile); None = when it pays: the run's K * params * steps >= COMPILE_MIN_WORK.
    compile_update: bool | None = None
    # Matmul precision: fp32 (exact, the default) or bf16 (torch.autocast: matmuls take
    # bf16 inputs, ~1.3x faster on CPUs with AVX512-BF16; weights, optimizer state and
    # the loss stay fp32). It changes the numbers, so it is part of the config hash.
    precision: str = "fp32"
    # early stopping inside a pack (trainer.early_stop); None never stops. A member stops
    # when its train accuracy stays <= stop_train_acc for stop_evals evaluations in a
    # row while its train loss improves by less than stop_tol (relative): collapsed.
    stop_train_acc: float | None = None  # fraction, e.g. 0.02
    stop_evals: int = 5  # evaluations
    stop_tol: float = 0.01  # relative change of the train loss over those evaluations

    def __post_init__(self) -> None:
        if self.epochs is None and self.steps is None:
            object.__setattr__(self, "epochs", 100)  # frozen: the one default-filling write
        _validate(self)

    # -- derived quantities -------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return self.train_size // self.batch_size

    @property
    def total_steps(self) -> int:
        return self.steps if self.steps is not None else self.epochs * self.steps_per_epoch  # type: ignore[operator]

    @property
    def epochs_T(self) -> float:
        """T, epochs of data seen (fractional when the run is given in steps)."""
        return self.total_steps / self.steps_per_epoch

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.lr_schedule, self.total_steps,
                        warmup_steps(self.warmup, self.total_steps), self.lr_min)

    @property
    def eval_interval(self) -> int:
        return self.eval_every or self.steps_per_epoch

    @property
    def effective_data_seed(self) -> int:
        return self.seed if self.data_seed is None else self.data_seed

    @property
    def decay(self) -> Decay:
        given = {k: getattr(self, k) for k in DECAY_KEYS if getattr(self, k) is not None}
        if not given:
            given = {"weight_decay": 0.0}
        return resolve_decay(
            lr=self.lr,
            batch_size=self.batch_size,
            train_size=self.train_size,
            epochs=self.epochs_T,
            **given,
        )

    # -- identity -------------------------------------------------------------
    def resolved(self) -> dict[str, Any]:
        """All fields plus every derived unit, as recorded with results."""
        d = dataclasses.asdict(self)
        for k in USER_KEYS:  # absent for the built-ins: their hashes and tables stay as they were
            if d[k] in (None, {}):
                d.pop(k)
            elif isinstance(d[k], dict):
                d[k] = json.dumps(d[k], sort_keys=True)
        if d["precision"] == "fp32":  # the default: hashes and tables stay as they were
            d.pop("precision")
        if self.stop_train_acc is None:  # likewise: no early stopping
            for k in ("stop_train_acc", "stop_evals", "stop_tol"):
                d.pop(k)
        if self.lr_schedule == "constant":  # likewise (lr_min has no effect there)
            d.pop("lr_min")
            if self.warmup == 0:
                d.pop("lr_schedule")
                d.pop("warmup")
        d.update(dataclasses.asdict(self.decay))
        d.update(
            total_steps=self.total_steps,
            epochs_T=self.epochs_T,
            steps_per_epoch=self.steps_per_epoch,
            data_seed=self.effective_data_seed,
            eval_every=self.eval_interval,
        )
        return d

    def canonical(self) -> dict[str, Any]:
        """What determines the result: decay as PyTorch wd, length as steps."""
        d = self.resolved()
        for k in (*EXECUTION_ONLY, "decay_per_step", "lambda_norm", "epochs", "steps", "epochs_T"):
            d.pop(k)
        return {k: _canon(v) for k, v in sorted(d.items())}

    def config_hash(self) -> str:
        blob = json.dumps(self.canonical(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> TrainConfig:
        """Like dataclasses.replace, but setting one decay unit clears the others."""
        if any(k in changes for k in DECAY_KEYS):
            changes = {**{k: None for k in DECAY_KEYS}, **changes}
        if "epochs" in changes and "steps" not in changes:
            changes["steps"] = None
        if "steps" in changes and "epochs" not in changes:
            changes["epochs"] = None
        return dataclasses.replace(self, **changes)


def _canon(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.12g}")
    if isinstance(v, tuple):
        return list(v)
    return v


FIELDS = {f.name: f for f in fields(TrainConfig)}


def _validate_schedule(c: TrainConfig) -> None:
    w = c.warmup
    if not (math.isfinite(w) and w >= 0 and (w < 1 or w == int(w))):
        raise ConfigError("warmup", f"got {w}; must be a whole number of steps >= 1, or a "
                          "fraction of the run in [0, 1)")
    if not (math.isfinite(c.lr_min) and 0 <= c.lr_min <= 1):
        raise ConfigError("lr_min", f"got {c.lr_min}; must be a fraction of lr in [0, 1]")
    steps = c.steps if c.steps is not None else (c.epochs or 1) * max(1, c.train_size //
                                                                      max(1, c.batch_size))
    if warmup_steps(w, steps) >= steps and w > 0:
        raise ConfigError("warmup", f"got {w}: {warmup_steps(w, steps)} warmup steps of a "
                          f"{steps}-step run; must be shorter than the run")


def _validate_stop(c: TrainConfig) -> None:
    a = c.stop_train_acc
    if a is not None and not (math.isfinite(a) and 0 <= a < 1):
        raise ConfigError("stop_train_acc", f"got {a}; must be a fraction in [0, 1), or "
                          "absent (never stop)")
    if c.stop_evals < 2:
        raise ConfigError("stop_evals", f"got {c.stop_evals}; must be an integer >= 2 "
                          "(evaluations in a row)")
    if not (math.isfinite(c.stop_tol) and 0 <= c.stop_tol < 1):
        raise ConfigError("stop_tol", f"got {c.stop_tol}; must be a fraction in [0, 1)")


def _validate(c: TrainConfig) -> None:
    check_user_keys(c)  # task (a registered name or "package.module:function"), model, ...
    for key, allowed in CHOICES.items():
        if getattr(c, key) not in allowed:
            raise ConfigError(key, f"got {getattr(c, key)!r}; allowed: {', '.join(allowed)}")
    for f in fields(c):
        v = getattr(c, f.name)
        if isinstance(v, int) and not isinstance(v, bool) and not -MAX_INT <= v <= MAX_INT:
            raise ConfigError(f.name, f"got an integer of {abs(v).bit_length()} bits; must be "
                              f"in [-{MAX_INT}, {MAX_INT}] (int64)")
    positive_ints = ("train_size", "val_size", "test_size", "bits", "width", "batch_size",
                     "checkpoint_every", "modulus")
    for key in positive_ints:
        if getattr(c, key) < 1:
            raise ConfigError(key, f"got {getattr(c, key)}; must be an integer >= 1")
    if c.depth < 0:
        raise ConfigError("depth", f"got {c.depth}; must be an integer >= 0")
    for key in ("lr", "bn_eps", "adam_eps"):
        v = getattr(c, key)
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(key, f"got {v}; must be a finite number > 0")
    for key in ("beta1", "beta2", "momentum"):
        v = getattr(c, key)
        if not (math.isfinite(v) and 0 <= v < 1):
            raise ConfigError(key, f"got {v}; must be in [0, 1)")
    if not (0 <= c.noise <= 1):
        raise ConfigError("noise", f"got {c.noise}; must be in [0, 1]")
    _validate_schedule(c)
    _validate_stop(c)
    if c.task == "modular_add" and c.train_size >= c.modulus**2:
        raise ConfigError("train_size", f"got {c.train_size}; modular_add trains on train_size "
                          f"of the modulus^2 = {c.modulus**2} pairs: must be < {c.modulus**2}")
    given = [k for k in DECAY_KEYS if getattr(c, k) is not None]
    if len(given) > 1:
        raise ConfigError(given[1], f"give only one decay unit, got {' and '.join(given)}; "
                          f"allowed: one of {', '.join(DECAY_KEYS)}")
    for k in given:
        v = getattr(c, k)
        if not (math.isfinite(v) and v >= 0):
            raise ConfigError(k, f"got {v}; must be a finite number >= 0")
    if c.batch_size > c.train_size:
        raise ConfigError("batch_size", f"got {c.batch_size} > train_size {c.train_size}; "
                          "must be <= train_size")
    if (c.epochs is None) == (c.steps is None):
        raise ConfigError("steps", "give exactly one of epochs or steps")
    length_key = "epochs" if c.epochs is not None else "steps"
    if getattr(c, length_key) < 1:
        raise ConfigError(length_key, f"got {getattr(c, length_key)}; must be an integer >= 1")
    if c.eval_every is not None and c.eval_every < 1:
        raise ConfigError("eval_every", f"got {c.eval_every}; must be an integer >= 1")
    if c.threads is not None and not 1 <= c.threads <= MAX_THREADS:
        raise ConfigError("threads", f"got {c.threads}; must be an integer in [1, "
                          f"{MAX_THREADS}]")
    for key in ("train_digits", "test_digits"):
        ds = getattr(c, key)
        if not ds or any(not 1 <= d <= 9 for d in ds):
            raise ConfigError(key, f"got {ds}; must be digit counts in 1..9")
        if (2 * 10 ** max(ds)).bit_length() > c.bits:  # >= 2**bits; 2**bits may be huge
            raise ConfigError("bits", f"got {c.bits}; too few for sums of {max(ds)}-digit numbers")
