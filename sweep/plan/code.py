"""Your own task and model in a sweep (issue 9): the spec keys `task`, `model`,
`task_args`, `model_args` and `code`.

`code` lists directories (relative to the spec) that hold the user's modules. The
driver imports them from there (sys.path, only while it probes them) and ships them to
every Ray worker through Ray's runtime environment (`py_modules`: each module and
package in those directories), so a multi-node sweep imports them without installing
anything on the nodes. Before Ray starts, the task and the model are called once per
distinct (task, task_args, model, model_args) with the first member's arguments
(trainer.user.probe): bad input is one line naming the spec key; B is the task's
training-set size; a model that vmap cannot pack runs one member per trial.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import trainer
from sweep.plan.limits import coerce_in
from trainer import ConfigError, TrainConfig
from trainer.errors import SpecError
from trainer.user import Probe, custom, is_ref
from trainer.user import probe as run_probe

log = logging.getLogger(__name__)

TOP_KEYS = ("task", "model", "task_args", "model_args")
_PROBES: dict[str, Probe] = {}


def parse_user(raw: dict[str, Any], fixed: dict[str, Any], grid: dict[str, Any],
               base: Path | None) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The spec's top-level trainer keys (task, model, task_args, model_args) and its
    code directories, resolved against the spec's directory."""
    user: dict[str, Any] = {}
    for k in TOP_KEYS:
        if k in raw:
            if k in fixed:
                raise SpecError(f"fixed.{k}", f"conflicts with the top-level {k}; allowed: one "
                                "of them")
            user[k] = coerce_in(k, k, raw[k])
    task = user.get("task", fixed.get("task"))
    if is_ref(task):
        for where, table in (("fixed", fixed), ("grid", grid)):
            if "train_size" in table:
                raise SpecError(f"{where}.train_size", "set by your task (B = len(train x)); "
                                "allowed: vary it through task_args")
    code = raw.get("code", [])
    if not isinstance(code, list) or not all(isinstance(d, str) and d for d in code):
        raise SpecError("code", f"got {code!r}; allowed: a list of directories relative to "
                        "the spec, e.g. [\"models\"]")
    dirs = []
    for d in code:
        p = Path(d).expanduser()
        p = (p if p.is_absolute() else (base or Path.cwd()) / p).resolve()
        if not p.is_dir():
            raise SpecError("code", f"got {d!r}: {p} is not a directory; allowed: directories "
                            "(relative to the spec) that hold your modules")
        dirs.append(str(p))
    return user, tuple(dirs)


# -- shipping the code to Ray workers --------------------------------------------------
def runtime_env(code: Sequence[str]) -> dict[str, Any]:
    """Ray's runtime_env for `code`: every module (*.py) and package directory in each."""
    mods: list[str] = []
    for d in code:
        found = [str(p) for p in sorted(Path(d).iterdir())
                 if (p.suffix == ".py" and p.stem.isidentifier())
                 or (p.is_dir() and p.name.isidentifier() and p.name != "__pycache__")]
        if not found:
            raise SpecError("code", f"{d} holds no Python module or package; allowed: "
                            "directories that hold your modules")
        mods.extend(found)
    return {"py_modules": mods}


def check_connected(code: Sequence[str]) -> None:
    """Ray was connected before wdsweep: its job must already ship the code."""
    if not code:
        return
    import ray  # lazy: Ray only when a sweep runs

    env = ray.get_runtime_context().runtime_env or {}
    if not env.get("py_modules") and not env.get("working_dir"):
        raise SpecError("code", "Ray is already connected in this process without a "
                        "runtime_env that ships these directories; allowed: let wdsweep "
                        "connect (--address, or no ray.init before sweep.run), or "
                        "ray.init(runtime_env=sweep.plan.code.runtime_env(code))")


@contextlib.contextmanager
def importing(code: Sequence[str]) -> Iterator[None]:
    """The code directories on sys.path for a while; modules imported from them are
    forgotten afterwards (another spec may hold a module of the same name)."""
    old, before = list(sys.path), set(sys.modules)
    sys.path[:0] = list(code)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = old
        roots = tuple(str(Path(d)) for d in code)
        for name in set(sys.modules) - before:
            f = getattr(sys.modules[name], "__file__", None) or ""
            if roots and f.startswith(roots):
                del sys.modules[name]


# -- probing and completing members ----------------------------------------------------
def _key(m: TrainConfig, code: Sequence[str]) -> str:
    return json.dumps([m.task, m.task_args, m.model, m.model_args, list(code)],
                      sort_keys=True)


def probe(m: TrainConfig, code: Sequence[str] = ()) -> Probe:
    """The member's probe, once per (task, task_args, model, model_args, code)."""

    k = _key(m, code)
    if k not in _PROBES:
        with importing(code):
            try:
                _PROBES[k] = run_probe(m)
            except SpecError:
                raise
            except ConfigError as e:  # a spec's key: task, model, task_args, model_args
                raise e.rekey(e.key) from None
    return _PROBES[k]


def complete(members: Sequence[TrainConfig], code: Sequence[str] = ()) -> list[TrainConfig]:
    """Members with your task get train_size = B (from one call of the task)."""
    out = []
    for m in members:
        if custom(m):
            pr = probe(m, code)
            if is_ref(m.task) and m.train_size != pr.train_size:
                m = m.replace(train_size=pr.train_size)
        out.append(m)
    return out


def packs(m: TrainConfig, code: Sequence[str] = ()) -> bool:
    return not custom(m) or probe(m, code).packable


def notes(members: Sequence[TrainConfig], code: Sequence[str] = ()) -> tuple[str, ...]:
    """What the plan says about models that cannot be packed."""
    said: dict[str, str] = {}
    for m in members:
        if custom(m) and not (pr := probe(m, code)).packable:
            said.setdefault(m.model or "ResMLP", f"model {m.model} cannot be packed "
                            f"({pr.why}): one member per trial")
    return tuple(said.values())


def train_members(base: TrainConfig, sets: Sequence[str]) -> list[TrainConfig]:
    """`wdsweep train`: --set code=DIR,... puts your modules on sys.path (for the run)."""

    code = [str(Path(d).expanduser().resolve()) for s in sets if s.startswith("code=")
            for d in s.partition("=")[2].split(",") if d]
    for d in code:
        if not Path(d).is_dir():
            raise ConfigError("code", f"{d} is not a directory; allowed: directories that "
                              "hold your modules")
    sys.path[:0] = code
    members = complete(trainer.members(base, [s for s in sets if not s.startswith("code=")]))
    if len(members) > 1 and not packs(members[0]):
        raise ConfigError("model", f"{members[0].model} cannot be packed "
                          f"({probe(members[0]).why}); allowed: one member per run (no comma "
                          "lists)")
    return members


# -- pinning: the code a study was made with ---------------------------------------------
_SKIP = ("__pycache__",)


def digest(d: str) -> dict[str, str]:
    """sha256 of every file under directory `d` (links are not followed: a link is
    recorded by its target's name), keyed by path relative to `d`."""
    out: dict[str, str] = {}
    for root, dirs, files in os.walk(d, followlinks=False):
        dirs[:] = sorted(x for x in dirs if x not in _SKIP)
        for f in sorted(files):
            if f.endswith((".pyc", ".pyo")):
                continue
            p = Path(root) / f
            rel = str(p.relative_to(d))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            else:
                try:
                    out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
                except OSError as e:
                    raise SpecError("code", f"cannot read {p} ({e.strerror}); allowed: "
                                    "directories of readable files") from None
    return out


def refs(members: Sequence[TrainConfig]) -> list[str]:
    """The user task and model names the members train (`package.module:function`)."""
    return sorted({v for m in members for v in (m.task, m.model) if is_ref(v)})


def record(code: Sequence[str], members: Sequence[TrainConfig],
           old: dict[str, Any] | None = None) -> dict[str, Any]:
    """study.json's `code`: each directory's file digests and every task/model name the
    study has trained (kept from `old`: an extension adds, never forgets)."""
    old = old if isinstance(old, dict) else {}
    dirs = {**old.get("dirs", {}), **{d: digest(d) for d in code}}
    return {"dirs": dirs, "refs": sorted(set(old.get("refs", [])) | set(refs(members)))}


def changes(want: dict[str, str], got: dict[str, str], n: int = 3) -> str:
    """What differs between two digests, in a few words."""
    parts = [f"{k} {what}" for k, what in
             [*((k, "changed") for k in sorted(want.keys() & got.keys()) if want[k] != got[k]),
              *((k, "added") for k in sorted(got.keys() - want.keys())),
              *((k, "removed") for k in sorted(want.keys() - got.keys()))]]
    more = f" and {len(parts) - n} more" if len(parts) > n else ""
    return ", ".join(parts[:n]) + more


def check_outside(code: Sequence[str], study: Path, key: str = "code") -> None:
    """Code is never imported from inside a study (whoever writes the study could
    plant it there)."""
    for d in code:
        if Path(d).resolve().is_relative_to(study.resolve()):
            raise SpecError(key, f"{d} is inside the study {study}; allowed: code directories "
                            "outside it (a study is data: wdsweep never imports from it)")


def check_pinned(recorded: Any, code: Sequence[str], trust: bool, key: str = "code") -> None:
    """The code directories hold what the study recorded when it trained them; a change
    is one line naming the files, unless `trust` (then a warning says what changed)."""
    dirs = recorded.get("dirs", {}) if isinstance(recorded, dict) else {}
    for d in code:
        if d not in dirs or not isinstance(dirs[d], dict):
            continue  # a directory this study has not used yet
        what = changes(dirs[d], digest(d))
        if not what:
            continue
        if not trust:
            raise SpecError(key, f"{d} changed since this study used it ({what}); allowed: "
                            "restore it, or --trust-code to go on with the changed code")
        log.warning("code: %s changed since this study used it (%s); going on (--trust-code)",
                    d, what)
