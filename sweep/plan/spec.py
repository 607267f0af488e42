"""The sweep spec (TOML): parsed and validated whole before anything starts."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sweep.plan.code import parse_user
from sweep.plan.limits import (
    check_paths,
    check_resource,
    check_storage,
    coerce_in,
    parse_toml,
)
from sweep.plan.refine import Refine, parse_refine
from sweep.plan.trial import Resources
from trainer import build, preset
from trainer.config import DECAY_KEYS, FIELDS, MAX_INT
from trainer.errors import BadInput as ConfigError
from trainer.errors import SpecError
from trainer.presets import PRESETS, shown
from trainer.user import arg_key

SECTIONS = {
    "top": ("name", "preset", "fixed", "grid", "resources", "run", "refine",
            "task", "model", "task_args", "model_args", "code"),  # the last five: sweep.plan.code
    "resources": ("cpus_per_trial", "gpus_per_trial"),
    "run": ("pack", "checkpoint_every", "max_failures", "storage", "callbacks"),
}


MAX_NAME = 128  # bytes (UTF-8): the study id is the name plus a suffix, in one file name


@dataclass(frozen=True)
class Spec:
    name: str
    preset: str = "seed"
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    cpus_per_trial: float = Resources.cpus_per_trial
    gpus_per_trial: float = Resources.gpus_per_trial
    pack: int = 8
    # run.pack was set: on a GPU it then caps the pack (else as many as fit the card);
    # None: set when it differs from the default (a Spec built in Python)
    pack_set: bool | None = None
    checkpoint_every: int = 2000
    max_failures: int = Resources.max_failures
    # Where Tune experiments go (under <storage>/<study id>/): None means
    # STUDY/experiments; a relative path is under the study; or NFS, or s3://.
    storage: str | None = None
    # Dotted names of Ray Tune Callback classes (e.g. MLflow's), made with no arguments.
    callbacks: tuple[str, ...] = ()
    # Your own task and model (sweep.plan.code): the top-level task, model, task_args,
    # model_args, and the code directories (absolute) shipped to every Ray worker.
    user: dict[str, Any] = field(default_factory=dict)
    code: tuple[str, ...] = ()
    text: str = ""  # the TOML as given, saved with the study
    # `[refine]`: rounds of proposed points after the grid (sweep.plan.refine)
    refine: Refine | None = None
    # Members beyond the grid, each a dict of overrides on top of [fixed] (a refinement
    # round's proposals; planned after the grid's points, in this order)
    points: tuple[dict[str, Any], ...] = ()

    @property
    def pack_given(self) -> bool:
        return self.pack != Spec.pack if self.pack_set is None else self.pack_set

    @property
    def resources(self) -> Resources:
        return Resources(self.cpus_per_trial, self.gpus_per_trial, self.max_failures)

    def storage_uri(self, study: Path) -> str:
        if self.storage is None:
            return str((study / "experiments").resolve())
        if "://" in self.storage:
            return self.storage.rstrip("/")
        p = Path(self.storage).expanduser()
        return str((p if p.is_absolute() else study / p).resolve())


def load(path: Path) -> Spec:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError("spec", f"cannot read {path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SpecError("spec", f"byte 0x{data[e.start]:02X} at line {line} is not UTF-8; "
                        "allowed: a UTF-8 TOML file") from None
    return parse(text, path.parent)


def parse(text: str, base: Path | None = None) -> Spec:
    """`base`: the spec's directory, against which `code` is resolved (default: cwd)."""
    raw = parse_toml(text)
    _only(raw, SECTIONS["top"], "")
    name = raw.get("name")
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name) \
            or len(name.encode()) > MAX_NAME:  # it names directories: one path component
        raise SpecError("name", f"got {shown(name)}; must be 1-{MAX_NAME} bytes of letters, "
                        "digits, '-', '_' or '.'")
    pre = raw.get("preset", "seed")
    if not isinstance(pre, str) or pre not in PRESETS:
        raise SpecError("preset", f"unknown preset {shown(pre)}; allowed: {', '.join(PRESETS)}")
    fixed = _table(raw, "fixed")
    for k, v in fixed.items():
        _check_key(f"fixed.{k}", k)
        coerce_in(f"fixed.{k}", k, v)
    grid = {k: _axis(k, v) for k, v in _table(raw, "grid").items()}
    for k in grid:
        if k in fixed or k in raw:
            other = f"fixed.{k}" if k in fixed else f"the top-level {k}"
            raise SpecError(f"grid.{k}", f"also set as {other}; allowed: a key in one "
                            "place, [fixed] or [grid]")
    units = [f"fixed.{k}" for k in fixed if k in DECAY_KEYS] + \
        [f"grid.{k}" for k in grid if k in DECAY_KEYS]
    if len(units) > 1:
        raise SpecError(units[1], f"conflicts with {units[0]}: give the decay in one unit; "
                        f"allowed: one of {', '.join(DECAY_KEYS)}, in [fixed] or [grid]")
    check_paths(raw.get("code"), base)
    user, code = parse_user(raw, fixed, grid, base)
    res, run = _table(raw, "resources"), _table(raw, "run")
    _only(res, SECTIONS["resources"], "resources.")
    _only(run, SECTIONS["run"], "run.")
    return Spec(
        name=name, preset=pre, fixed=fixed, grid=grid, user=user, code=code,
        cpus_per_trial=check_resource(res, "cpus_per_trial", Spec.cpus_per_trial, zero=False),
        gpus_per_trial=check_resource(res, "gpus_per_trial", Spec.gpus_per_trial, zero=True),
        pack=int(_number(run, "run.pack", "pack", Spec.pack, lo=1, integer=True)),
        pack_set="pack" in run,
        checkpoint_every=int(_number(run, "run.checkpoint_every", "checkpoint_every",
                                     Spec.checkpoint_every, lo=1, integer=True)),
        max_failures=int(_number(run, "run.max_failures", "max_failures", Spec.max_failures,
                                 lo=0, integer=True)),
        storage=check_storage(run.get("storage")),
        callbacks=_callbacks(run.get("callbacks", [])), text=text,
        refine=parse_refine(raw.get("refine")))


# Short names of wdsweep's trackers in `[run] callbacks`: one run per member
# (sweep.runner.trackers; loaded by sweep.runner.callbacks).
TRACKERS = {"mlflow": "sweep.runner.trackers.MLflowTracker",
            "wandb": "sweep.runner.trackers.WandbTracker"}


def _callbacks(v: Any) -> tuple[str, ...]:
    ok = isinstance(v, list) and all(
        isinstance(n, str) and (n in TRACKERS or "." in n
                                and all(p.isidentifier() for p in n.split(".")))
        for n in v)
    if not ok:
        raise SpecError("run.callbacks", f"got {str(v)[:60]}; allowed: a list of tracker "
                        f"names ({', '.join(TRACKERS)}) or dotted names of Ray Tune Callback "
                        "classes, e.g. [\"mlflow\"]")
    return tuple(v)


def _only(table: dict, allowed: tuple[str, ...], prefix: str) -> None:
    for k in table:
        if k not in allowed:
            near = difflib.get_close_matches(str(k), allowed, n=1)
            hint = f" (did you mean {prefix}{near[0]}?)" if near else ""
            raise SpecError(f"{prefix}{k}", f"unknown key{hint}; allowed: {', '.join(allowed)}")


def _table(raw: dict, key: str) -> dict:
    t = raw.get(key, {})
    if not isinstance(t, dict):
        raise SpecError(key, f"must be a table ([{key}]), got {type(t).__name__}")
    return t


# Trainer keys the sweep sets from its own sections (a value in [fixed]/[grid]
# would be overridden, so it is refused instead).
SET_BY_SWEEP = {"checkpoint_every": "run.checkpoint_every",
                "threads": "resources.cpus_per_trial", "device": "resources.gpus_per_trial"}


def _check_key(where: str, key: str) -> None:
    if key not in FIELDS and not arg_key(key):  # task_args.KEY / model_args.KEY
        raise SpecError(where, f"unknown trainer key; allowed: {', '.join(sorted(FIELDS))}")
    if key in SET_BY_SWEEP:
        raise SpecError(where, f"set by the sweep; use {SET_BY_SWEEP[key]} instead")


def _axis(key: str, v: Any) -> list[Any]:
    """An axis: a list of values, or {log = [lo, hi, n]} / {lin = [lo, hi, n]}."""
    where = f"grid.{key}"
    _check_key(where, key)
    if isinstance(v, dict):
        if len(v) != 1 or next(iter(v)) not in ("log", "lin"):
            raise SpecError(where, "a generated axis is {log = [lo, hi, n]} or {lin = [lo, hi, n]}")
        kind, args = next(iter(v.items()))
        # finite, with a finite span: numpy would overflow (a warning and NaNs) otherwise
        ok = (isinstance(args, list) and len(args) == 3 and all(map(_finite, args))
              and math.isfinite(float(args[1]) - float(args[0]))
              and float(args[2]).is_integer() and args[2] >= 1)
        if not ok or (kind == "log" and min(args[:2]) <= 0) or not (
                args[0] < args[1] or (args[0] == args[1] and args[2] == 1)):
            raise SpecError(where, f"got {shown(v)}; expected {kind} = [lo, hi, n] with n >= 1"
                            + (", lo, hi > 0" if kind == "log" else "")
                            + " and finite lo < hi (lo == hi only with n = 1)")
        lo, hi, n = args
        if n > 1_000_000:
            raise SpecError(where, f"got n = {n}; allowed: n <= 1000000")
        gen = np.geomspace if kind == "log" else np.linspace
        v = [float(f"{x:.6g}") for x in gen(lo, hi, int(n))]
    if not isinstance(v, list) or not v:
        raise SpecError(where, f"got {v!r}; an axis must be a non-empty list of values")
    vals = [coerce_in(where, key, x) for x in v]
    if key in DECAY_KEYS and any(x is None or not math.isfinite(x) or x < 0 for x in vals):
        raise SpecError(where, f"got {v}; decay values must be finite numbers >= 0")
    if len(set(map(repr, vals))) != len(vals):
        raise SpecError(where, f"got {v}; values must be distinct")
    return vals


def _finite(a: Any) -> bool:
    """A TOML number that is a finite float (an int beyond int64 is not)."""
    if isinstance(a, bool) or not isinstance(a, int | float):
        return False
    return -MAX_INT <= a <= MAX_INT if isinstance(a, int) else math.isfinite(a)


def _number(t: dict, where: str, key: str, default: float, *, lo: float,
            integer: bool = False) -> float:
    v = t.get(key, default)
    kind = "an integer" if integer else "a number"
    bad = (isinstance(v, bool) or not isinstance(v, int | float)
           or (isinstance(v, float) and not (math.isfinite(v) and (v.is_integer() or not integer)))
           or v < lo or (integer and v > MAX_INT))
    if bad:
        raise SpecError(where, f"got {shown(v)}; must be {kind} >= {lo}"
                        + (f" and <= {MAX_INT}" if integer else ""))
    return v


def preset_config(spec: Spec):
    """The preset with the spec's own task and model: what a key set in [fixed] or
    [grid] is compared with when a bound names the key that exceeded it."""

    try:
        return build(preset(spec.preset), spec.user)
    except ConfigError:
        return preset(spec.preset)


def base_config(spec: Spec):
    """The preset with the spec's fixed overrides (validated)."""

    try:
        return build(preset(spec.preset), {**spec.user, **spec.fixed})
    except ConfigError as e:
        raise e.rekey(f"fixed.{e.key}" if e.key in spec.fixed else e.key) from None
