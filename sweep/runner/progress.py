"""The live progress view (instead of Ray's tables) and STUDY/status.json, per trial and
per member (step, latest test accuracy, ETA) for `wdsweep status`.

* On a terminal (stderr a TTY, INFO records shown) one status line, rewritten in place
  (`\\r`) about once a second; any other message first clears it, and the next tick draws
  it again. Elsewhere (a file, a pipe, CI) a plain `logging` record every LOG_EVERY_S
  seconds, or sooner after each LOG_EVERY_FRACTION of the experiment's member-steps (at
  most one per LOG_GAP_S). Both end with one last line when the experiment ends.
* The ETA comes only from measured step rates: a trial's rate is measured on its own
  clock (`train_seconds`) over MIN_EVALS evaluations (the first one, after its start-up,
  is the baseline), and the ETA is the member-steps left over the running trials' rates.
  Until a rate is measured there is no ETA.
* A failed trial is one line: its key (the 12-hex trial key every wdsweep message, table
  and directory uses), its members (λ, seed, b, config hash), the error's last line, and
  where its whole traceback is (the trial's error.txt; results.csv keeps it in `error`).
  Tune's own report of the failure is dropped from the terminal (sweep.runner.session).
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune import Callback
from ray.tune.stopper import Stopper

from sweep.runner.statusline import LINE, columns, is_tty
from sweep.store.study import STATUS, write_json
from trainer.schema import member_key, parse_member_id, trial_table

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0  # STUDY/status.json
TTY_EVERY_S = 1.0  # the status line on a terminal
LOG_EVERY_S = 30.0  # a progress record elsewhere, at the latest after this long
LOG_EVERY_FRACTION = 0.1  # ... or after this much more of the experiment's member-steps,
LOG_GAP_S = 5.0  # ... but never twice within this long
MIN_EVALS = 3  # evaluations a trial's step rate is measured over before an ETA is shown
NAMED_MEMBERS = 4  # members a failure line names (then "and N more")

_STATE = {"PENDING": "pending", "RUNNING": "running", "TERMINATED": "completed",
          "ERROR": "errored", "PAUSED": "pending"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _state(trial: Any) -> str:
    """Tune calls a trial stopped by Ctrl-C TERMINATED too: completed means finished."""
    s = _STATE.get(trial.status, "pending")
    if s == "completed" and not (trial.last_result or {}).get("finished"):
        return "pending"
    return s


def _members(trial: Any) -> int:
    return len(trial.config["trial"]["members"])


def _key(trial: Any) -> str:
    """The trial's key: what wdsweep names a trial by (Tune's own trial_id is Tune's)."""
    return trial.config["trial"]["key"]


@dataclass
class _Rate:
    """A trial's step rate on its own clock: from its first report (after its start-up)
    to its latest."""

    t0: float
    step0: int
    t: float
    step: int
    evals: int = 1

    def add(self, t: float, step: int) -> bool:
        """False when the trial started again (a Tune retry): then measure anew."""
        if step < self.step or t < self.t:
            return False
        if step > self.step:
            self.t, self.step, self.evals = t, step, self.evals + 1
        return True

    def steps_per_s(self) -> float | None:
        if self.evals < MIN_EVALS or self.t <= self.t0 or self.step <= self.step0:
            return None
        return (self.step - self.step0) / (self.t - self.t0)


class Progress(Callback, Stopper):
    """Also Tune's stopper: when STUDY/status.json cannot be written (a full disk)
    the experiment stops, and the driver reports the fault once Tune has saved what
    it can (`fault`); `wdsweep resume` continues after the operator frees space."""

    # Tune pickles its callbacks with the experiment: hold no open streams here (the
    # terminal line is sweep.runner.statusline's `LINE`; `stream` is for tests, never pickled).
    def __init__(self, study: Path, experiment: str, member_steps: int,
                 every_s: float = STATUS_EVERY_S, *, clock=time.monotonic, stream=None):
        self.study, self.experiment, self.every_s = study, experiment, every_s
        self.member_steps = member_steps  # the whole experiment's work
        self.clock, self.stream = clock, stream
        self.fault: str | None = None
        self.setup()

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__, stream=None)

    # Stopper ---------------------------------------------------------------------
    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.fault is not None

    def stop_all(self) -> bool:
        return self.fault is not None

    # Tune hooks ------------------------------------------------------------------
    def setup(self, **info):  # also on restore: the clock starts with this driver
        self.t0 = self.clock()
        self.last_status, self.last_shown = -float("inf"), self.t0
        self.shown_fraction = 0.0
        self.pos: dict[str, int] = {}  # Tune trial id -> member-steps reached
        self.rates: dict[str, _Rate] = {}  # Tune trial id -> its measured step rate
        self.throughput: float | None = None  # member-steps/s, the latest estimate

    def on_trial_result(self, iteration, trials, trial, result, **info):
        step = int(result.get("step", 0))
        self.pos[trial.trial_id] = step * _members(trial)
        t = result.get("train_seconds")
        t = self.clock() if t is None else float(t)
        r = self.rates.get(trial.trial_id)
        if r is None or not r.add(t, step):
            self.rates[trial.trial_id] = _Rate(t, step, t, step)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.rates.pop(trial.trial_id, None)  # it starts again from its checkpoint
        n = getattr(getattr(trial, "run_metadata", None), "num_failures", None)
        most = getattr(trial, "max_failures", None)
        tries = "" if not n else f" (retry {n})" if most is None or most < 0 else \
            f" (retry {n} of {most})"
        log.warning("%s; Tune retries it from its newest checkpoint%s", failure_line(trial),
                    tries)

    def on_trial_error(self, iteration, trials, trial, **info):
        log.error("%s", failure_line(trial, self.study))
        self._tick(trials, status=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._tick(trials, status=True)

    def on_step_end(self, iteration, trials, **info):
        self._tick(trials)

    def on_experiment_end(self, trials, **info):
        self._tick(trials, status=True, last=True)

    # view ----------------------------------------------------------------------------
    def counts(self, trials) -> dict[str, Any]:
        c = {k: 0 for k in ("completed", "running", "pending", "errored")}
        m = dict(c)
        for t in trials:
            s = _state(t)
            c[s] += 1
            m[s] += _members(t)
        return {"trials": c, "members": m}

    def eta_s(self, trials) -> float | None:
        """Seconds left: the member-steps left over the running trials' measured rates
        (a running trial not yet measured counts at the measured trials' mean); None
        until some trial's rate is measured."""
        rates = {tid: r.steps_per_s() for tid, r in self.rates.items()}
        size = {t.trial_id: _members(t) for t in trials}
        measured = [v * size.get(tid, 1) for tid, v in rates.items() if v is not None]
        if not measured:
            return None
        mean = sum(measured) / len(measured)
        running = [t.trial_id for t in trials if _state(t) == "running"]
        if running:
            self.throughput = sum(rates[tid] * size[tid] if rates.get(tid) is not None
                                  else mean for tid in running)
        left = max(0, self.member_steps - sum(self.pos.values()))
        if left == 0:
            return 0.0
        return left / self.throughput if self.throughput else None

    def line(self, trials, width: int | None = None) -> str:
        """`[0:42] trials 3/8 done, 2 running | 31% of 40,000 member-steps, 1,234/s |
        ETA 1:34` (`, 1 errored` once one has); within `width` the rate goes first, then
        the member-steps total."""
        c = self.counts(trials)["trials"]
        done = sum(self.pos.values())
        pct = 100 * min(1.0, done / self.member_steps) if self.member_steps else 100.0
        eta = self.eta_s(trials)
        head = (f"[{_fmt(self.clock() - self.t0)}] trials {c['completed']}/{len(trials)} "
                f"done, {c['running']} running"
                + (f", {c['errored']} errored" if c["errored"] else ""))
        rate = f", {self.throughput:,.0f}/s" if eta is not None and self.throughput else ""
        tail = f" | ETA {_fmt(eta)}" if eta is not None and done < self.member_steps else ""
        for steps in (f" | {pct:.0f}% of {self.member_steps:,} member-steps{rate}",
                      f" | {pct:.0f}% of {self.member_steps:,} member-steps",
                      f" | {pct:.0f}%"):
            text = head + steps + tail
            if width is None or len(text) < width:
                break
        return text

    def _tick(self, trials, status: bool = False, last: bool = False) -> None:
        now = self.clock()
        if status or now - self.last_status >= self.every_s:
            self.last_status = now
            self._write_status(trials)
        if not log.isEnabledFor(logging.INFO):
            return
        stream = self.stream or sys.stderr
        if is_tty(stream):
            if last:
                LINE.clear()
                LINE.release()
                log.info("%s", self.line(trials))  # the last line stays on the screen
            elif now - self.last_shown >= TTY_EVERY_S or not LINE.text:
                self.last_shown = now
                LINE.show(stream, self.line(trials, columns(stream)))
            return
        fraction = sum(self.pos.values()) / self.member_steps if self.member_steps else 1.0
        since = now - self.last_shown
        if last or since >= LOG_EVERY_S or (
                since >= LOG_GAP_S and _tenth(fraction) > _tenth(self.shown_fraction)):
            self.last_shown, self.shown_fraction = now, fraction
            log.info("%s", self.line(trials))

    def _write_status(self, trials) -> None:
        if self.fault is not None:
            return
        counts = self.counts(trials)
        try:
            write_json(self.study / STATUS, {"experiment": self.experiment,
                                             "updated": time.time(), **counts,
                                             "per_trial": [self._row(t) for t in trials]})
        except OSError as e:
            self.fault = f"cannot write {self.study / STATUS}: {e.strerror or e}"

    def _row(self, t: Any) -> dict[str, Any]:
        r = t.last_result or {}
        status, step, total = _state(t), r.get("step", 0), r.get("total_steps")
        rate = self.rates.get(t.trial_id)
        per_s = rate.steps_per_s() if rate is not None and status == "running" else None
        eta = (total - step) / per_s if per_s and total is not None else None
        # trial_id is the trial's key, as in results.csv; Tune's own id is tune_trial_id.
        return {"trial_id": _key(t), "key": _key(t), "tune_trial_id": t.trial_id,
                "status": status, "members": _members(t), "step": step, "total_steps": total,
                "test_acc_mean": r.get("test_acc_mean"), "node": r.get("node"),
                "member_rows": [dict(row, member=k, status=status, step=step,
                                     test_acc=r.get(member_key(parse_member_id(k), "test_acc")),
                                     eta_s=eta)
                                for k, row in (trial_table(t.config) or {}).items()]}


# A failed trial, in one line -------------------------------------------------------------
def failure_line(trial: Any, study: Path | None = None) -> str:
    """`trial 36c3a18dc9f1 failed at step 16/32 (2 members: λ=0 seed=0 b=16 e4b3945f5aafe4d8,
    ...): BadInput: task_args.n: ...; traceback: .../trial-36c3a18dc9f1/error.txt`"""
    rows = list((trial_table(trial.config) or {}).values())
    named = ", ".join(f"λ={r.get('weight_decay', '?'):.4g} seed={r.get('seed', '?')} "
                      f"b={r.get('batch_size', '?')} {r.get('config_hash', '?')}"
                      for r in rows[:NAMED_MEMBERS])
    more = f" and {len(rows) - NAMED_MEMBERS} more" if len(rows) > NAMED_MEMBERS else ""
    r = trial.last_result or {}
    at = f" at step {r['step']}/{r['total_steps']}" if r.get("step") and \
        r.get("total_steps") else " before its first evaluation"
    where = error_file(trial)
    whole = f"; traceback: {where}" if where else ""
    if study is not None:
        whole += f" (and {Path(study) / 'results.csv'}, column error)"
    n = len(rows)
    return (f"trial {_key(trial)} failed{at} ({n} member{'s' if n != 1 else ''}: {named}"
            f"{more}): {last_error_line(trial)}{whole}")


def error_file(trial: Any) -> str | None:
    """Where the trial's error.txt ends up: its directory in the study's storage."""
    path = getattr(trial, "path", None)
    if not path:
        return None
    fs = getattr(getattr(trial, "storage", None), "storage_filesystem", None)
    scheme = getattr(fs, "type_name", "local")
    prefix = f"{scheme}://" if scheme not in ("local", "") and "://" not in str(path) else ""
    return f"{prefix}{str(path).rstrip('/')}/error.txt"


def last_error_line(trial: Any) -> str:
    """The error's last line (`BadInput: task_args.n: ...`), from the error.txt Tune
    has just written on this machine; the exception's module path left out."""
    text = ""
    local = getattr(trial, "error_file", None)  # the driver's copy, written before the hooks
    if local:
        try:
            text = Path(local).read_text(errors="replace")
        except OSError:
            text = ""
    lines = [ln.strip() for ln in _ANSI.sub("", text).splitlines() if ln.strip()]
    if not lines:
        return "(no error text; see the trial's error.txt)"
    return re.sub(r"^(?:[A-Za-z_][\w]*\.)+(?=[A-Za-z_]\w*(?::|$))", "", lines[-1])


def _tenth(fraction: float) -> int:
    """Which LOG_EVERY_FRACTION of the work `fraction` has reached (0.3 is the 3rd)."""
    return math.floor(fraction / LOG_EVERY_FRACTION + 1e-9)


def _fmt(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60}:{s % 60:02d}"
