"""Sanity bounds on what a sweep or a `train` asks for, checked before anything runs.

Hard bounds (bad input, refused): seeds that overflow the data generators, a
per-step decay that flips or explodes the weights, a pack whose memory exceeds
this machine's, grids beyond MAX_MEMBERS, members that are equal after
canonicalization. Soft bounds (refused unless `--yes`): more than
CONFIRM_MEMBERS members, or more than CONFIRM_CORE_HOURS estimated core-hours.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from trainer import ConfigError, TrainConfig

MAX_SEED = 2**31 - 1
MAX_MEMBERS = 200_000  # a study's grid, even with --yes
CONFIRM_MEMBERS = 10_000  # beyond this, --yes
CONFIRM_CORE_HOURS = 1_000.0  # estimated compute beyond this, --yes


def check_grid_size(spec, yes: bool) -> None:
    """The grid's size from its axes alone: a 10^6-member grid is answered at once."""
    from sweep.spec import SpecError

    n = math.prod(len(v) for v in spec.grid.values())
    if n > MAX_MEMBERS:
        raise SpecError("grid", f"{n:,} members; allowed: at most {MAX_MEMBERS:,} per study "
                        "(split the sweep into several studies)")
    if n > CONFIRM_MEMBERS and not yes:
        raise SpecError("grid", f"{n:,} members; more than {CONFIRM_MEMBERS:,} needs --yes")


def memory_bytes(m: TrainConfig, k: int) -> int:
    """A rough upper estimate of a pack's training memory: weights, grads and two
    optimizer moments per parameter, plus activations of one batch."""
    params = m.width * 64 + m.depth * (m.width**2 + 4 * m.width) + m.width * 64
    acts = m.batch_size * m.width * (2 * m.depth + 2) * 4
    return 4 * k * (4 * params + acts)


def _ram() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**40


def check_members(members: Sequence[TrainConfig], prefix: str = "") -> None:
    """Hard bounds on each member and on the pack it trains in (ConfigError)."""
    for m in members:
        for key in ("seed", "data_seed"):
            v = getattr(m, key)
            if v is not None and not 0 <= v <= MAX_SEED:
                raise ConfigError(f"{prefix}{key}", f"got {v}; allowed: an integer in "
                                  f"[0, {MAX_SEED}]")
        d = m.decay
        if not d.decay_per_step <= 1:
            key = next(k for k in ("weight_decay", "decay_per_step", "lambda_norm")
                       if getattr(m, k) is not None)
            raise ConfigError(f"{prefix}{key}", f"got {getattr(m, key):g}: a per-step decay "
                              f"lr*weight_decay of {d.decay_per_step:g}; allowed: at most 1 "
                              "(each step multiplies weights by 1 - lr*weight_decay)")
    if members:
        need, have = memory_bytes(members[0], len(members)), _ram()
        if need > have:
            raise ConfigError(f"{prefix}width", f"got width {members[0].width}, depth "
                              f"{members[0].depth}, batch {members[0].batch_size} x "
                              f"{len(members)} members: ~{need / 2**30:.0f} GiB, more than "
                              f"this machine's {have / 2**30:.0f} GiB; allowed: a smaller model")


def check_unique(members: Sequence[TrainConfig], where: str) -> None:
    seen: dict[str, int] = {}
    for i, m in enumerate(members):
        j = seen.setdefault(m.config_hash(), i)
        if j != i:
            raise ConfigError(where, f"members {j + 1} and {i + 1} are the same run after "
                              "canonicalization (equal seeds, or values equal to 12 "
                              "significant digits); allowed: distinct members")


def core_hours(members: Sequence[TrainConfig], cpus: float = 1) -> float:
    from sweep.plan import est_ms_per_step

    return sum(m.total_steps * est_ms_per_step(m) for m in members) / 3.6e6 * cpus


def check_compute(hours: float, where: str, yes: bool) -> None:
    if hours > CONFIRM_CORE_HOURS and not yes:
        raise ConfigError(where, f"~{hours:,.0f} estimated core-hours; more than "
                          f"{CONFIRM_CORE_HOURS:,.0f} needs --yes")


def check_plan(plan, spec, yes: bool) -> None:
    """Per-trial memory and the whole plan's compute."""
    from sweep.spec import SpecError

    for t in plan.trials:
        try:
            check_members(t.members)
        except ConfigError as e:
            where = f"grid.{e.key}" if e.key in spec.grid else f"fixed.{e.key}"
            raise SpecError(where, str(e).split(": ", 1)[1]) from None
    todo = [m for t in plan.trials for m in t.members]
    try:
        check_compute(core_hours(todo, spec.cpus_per_trial), "fixed.steps", yes)
    except ConfigError as e:
        raise SpecError(e.key, str(e).split(": ", 1)[1]) from None
