"""The tracker base: Tune's hooks decoded per member, one writer thread (the package
docstring)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ray.tune import Callback

from sweep.plan.spec import SpecError
from sweep.store.fs import check_tree
from trainer.schema import TRIAL_KEY, split_member_key, trial_table

log = logging.getLogger("sweep.runner.trackers")  # one logger for the trackers

# The tags an MLflow run carries: which study, experiment, trial and member it is.
STUDY_ID, STUDY, EXPERIMENT, TRIAL, MEMBER, HASH, KIND = (
    "wdsweep.study_id", "wdsweep.study", "wdsweep.experiment", "wdsweep.trial",
    "wdsweep.member", "wdsweep.config_hash", "wdsweep.kind")
PACK_METRICS = ("test_acc_mean", "train_acc_mean")  # a trial's report: the pack's
FLUSH_S = 600.0  # at the experiment's end: how long a writer may still take
FINISHED, FAILED, KILLED = "FINISHED", "FAILED", "KILLED"  # how a member's run ends


def prepare(callbacks: Sequence[Any], study: Path, state: dict[str, Any],
            experiment: str) -> None:
    """Bind every wdsweep tracker among `callbacks` to `study` (its name and id from
    study.json's `state`) for experiment `experiment` (exp-NNN)."""
    for cb in callbacks:
        if isinstance(cb, Tracker):
            cb.bind(study, str(state.get("name") or study.name), str(state.get("id") or ""),
                    experiment)


class Tracker(Callback):
    """Tune's hooks, decoded per member and handed to one writer thread. A tracker
    implements `_setup` (raise anything: the spec's error) and the writer's steps
    `_begin`, `_metrics`, `_finish`, `_close`."""

    kind = "tracker"
    _LIVE = ("_ready", "_queue", "_thread")  # never pickled (and a subclass's client)

    def __init__(self) -> None:
        self.failed: str | None = None  # the first failure while the sweep ran
        self.experiment: str | None = None  # exp-NNN, once bound
        self._ready: bool | None = None  # bound, in this process (a pickled copy: None)
        self._queue: queue.Queue | None = None  # the writer's work, in order
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks with the experiment: not the client, nor the writer."""
        return {k: v for k, v in self.__dict__.items() if k not in self._LIVE} | \
            dict.fromkeys(self._LIVE)

    def bind(self, study: Path, name: str, study_id: str, experiment: str) -> None:
        """Set up for one experiment; SpecError('run.callbacks', ...) when it cannot."""
        self._flush()  # an instance used again: the last experiment's writes first
        self._setup(study, name, study_id, experiment)
        self.failed, self.experiment, self._ready = None, experiment, True

    def _setup(self, study: Path, name: str, study_id: str, experiment: str) -> None:
        raise NotImplementedError

    # Tune's hooks (the driver, while the sweep runs) ---------------------------------
    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if (table := trial_table(trial.config)) is not None:
            self._put(self._begin, _key(trial), table)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        table = trial_table(trial.config)
        if table is None or "eval_step" not in result:
            return
        per: dict[int, dict[str, float]] = {}
        for k, v in result.items():
            if (split := split_member_key(k)) is not None and _number(v):
                per.setdefault(split[0], {})[split[1]] = float(v)
        pack = {m: float(result[m]) for m in PACK_METRICS if _number(result.get(m))}
        key = _key(trial)
        self._put(self._begin, key, table)  # (nothing once begun)
        self._put(self._metrics, key, table, int(result["eval_step"]), per, pack)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        if (table := trial_table(trial.config)) is not None:
            done = bool((trial.last_result or {}).get("finished"))
            # stopped early (Ctrl-C): KILLED, and `resume` continues it
            self._put(self._finish, _key(trial), table, FINISHED if done else KILLED)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        if (table := trial_table(trial.config)) is not None:
            self._put(self._finish, _key(trial), table, FAILED)

    def on_experiment_end(self, trials, **info) -> None:
        self._put(self._close)
        self._flush()

    # the writer ------------------------------------------------------------------------
    def _put(self, fn, *args) -> None:
        if not self._ready or self.failed is not None:
            return  # not bound (or a pickled copy), or stopped after a failure
        if self._thread is None:
            self._queue = queue.Queue()
            self._thread = threading.Thread(target=self._work, name=f"wdsweep-{self.kind}",
                                            daemon=True)
            self._thread.start()
        self._queue.put((fn, args))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, args = item
            if self.failed is not None:
                continue  # drop the rest
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 -- a tracker failing is not a trial failing
                self.failed = f"{type(e).__name__}: {_first_line(e)}"
                log.warning("run.callbacks: %s failed (%s); it records nothing more of %s, "
                            "the sweep goes on", self.kind, self.failed, self.experiment)

    def _flush(self, timeout: float = FLUSH_S) -> None:
        """Wait for the writer to finish what it was given."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("run.callbacks: %s still writing after %.0f s; left unfinished "
                        "(%d writes)", self.kind, timeout, self._queue.qsize())
        self._thread = self._queue = None

    # what the writer does: one tracker's store ---------------------------------------
    def _begin(self, key: str, table: dict[str, dict[str, Any]]) -> None:
        raise NotImplementedError

    def _metrics(self, key: str, table: dict[str, dict[str, Any]], step: int,
                 per: dict[int, dict[str, float]], pack: dict[str, float]) -> None:
        raise NotImplementedError

    def _finish(self, key: str, table: dict[str, dict[str, Any]], status: str) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


def _key(trial) -> str:
    return str(trial.config[TRIAL_KEY]["key"])


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _first_line(e: BaseException, limit: int = 240) -> str:
    s = str(e).strip()
    s = s.splitlines()[0] if s else type(e).__name__
    s = s.split(". ")[0]  # MLflow's messages are paragraphs: their first sentence
    return s if len(s) <= limit else s[:limit - 3] + "..."


def _missing(package: str, e: ImportError) -> SpecError:
    return SpecError("run.callbacks", f"{package} is not installed ({_first_line(e)}); "
                     f"allowed: `pip install {package}`, or remove \"{package}\" from "
                     "run.callbacks")


def _study_dir(study: Path, name: str, links: bool = False) -> Path:
    """STUDY/<name>, a real directory of the tracker's own, with no link in it unless
    the tracker makes its own (`links`: W&B's latest-run, debug.log) (sweep.store.fs)."""
    d = study / name
    if d.is_symlink() or (d.exists() and not d.is_dir()):
        raise SpecError("run.callbacks", f"{d} is not a directory; wdsweep keeps the "
                        f"tracker's files there: remove it")
    if not links:
        check_tree(study, d)
    d.mkdir(parents=True, exist_ok=True)
    return d

