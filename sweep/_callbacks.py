"""User Ray Tune callbacks: `[run] callbacks = ["pkg.module.Class", ...]` in the spec
(each class made with no arguments; configure it through its environment variables, e.g.
MLFLOW_TRACKING_URI, WANDB_PROJECT) or Callback instances passed to `sweep.run`."""

from __future__ import annotations

import importlib
import logging
import tomllib
from pathlib import Path
from typing import Any

from sweep.spec import Spec, SpecError

log = logging.getLogger(__name__)


def load(names: tuple[str, ...] | list[str]) -> list[Any]:
    """Import and instantiate each named Tune Callback; bad names are bad input."""
    from ray.tune import Callback

    out = []
    for name in names:
        mod, _, cls = name.rpartition(".")
        try:
            obj = getattr(importlib.import_module(mod), cls)
        except (ImportError, AttributeError) as e:
            raise SpecError("run.callbacks", f"cannot import {name} ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}); allowed: dotted "
                            "names of installed Ray Tune Callback classes") from None
        if not (isinstance(obj, type) and issubclass(obj, Callback)):
            raise SpecError("run.callbacks", f"{name} is not a ray.tune.Callback class")
        try:
            out.append(obj())
        except Exception as e:  # noqa: BLE001 -- any constructor failure is the spec's
            raise SpecError("run.callbacks", f"{name}() failed: {type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''}") from None
    return out


def spec_callbacks(spec: Spec) -> list[Any]:
    return load(spec.callbacks) if spec.callbacks else []


def saved_callbacks(study: Path) -> list[Any]:
    """The callbacks of the spec a study last ran (for `resume`)."""
    p = study / "spec.toml"
    if not p.exists():
        return []
    try:
        names = tomllib.loads(p.read_text()).get("run", {}).get("callbacks", [])
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        log.warning("%s is unreadable (%s): resuming without its run.callbacks", p, e)
        return []
    return load(names)
