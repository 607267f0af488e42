"""A live progress view (instead of Ray's tables, as `logging` records: stderr in the
CLI) that also keeps STUDY/status.json, per trial and per member (step, latest test
accuracy, ETA) for `wdsweep status`."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.stopper import Stopper

from sweep.store.study import STATUS, write_json
from trainer.schema import member_key, parse_member_id, trial_table

log = logging.getLogger(__name__)

_STATE = {"PENDING": "pending", "RUNNING": "running", "TERMINATED": "completed",
          "ERROR": "errored", "PAUSED": "pending"}


def _state(trial: Any) -> str:
    """Tune calls a trial stopped by Ctrl-C TERMINATED too: completed means finished."""
    s = _STATE.get(trial.status, "pending")
    if s == "completed" and not (trial.last_result or {}).get("finished"):
        return "pending"
    return s


def _members(trial: Any) -> int:
    return len(trial.config["trial"]["members"])


class Progress(Callback, Stopper):
    """Also Tune's stopper: when STUDY/status.json cannot be written (a full disk)
    the experiment stops, and the driver reports the fault once Tune has saved what
    it can (`fault`); `wdsweep resume` continues after the operator frees space."""

    # Tune pickles its callbacks with the experiment: hold no open streams here.
    def __init__(self, study: Path, experiment: str, member_steps: int, every_s: float = 5.0):
        self.study, self.experiment, self.every_s = study, experiment, every_s
        self.member_steps = member_steps  # the whole experiment's work
        self.t0 = time.monotonic()
        self.last = 0.0
        self.steps: dict[str, int] = {}  # trial id -> member-steps done (this driver)
        self.fault: str | None = None

    # Stopper ---------------------------------------------------------------------
    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.fault is not None

    def stop_all(self) -> bool:
        return self.fault is not None

    # Tune hooks ------------------------------------------------------------------
    def setup(self, **info):  # also on restore: the clock starts with this driver
        self.t0, self.last, self.steps = time.monotonic(), 0.0, {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.steps[trial.trial_id] = int(result.get("step", 0)) * _members(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        log.warning("trial %s errored: see %s/error.txt", trial.trial_id, trial.path)
        self._emit(trials, force=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._emit(trials, force=True)

    def on_step_end(self, iteration, trials, **info):
        self._emit(trials)

    def on_experiment_end(self, trials, **info):
        self._emit(trials, force=True)

    # view ----------------------------------------------------------------------------
    def counts(self, trials) -> dict[str, Any]:
        c = {k: 0 for k in ("completed", "running", "pending", "errored")}
        m = dict(c)
        for t in trials:
            s = _state(t)
            c[s] += 1
            m[s] += _members(t)
        return {"trials": c, "members": m}

    def _emit(self, trials, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        counts = self.counts(trials)
        done, elapsed = sum(self.steps.values()), now - self.t0
        # Rate since this driver started; a resumed run's restored steps count as done.
        eta = f" | ETA {_fmt(elapsed * (self.member_steps - done) / done)}" if done else ""
        c = counts["trials"]
        log.info("[%s] trials: %d done, %d running, %d pending, %d errored | members %d/%d%s",
                 _fmt(elapsed), c["completed"], c["running"], c["pending"], c["errored"],
                 counts["members"]["completed"], sum(counts["members"].values()), eta)
        if self.fault is not None:
            return
        try:
            write_json(self.study / STATUS, {"experiment": self.experiment,
                                             "updated": time.time(), **counts,
                                             "per_trial": [_row(t) for t in trials]})
        except OSError as e:
            self.fault = f"cannot write {self.study / STATUS}: {e.strerror or e}"


def _row(t: Any) -> dict[str, Any]:
    r = t.last_result or {}
    status, step, total = _state(t), r.get("step", 0), r.get("total_steps")
    return {"trial_id": t.trial_id, "key": t.config["trial"]["key"],
            "status": status, "members": _members(t), "step": step, "total_steps": total,
            "test_acc_mean": r.get("test_acc_mean"), "node": r.get("node"),
            "member_rows": [dict(row, member=k, status=status, step=step,
                                 test_acc=r.get(member_key(parse_member_id(k), "test_acc")),
                                 eta_s=eta_s(r))
                            for k, row in (trial_table(t.config) or {}).items()]}


def eta_s(r: dict[str, Any]) -> float | None:
    """Seconds left for a trial, from its rate since it (re)started."""
    step, total, secs = r.get("step", 0), r.get("total_steps"), r.get("train_seconds")
    done = step - (r.get("resumed_from") or 0)
    if not total or secs is None or done <= 0:
        return None
    return secs / done * (total - step)


def _fmt(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60}:{s % 60:02d}"
