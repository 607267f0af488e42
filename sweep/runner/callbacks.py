"""User Ray Tune callbacks: `[run] callbacks = ["mlflow", "pkg.module.Class", ...]` in the
spec (a short name of one of wdsweep's trackers, sweep.runner.trackers, or the dotted name
of a Callback class; each made with no arguments, configured through its environment
variables, e.g. MLFLOW_TRACKING_URI, WANDB_PROJECT) or Callback instances passed to
`sweep.run`."""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from sweep.plan.spec import TRACKERS, Spec, SpecError
from trainer.errors import BadInput

log = logging.getLogger(__name__)

ALIASES = TRACKERS  # short names of wdsweep's trackers (sweep.plan.spec)


def load(names: tuple[str, ...] | list[str]) -> list[Any]:
    """Import and instantiate each named Tune Callback; bad names are bad input."""
    from ray.tune import Callback  # lazy: Ray only when a sweep runs

    out = []
    for name in names:
        if "." not in name and name not in ALIASES:
            raise SpecError("run.callbacks", f"unknown tracker {name!r}; allowed: "
                            f"{', '.join(ALIASES)}, or dotted names of installed Ray Tune "
                            "Callback classes")
        mod, _, cls = ALIASES.get(name, name).rpartition(".")
        try:
            obj = getattr(importlib.import_module(mod), cls)
        except (ImportError, AttributeError) as e:
            raise SpecError("run.callbacks", f"cannot import {name} ({type(e).__name__}: "
                            f"{_first(e)}); allowed: dotted "
                            "names of installed Ray Tune Callback classes") from None
        if not (isinstance(obj, type) and issubclass(obj, Callback)):
            raise SpecError("run.callbacks", f"{name} is not a ray.tune.Callback class")
        try:
            out.append(obj())
        except BadInput:  # already one line naming its key (a tracker's own check)
            raise
        except Exception as e:  # noqa: BLE001 -- any constructor failure is the spec's
            raise SpecError("run.callbacks", f"{name}() failed: {type(e).__name__}: "
                            f"{_first(e)}") from None
    return out


def spec_callbacks(spec: Spec) -> list[Any]:
    return load(spec.callbacks) if spec.callbacks else []


def saved_callbacks(state: dict[str, Any]) -> list[Any]:
    """The callbacks the study last ran with, as study.json records them (for `resume`;
    never from the study's spec.toml, which nothing checks). The caller has checked that
    this user sealed the record (sweep.runner.guard.require_trust): a name is an import."""
    names = state.get("callbacks") or []
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise SpecError("run.callbacks", "study.json's callbacks are not a list of names")
    return load(names)


@contextlib.contextmanager
def setup_guard(callbacks: Sequence[Any]) -> Iterator[list[tuple[Any, BaseException]]]:
    """Inside: a user callback whose own `setup` raises when Tune starts the experiment
    (and does not then succeed on Tune's retry of a legacy signature) is noted,
    (callback, error), in the list this yields, so the driver can undo the
    experiment it recorded (nothing has trained yet: bad input, not an interrupted
    study). Each `setup` is wrapped on the instance and restored on the way out; the
    classes are left alone (Tune looks at them, e.g. to skip its default loggers)."""
    failed: list[tuple[Any, BaseException]] = []
    wrapped = []
    for cb in callbacks:
        own = getattr(cb, "__dict__", None)
        if own is None or "setup" in own:
            continue  # __slots__, or already an instance attribute: leave it as it is

        def setup(*a: Any, _cb: Any = cb, _orig: Any = cb.setup, **kw: Any) -> Any:
            try:
                out = _orig(*a, **kw)
            except Exception as e:  # noqa: BLE001 -- noted and raised again, for Tune
                failed.append((_cb, e))
                raise
            # Tune calls a legacy `setup(self)` again, without arguments, after the
            # TypeError of the first call: once it succeeds it has not failed.
            failed[:] = [f for f in failed if f[0] is not _cb]
            return out

        own["setup"] = setup
        wrapped.append(own)
    try:
        yield failed
    finally:
        for own in wrapped:
            own.pop("setup", None)


def setup_error(cb: Any, e: BaseException) -> SpecError:
    return SpecError("run.callbacks", f"{type(cb).__name__}.setup() failed ({type(e).__name__}"
                     f": {_first(e)}); nothing ran and the study is as it was")


def _first(e: BaseException) -> str:
    """The first line of an error's message (a callback's errors are one line of ours)."""
    return str(e).splitlines()[0] if str(e) else ""
