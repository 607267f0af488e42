"""Starting an experiment: what it writes into the study (its spec, plan and entry in
study.json, in that order: the entry is what makes it part of the study), and the one
line a machine's fault (a full disk) before that entry gets: nothing was started, run
the same command again. After the entry, a fault is the driver's (`wdsweep resume`)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sweep.plan.spec import Spec
from sweep.plan.trial import ExpState, Resources, Trial
from sweep.runner.session import ray_version
from sweep.store import records as _records
from sweep.store import study as st
from trainer.errors import not_started
from trainer.fsutil import atomic_write_bytes


@contextmanager
def before_the_record(study: Path) -> Iterator[None]:
    """A machine's fault (a full disk) before the study recorded a new experiment is
    one line saying to run the same command again; after it, `wdsweep resume` (_launch)."""
    n = len(st.read_state(study)["experiments"])
    try:
        yield
    except OSError as e:
        if len(st.read_state(study)["experiments"]) > n:
            raise
        raise not_started(e) from None


def record_experiment(study: Path, state: dict[str, Any], name: str, uri: str,
                      trials: list[Trial], res: Resources, code: Sequence[str],
                      spec: Spec | None, continues: Sequence[str]) -> None:
    """Write experiment `name`'s spec, plan and entry in study.json (last: the entry
    is what makes it part of the study)."""
    if spec is not None:
        _save_spec(study, spec, name)
    record = res.as_dict() | ({"code": list(code)} if code else {})
    plan_sha = _records.write_plan(study, name, trials, uri=uri, created=time.time(), **record)
    for e in state["experiments"]:
        if e["name"] in continues:
            e["status"], e["continued_in"] = ExpState.CONTINUED, name
    state["ray_version"] = ray_version()
    state["experiments"].append(dict(
        name=name, uri=uri, status=ExpState.RUNNING, created=time.time(),
        trials=[t.key for t in trials], members=[h for t in trials for h in t.hashes],
        plan_sha256=plan_sha, continues=list(continues), **record))
    st.write_state(study, state)


def _save_spec(study: Path, spec: Spec, name: str) -> None:
    (study / _records.SPECS).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(study / _records.SPECS / f"{name}.toml", spec.text.encode())
    atomic_write_bytes(study / _records.SPEC, spec.text.encode())


__all__ = ["before_the_record", "record_experiment"]
