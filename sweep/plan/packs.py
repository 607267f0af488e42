"""From a spec to trials: the grid's members, packed into trials of <= `pack`.

Grid points that differ only in packable keys (decay in any unit, seed, data
seed, bn_eps, lr) share a *pack key* and are trained together in one trial.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from sweep.plan import code as _code
from sweep.plan.bounds import plan_core_hours
from sweep.plan.code import complete
from sweep.plan.members import member_table
from sweep.plan.spec import Spec, SpecError, base_config
from sweep.plan.trial import Trial
from trainer import ConfigError, TrainConfig, build
from trainer.config import PACKABLE
from trainer.memory import fit_members, gpu_memory_bytes


@dataclass(frozen=True)
class Plan:
    members: tuple[TrainConfig, ...]  # every grid point, in grid order
    trials: tuple[Trial, ...]  # only the members still to run
    skipped: int  # members already completed in the study
    notes: tuple[str, ...] = ()  # e.g. a model that cannot be packed (sweep.plan.code)

    @property
    def cells(self) -> int:
        """Distinct (b, B, T, lr, ...) cells: everything but decay and seeds varies."""
        drop = ("weight_decay", "seed", "data_seed")
        return len({repr(sorted((k, v) for k, v in m.canonical().items() if k not in drop))
                    for m in self.members})

    def core_minutes(self, cpus_per_trial: float) -> float:
        """Estimated compute of the trials still to run (the bounds' cost model)."""

        return 60 * plan_core_hours([t.members for t in self.trials], cpus_per_trial)

    def summary(self, cpus_per_trial: float) -> str:
        """One line for a person: T in epochs (as in the rule and the report), steps as
        steps."""
        todo = [m for t in self.trials for m in t.members]
        steps, minutes = sum(t.member_steps for t in self.trials), self.core_minutes(cpus_per_trial)

        def span(values, unit: str) -> str:
            lo, hi = min(values), max(values)
            return f"{lo:,.4g} {unit}" if lo == hi else f"{lo:,.4g}-{hi:,.4g} {unit}"

        length = (f"T = {span([m.epochs_T for m in todo], 'epochs')} "
                  f"({span([m.total_steps for m in todo], 'steps')}) per member, "
                  if todo else "")
        return (f"plan: {self.cells} cells, {len(self.members)} members "
                f"({self.skipped} already done), {len(self.trials)} trials to run with "
                f"{len(todo)} members, {length}{steps:,} member-steps, "
                f"~{minutes:,.1f} core-minutes" + "".join(f"; {n}" for n in self.notes))

    def record(self, cpus_per_trial: float) -> dict[str, Any]:
        """The plan as data (`wdsweep run --dry-run --json`): totals and each trial's
        members with λ, seed, b, B, T (`epochs`, fractional when the run is given in
        steps) and `total_steps`."""
        todo = [m for t in self.trials for m in t.members]
        return dict(cells=self.cells, members=len(self.members), already_done=self.skipped,
                    to_run=len(todo), member_steps=sum(m.total_steps for m in todo),
                    core_minutes=round(self.core_minutes(cpus_per_trial), 2),
                    trials=[dict(key=t.key, members=[dict(
                        config_hash=m.config_hash(), weight_decay=m.decay.weight_decay,
                        seed=m.seed, batch_size=m.batch_size, train_size=m.train_size,
                        epochs=m.epochs_T, total_steps=m.total_steps, **_axes(row))
                        for m, row in zip(t.members, member_table(t.members).values())])
                        for t in self.trials])


def _axes(row: dict[str, Any]) -> dict[str, Any]:
    """A member's task_args.* / model_args.* values (the member table's), for the plan."""
    return {k: v for k, v in row.items() if k.startswith(("task_args.", "model_args."))}


def pack_size(spec: Spec, m: TrainConfig, gpu_memory: int | None = None) -> int:
    """Members per trial for members shaped like `m`. On CPU: the spec's pack. On a GPU
    (gpus_per_trial > 0) a step costs about the same at K=1 as at K=1000, so: as many
    as fit in the trial's share of the card's memory (trainer.memory), capped by
    run.pack only when the spec sets it. No GPU visible to the planner (and no
    $WDSWEEP_GPU_MEMORY_GB): the spec's pack."""
    if spec.gpus_per_trial <= 0:
        return spec.pack

    mem = gpu_memory if gpu_memory is not None else gpu_memory_bytes()
    if mem is None:
        return spec.pack
    fit = fit_members(m, int(mem * min(1.0, spec.gpus_per_trial)))
    return min(fit, spec.pack) if spec.pack_given else fit


def expand(spec: Spec) -> list[TrainConfig]:
    """Every grid point as a validated member config."""
    base = base_config(spec)
    keys = list(spec.grid)
    combos = [dict(zip(keys, c)) for c in itertools.product(*spec.grid.values())]
    out = []
    for i, over in enumerate([*combos, *spec.points]):
        over = dict(over, checkpoint_every=spec.checkpoint_every,
                    threads=max(1, int(spec.cpus_per_trial)),
                    device="auto" if spec.gpus_per_trial > 0 else "cpu")
        try:
            out.append(build(base, over))
        except ConfigError as e:
            what = "grid" if i < len(combos) else "refine"
            where = f"grid.{e.key}" if e.key in spec.grid and what == "grid" else (
                f"fixed.{e.key}" if e.key in spec.fixed else f"{what}.{e.key}")
            point = ", ".join(f"{k}={over[k]}" for k in (keys if what == "grid" else over)
                              if k in over and k not in ("checkpoint_every", "threads",
                                                         "device"))
            raise SpecError(where, f"{e.reason} (at {what} point {point})") from None

    return complete(out, spec.code)  # your task: B from one call of it; bad code refused


def _cell_key(m: TrainConfig) -> str:
    """Members with equal keys share trials. bn_eps splits them although the trainer
    can pack it: with mixed eps batch norm takes a hand-written path, and a member's
    float32 numbers would then depend on its pack-mates."""
    c = m.canonical()
    return repr(sorted((k, v) for k, v in c.items() if k not in PACKABLE
                       and k != "weight_decay" or k == "bn_eps"))


def make_plan(spec: Spec, completed: set[str] = frozenset()) -> Plan:  # type: ignore[assignment]
    members = _unique_points(spec, expand(spec))
    seen: dict[str, int] = {}
    todo: dict[str, list[TrainConfig]] = {}
    for i, m in enumerate(members):
        h = m.config_hash()
        if seen.setdefault(h, i) != i:
            _duplicate(spec, seen[h], i)
        if h in completed:
            continue
        todo.setdefault(_cell_key(m), []).append(m)
    trials = []
    for group in todo.values():
        size = pack_size(spec, group[0]) if _code.packs(group[0], spec.code) else 1
        for i in range(0, len(group), size):
            trials.append(Trial.pack(group[i : i + size]))
    done = sum(1 for m in members if m.config_hash() in completed)
    return Plan(tuple(members), tuple(trials), done, _code.notes(members, spec.code))


def _unique_points(spec: Spec, members: list[TrainConfig]) -> list[TrainConfig]:
    """The grid's members, then each explicit point that is not one of them (a point that
    is already a member, of the grid or an earlier point, is that member: one run)."""
    n = len(members) - len(spec.points)
    have = {m.config_hash() for m in members[:n]}
    out = members[:n]
    for m in members[n:]:
        if m.config_hash() not in have:
            have.add(m.config_hash())
            out.append(m)
    return out


def _duplicate(spec: Spec, i: int, j: int) -> None:
    """Two grid points that are one run after canonicalization: bad input."""
    combos = itertools.islice(itertools.product(*spec.grid.values()), j + 1)
    points = [c for n, c in enumerate(combos) if n in (i, j)]
    diff = [(k, a, b) for k, a, b in zip(spec.grid, *points) if a != b]
    where = f"grid.{diff[0][0]}" if diff else "grid"
    said = ", ".join(f"{k}={a!r} vs {b!r}" for k, a, b in diff)
    raise SpecError(where, f"grid points {i + 1} and {j + 1} ({said}) are the same run after "
                    "canonicalization (values equal to 12 significant digits, or a decay "
                    "given twice in different units); allowed: distinct runs")
