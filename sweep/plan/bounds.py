"""Sanity bounds on what a sweep or a `train` asks for, checked before anything runs.

Hard bounds (bad input, refused): seeds that overflow the data generators, a
per-step decay that flips or explodes the weights, a pack whose memory exceeds
this machine's (trainer.memory), grids beyond MAX_MEMBERS, members that are equal
after canonicalization. Soft bounds (refused unless `--yes`): more than
CONFIRM_MEMBERS members, or more than CONFIRM_CORE_HOURS estimated core-hours
(trainer.memory's cost model, the same one the plan's core-minutes come from).

When a bound is exceeded the error names the key that made it so: of the keys the
user set, the one whose reset to the reference (the preset, or the trainer's
defaults) lowers the offending quantity the most.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable, Sequence

from sweep.plan.spec import SpecError, preset_config
from trainer import ConfigError, TrainConfig
from trainer.config import DECAY_KEYS, FIELDS
from trainer.memory import (
    FIXED_BYTES,
    HEADROOM,
    core_seconds,
    gpu_memory_bytes,
    host_bytes,
    member_bytes,
    trial_seconds,
)

MAX_SEED = 2**31 - 1
MAX_MEMBERS = 200_000  # a study's grid, even with --yes
CONFIRM_MEMBERS = 10_000  # beyond this, --yes
CONFIRM_CORE_HOURS = 1_000.0  # estimated compute beyond this, --yes
GIB = 2**30
HOST_MEMORY_ENV = "WDSWEEP_HOST_MEMORY_GB"


def check_grid_size(spec, yes: bool) -> None:
    """The grid's size from its axes alone: a 10^6-member grid is answered at once."""

    n = math.prod(len(v) for v in spec.grid.values())
    if n > MAX_MEMBERS:
        raise SpecError("grid", f"{n:,} members; allowed: at most {MAX_MEMBERS:,} per study "
                        "(split the sweep into several studies)")
    if n > CONFIRM_MEMBERS and not yes:
        raise SpecError("grid", f"{n:,} members; more than {CONFIRM_MEMBERS:,} needs --yes")


def _ram() -> int:
    """Memory of a host that trains a trial: $WDSWEEP_HOST_MEMORY_GB (the cluster's nodes,
    when they differ from the planner's machine), else this machine's."""
    if (given := os.environ.get(HOST_MEMORY_ENV)) is not None:
        try:
            gib = float(given)
        except ValueError:
            gib = math.nan
        if not (math.isfinite(gib) and gib > 0):
            raise ConfigError(HOST_MEMORY_ENV, f"got {given!r}; allowed: a number of GiB > 0")
        return int(gib * GIB)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**40


def _reset(members: Sequence[TrainConfig], key: str,
           ref: TrainConfig) -> list[TrainConfig] | None:
    """The members with `key` as in `ref` (a decay unit or the run length: all its
    units); None when that is not a valid config."""
    keys = DECAY_KEYS if key in DECAY_KEYS else ("epochs", "steps") \
        if key in ("epochs", "steps") else (key,)
    try:
        return [dataclasses.replace(m, **{k: getattr(ref, k) for k in keys}) for m in members]
    except ConfigError:
        return None


Cost = Callable[[Sequence[TrainConfig]], float]


def culprit(members: Sequence[TrainConfig], keys: Iterable[str], ref: TrainConfig,
            cost: Cost, limit: float | None = None) -> str | None:
    """Of `keys`, the one to blame for cost(members) > limit: one whose reset to `ref`
    brings it within the limit, a number before a choice (modulus before task), else the
    one whose reset lowers it the most. None: no reset lowers it."""
    now, scored, m = cost(members), [], members[0]
    for key in keys:
        if key not in FIELDS or getattr(m, key) == getattr(ref, key):
            continue
        other = _reset(members, key, ref)
        if other is None or (c := cost(other)) >= now:
            continue
        v = getattr(m, key)
        numeric = isinstance(v, int | float) and not isinstance(v, bool)
        scored.append((limit is not None and c > limit, not numeric, c, key))
    return min(scored)[3] if scored else None


def _given(m: TrainConfig, keys: Iterable[str] | None, ref: TrainConfig) -> list[str]:
    if keys is not None:
        return list(keys)
    return [k for k in FIELDS if getattr(m, k) != getattr(ref, k)]


def check_members(members: Sequence[TrainConfig], prefix: str = "", *,
                  ref: TrainConfig | None = None, keys: Iterable[str] | None = None,
                  on_device: bool = False) -> None:
    """Hard bounds on each member and on the pack it trains in (ConfigError naming
    prefix + key). `keys`: the keys the user set (default: those that differ from
    `ref`, by default the trainer's defaults)."""
    ref = ref or TrainConfig()
    for m in members:
        for key in ("seed", "data_seed"):
            v = getattr(m, key)
            if v is not None and not 0 <= v <= MAX_SEED:
                raise ConfigError(f"{prefix}{key}", f"got {v}; allowed: an integer in "
                                  f"[0, {MAX_SEED}]")
        d = m.decay
        if not d.decay_per_step <= 1:
            given = _given(m, keys, ref)
            key = culprit([m], given, ref, lambda c: c[0].decay.decay_per_step, 1.0) or next(
                k for k in DECAY_KEYS if getattr(m, k) is not None)
            raise ConfigError(f"{prefix}{key}", f"got {getattr(m, key)!r}: a per-step decay "
                              f"lr*weight_decay of {d.decay_per_step:g}; allowed: at most 1 "
                              "(each step multiplies weights by 1 - lr*weight_decay)")
    if members:
        _check_memory(members, prefix, ref, keys, on_device)


def _check_memory(members: Sequence[TrainConfig], prefix: str, ref: TrainConfig,
                  keys: Iterable[str] | None, on_device: bool) -> None:
    need, have, k = host_bytes(members, on_device), _ram(), len(members)
    if need <= have:
        return
    m = members[0]
    said = f"~{need / GIB:,.1f} GiB for {k} member{'s' * (k > 1)}, more than this " \
        f"machine's {have / GIB:.0f} GiB"
    one = host_bytes(members[:1], on_device)
    if k > 1 and one <= have:  # the pack, not the member, is too large
        fit, hi = 1, k  # host_bytes grows with the members: fits(fit), not fits(hi)
        while hi - fit > 1:
            mid = (fit + hi) // 2
            fit, hi = (mid, hi) if host_bytes(members[:mid], on_device) <= have else (fit, mid)
        where = "pack" if not prefix else prefix.strip()
        raise ConfigError(where, f"got {k} members per trial: {said}; allowed: at most "
                          f"{fit} members of this shape per trial")
    key = culprit(members, _given(m, keys, ref), ref,
                  lambda c: float(host_bytes(c, on_device)), have) or "width"
    raise ConfigError(f"{prefix}{key}", f"got {getattr(m, key)!r}: {said}; allowed: "
                      f"{_largest(members, key, have, on_device)}")


def _largest(members: Sequence[TrainConfig], key: str, have: int, on_device: bool) -> str:
    """'KEY <= N here' for an integer key (the largest value that fits), else 'another KEY'."""
    v = getattr(members[0], key)
    if not isinstance(v, int) or isinstance(v, bool):
        return f"another {key}"

    def fits(n: int) -> bool:
        try:
            pack = [dataclasses.replace(m, **{key: n}) for m in members]
        except ConfigError:
            return False
        return host_bytes(pack, on_device) <= have

    lo, hi = 0, v  # fits(hi) is False; the answer is in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return f"{key} <= {lo:,} here" if lo >= 1 and fits(lo) else f"a smaller {key}"


def check_unique(members: Sequence[TrainConfig], where: str) -> None:
    seen: dict[str, int] = {}
    for i, m in enumerate(members):
        j = seen.setdefault(m.config_hash(), i)
        if j != i:
            raise ConfigError(where, f"members {j + 1} and {i + 1} are the same run after "
                              "canonicalization (equal seeds, or values equal to 12 "
                              "significant digits); allowed: distinct members")


def core_hours(members: Sequence[TrainConfig], cpus: float = 1) -> float:
    """One pack trained by `wdsweep train` (no Tune)."""
    return trial_seconds(members) * cpus / 3600 if members else 0.0


def plan_core_hours(trials: Sequence[Sequence[TrainConfig]], cpus_per_trial: float) -> float:
    return core_seconds(trials, cpus_per_trial) / 3600


def check_compute(hours: float, where: str, yes: bool) -> None:
    if hours > CONFIRM_CORE_HOURS and not yes:
        raise ConfigError(where, f"~{hours:,.0f} estimated core-hours; more than "
                          f"{CONFIRM_CORE_HOURS:,.0f} needs --yes")


def check_plan(plan, spec, yes: bool) -> None:
    """Per-trial memory and the whole plan's compute."""

    ref, keys = preset_config(spec), [*spec.fixed, *spec.grid]
    on_device = spec.gpus_per_trial > 0
    where = _locator(spec)
    gpu = _gpu_share(spec) if on_device else None
    for t in plan.trials:
        try:
            check_members(t.members, ref=ref, keys=keys, on_device=on_device)
            if gpu is not None:
                _check_gpu(t.members, gpu, ref, keys)
        except ConfigError as e:
            raise e.rekey(where(e.key)) from None
    packs = [t.members for t in plan.trials]
    hours = plan_core_hours(packs, spec.cpus_per_trial)
    if hours <= CONFIRM_CORE_HOURS or yes:
        return
    # The costliest trial's key, when resetting it would bring the plan under the bound;
    # else the grid's size is what costs.
    worst = max(packs, key=trial_seconds)
    cost = trial_seconds(worst)
    limit = cost * CONFIRM_CORE_HOURS / hours  # the worst trial's share of the bound
    key = culprit(worst, keys, ref, trial_seconds, limit)
    if key is not None:
        reset = _reset(worst, key, ref)
        if reset is None or trial_seconds(reset) > limit:
            key = None
    at = where(key) if key else "grid" if len(plan.members) > 1 else where("steps")
    raise SpecError(at, f"~{hours:,.0f} estimated core-hours for {len(plan.members):,} "
                    f"members; more than {CONFIRM_CORE_HOURS:,.0f} needs --yes")


def _gpu_share(spec) -> int | None:
    """Bytes of GPU memory a trial may use (its share of the card, as sweep.plan.packs.pack_size
    counts it); None when the planner's host does not know its GPU."""

    mem = gpu_memory_bytes()
    return None if mem is None else int((mem * min(1.0, spec.gpus_per_trial) - FIXED_BYTES)
                                        * HEADROOM)


def _check_gpu(members: Sequence[TrainConfig], usable: int, ref: TrainConfig,
               keys: Iterable[str]) -> None:
    """A pack's device memory (trainer.memory.member_bytes) within the trial's share:
    pack_size fits K to it, but one member may already be too large."""

    def need(ms: Sequence[TrainConfig]) -> float:
        return float(len(ms) * member_bytes(ms[0]))

    if need(members) <= usable:
        return
    key = culprit(members, keys, ref, need, usable) or "width"
    raise ConfigError(key, f"got {getattr(members[0], key)!r}: ~{need(members) / GIB:,.1f} GiB "
                      f"of GPU memory for {len(members)} member(s), more than the trial's "
                      f"{max(usable, 0) / GIB:,.1f} GiB; allowed: a smaller {key}")


def _locator(spec) -> Callable[[str], str]:
    def where(key: str) -> str:
        if key == "pack":
            return "run.pack"
        if key in spec.grid:
            return f"grid.{key}"
        return f"fixed.{key}"
    return where
