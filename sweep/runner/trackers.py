"""Experiment trackers that see members, not packs (driver side).

A Tune trial trains a pack of K members; Ray Tune's own tracker callbacks make one run
per trial with every member's metrics as `mKK/<metric>` and the member table as one
opaque parameter. A wdsweep tracker reads the trial's member table (`trial/table/mKK`,
sweep.plan.members) and each report's `mKK/<metric>` through trainer.schema's codec, and
gives the tracker one run per *member*: its member-table row (weight_decay,
decay_per_step, lambda_norm, seed, batch_size, train_size, total_steps, epochs_T, lr, the
task, the model's keys, each task_args.* / model_args.*, config_hash) as its params, its
metrics under their plain names (test_acc, train_acc, ...) at step = the training step.

* `MLflowTracker` (`[run] callbacks = ["mlflow"]`): tracking URI from the constructor,
  else $MLFLOW_TRACKING_URI, else a SQLite file inside the study, STUDY/mlflow/mlflow.db
  (MLflow 3 refuses its old `file:./mlruns` store); experiment from the constructor, else
  $MLFLOW_EXPERIMENT_NAME, else the study's name. A parent run per trial (`trial-<key>`:
  the pack's shared params and mean accuracies) with its members' runs nested under it
  (tag mlflow.parentRunId). A resumed member continues its run (found by its tags).
* `WandbTracker` (`[run] callbacks = ["wandb"]`): project from the constructor, else
  $WANDB_PROJECT, else the study's name; mode from the constructor or $WANDB_MODE
  (`offline` writes STUDY/wandb/ unless $WANDB_DIR says where); one run per member, its
  pack's trial as the run group (`trial-<key>`), the run id fixed by study and member so
  a resumed member continues its run.

The driver binds each tracker to the study (`prepare`) before the study records an
experiment: a tracker that cannot start (its package not installed, a store it refuses,
no W&B login) is bad input naming `run.callbacks`, and the study is left as it was. A
tracker that fails while the sweep runs logs one warning and records nothing more of that
experiment; the sweep goes on (a tracker failing is not a trial failing). The hooks only
hand their work to one writer thread per tracker, so a slow store never holds up Tune
(whose trials wait for the driver to take each report); the experiment's end waits for
the writer to finish.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ray.tune import Callback

from sweep.plan.members import run_name
from sweep.plan.spec import SpecError
from sweep.store.fs import check_tree
from trainer.schema import TRIAL_KEY, parse_member_id, split_member_key, trial_table

log = logging.getLogger(__name__)

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


class MLflowTracker(Tracker):
    """One MLflow run per member, nested under a run per trial (the module docstring)."""

    kind = "mlflow"
    DIR = "mlflow"  # STUDY/mlflow/mlflow.db: the default tracking store
    _LIVE = (*Tracker._LIVE, "_client")

    def __init__(self, tracking_uri: str | None = None,
                 experiment_name: str | None = None) -> None:
        try:
            import mlflow  # noqa: F401 -- checked now: a missing mlflow is the spec's
        except ImportError as e:
            raise _missing("mlflow", e) from None
        super().__init__()
        self.tracking_uri, self.experiment_name = tracking_uri, experiment_name
        self.uri: str | None = None  # as bound: what this experiment writes to
        self.experiment_id: str | None = None
        self._client: Any = None
        self._tags: dict[str, str] = {}
        self._parents: dict[str, str] = {}  # trial key -> its parent run id
        self._runs: dict[str, str] = {}  # config hash -> the member's run id
        self._last: dict[str, int] = {}  # run id -> the last step it has
        self._open: set[str] = set()  # run ids this experiment has set running

    def _setup(self, study: Path, name: str, study_id: str, experiment: str) -> None:
        from mlflow.tracking import MlflowClient  # lazy: mlflow only when a sweep uses it

        uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
        artifacts = None
        if uri is None:  # the default: a SQLite file inside the study
            d = _study_dir(study, self.DIR)
            uri = f"sqlite:///{(d / 'mlflow.db').resolve()}"
            artifacts = (d / "artifacts").resolve().as_uri()
        exp = self.experiment_name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or name
        try:
            with _mlflow_fail_fast():
                client = MlflowClient(tracking_uri=uri)
                e = client.get_experiment_by_name(exp)
                if e is not None and e.lifecycle_stage != "active":
                    raise ValueError(f"experiment {exp!r} is deleted there (restore it, or "
                                     "name another with $MLFLOW_EXPERIMENT_NAME)")
                eid = e.experiment_id if e is not None else client.create_experiment(
                    exp, artifact_location=artifacts)
        except Exception as e:  # noqa: BLE001 -- whatever MLflow raises, the spec's
            raise SpecError("run.callbacks", f"mlflow cannot use the tracking URI {uri} "
                            f"({type(e).__name__}: {_first_line(e)}); allowed: a "
                            "sqlite:///PATH.db file or an http(s):// MLflow server in "
                            "$MLFLOW_TRACKING_URI, or none for STUDY/mlflow/mlflow.db") from None
        self._client, self.uri, self.experiment_id = client, uri, eid
        self._tags = {STUDY_ID: study_id, STUDY: str(study), EXPERIMENT: experiment}
        self._parents, self._runs, self._last, self._open = {}, {}, {}, set()
        log.info("mlflow: experiment %r at %s, one run per member", exp, uri)

    def _begin(self, key: str, table: dict[str, dict[str, Any]]) -> None:
        if key in self._parents:
            return
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID  # lazy: mlflow

        c = self._client
        found = self._existing(key)  # a resumed trial: its runs go on
        tags = dict(self._tags, **{TRIAL: key})
        parent = found.get(None)
        if parent is None:
            parent = c.create_run(self.experiment_id, tags={**tags, KIND: "pack"},
                                  run_name=f"trial-{key}").info.run_id
            shared = {k: v for k, v in next(iter(table.values())).items()
                      if k != "config_hash" and all(r.get(k) == v for r in table.values())}
            self._log(parent, params={"members": len(table), **shared})
        else:
            self._resume(parent, PACK_METRICS[0])
        self._parents[key] = parent
        self._open.add(parent)
        for mid, row in table.items():
            h = str(row["config_hash"])
            run = found.get(h)
            if run is None:
                run = c.create_run(self.experiment_id, run_name=run_name(row), tags={
                    **tags, KIND: "member", MEMBER: mid, HASH: h,
                    MLFLOW_PARENT_RUN_ID: parent}).info.run_id
                self._log(run, params=row)
            else:
                self._resume(run, "test_acc")
            self._runs[h] = run
            self._open.add(run)

    def _resume(self, run: str, metric: str) -> None:
        """A run of an earlier experiment goes on from the last step it has."""
        self._client.update_run(run, status="RUNNING")
        hist = self._client.get_metric_history(run, metric)
        self._last[run] = max((m.step for m in hist), default=-1)

    def _existing(self, key: str) -> dict[str | None, str]:
        """This study's runs of trial `key` already in the store: None -> the parent,
        config hash -> the member's run."""
        out: dict[str | None, str] = {}
        for r in self._client.search_runs([self.experiment_id],
                                          f"tags.`{TRIAL}` = '{key}'", max_results=10000):
            t = r.data.tags
            if t.get(STUDY_ID) == self._tags[STUDY_ID]:
                out[t.get(HASH) if t.get(KIND) == "member" else None] = r.info.run_id
        return out

    def _metrics(self, key: str, table: dict[str, dict[str, Any]], step: int,
                 per: dict[int, dict[str, float]], pack: dict[str, float]) -> None:
        for mid, row in table.items():
            k, run = parse_member_id(mid), self._runs.get(str(row["config_hash"]))
            if run is not None and k in per and step > self._last.get(run, -1):
                self._log(run, metrics=per[k], step=step)
        parent = self._parents.get(key)
        if parent is not None and pack and step > self._last.get(parent, -1):
            self._log(parent, metrics=pack, step=step)

    def _finish(self, key: str, table: dict[str, dict[str, Any]], status: str) -> None:
        runs = [self._runs.get(str(r["config_hash"])) for r in table.values()]
        for run in [*runs, self._parents.get(key)]:
            if run is not None and run in self._open:
                self._client.set_terminated(run, status)
                self._open.discard(run)

    def _close(self) -> None:
        for run in sorted(self._open):  # a trial Tune never ended: left to `resume`
            self._client.set_terminated(run, KILLED)
        self._open.clear()

    def _log(self, run: str, params: dict[str, Any] | None = None,
             metrics: dict[str, float] | None = None, step: int = 0) -> None:
        from mlflow.entities import Metric, Param  # lazy: mlflow

        now = int(time.time() * 1000)
        self._client.log_batch(
            run, params=[Param(k, str(v)) for k, v in (params or {}).items()],
            metrics=[Metric(k, v, now, step) for k, v in (metrics or {}).items()])
        if metrics:
            self._last[run] = step


@contextlib.contextmanager
def _mlflow_fail_fast() -> Iterator[None]:
    """While binding: an unreachable MLflow server is one refusal in seconds, not minutes
    of MLflow's retries (unless you set them)."""
    keys = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
    old = {k: os.environ.get(k) for k in keys}
    for k, v in keys.items():
        os.environ.setdefault(k, v)
    quiet = [logging.getLogger(n) for n in ("mlflow.store.db.utils", "alembic")]
    levels = [q.level for q in quiet]
    for q in quiet:  # "Creating initial MLflow database tables..." is not news
        q.setLevel(max(q.level, logging.WARNING))
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
        for q, lv in zip(quiet, levels):
            q.setLevel(lv)


class WandbTracker(Tracker):
    """One W&B run per member, grouped by its pack's trial (the module docstring)."""

    kind = "wandb"
    DIR = "wandb"  # STUDY/wandb/: offline runs, unless $WANDB_DIR says where
    _LIVE = (*Tracker._LIVE, "_runs")

    def __init__(self, project: str | None = None, mode: str | None = None,
                 dir: str | None = None) -> None:  # (wandb.init's names)
        try:
            import wandb  # noqa: F401 -- checked now: a missing wandb is the spec's
        except ImportError as e:
            raise _missing("wandb", e) from None
        super().__init__()
        self.project, self.mode, self.dir = project, mode, dir
        self._runs: dict[str, Any] = {}  # config hash -> the member's open wandb Run
        self._last: dict[str, int] = {}  # config hash -> the last step logged
        self._init: dict[str, Any] = {}

    def _setup(self, study: Path, name: str, study_id: str, experiment: str) -> None:
        import wandb  # lazy: wandb only when a sweep uses it

        mode = self.mode or os.environ.get("WANDB_MODE") or "online"
        where = self.dir or os.environ.get("WANDB_DIR") or None
        if where is None and mode != "disabled":
            # wandb writes <dir>/wandb/, and its own links there
            where = str(_study_dir(study, self.DIR, links=True).parent)
        if mode not in ("offline", "disabled", "dryrun"):
            try:
                ok = wandb.login(prompt=False, verify=True, timeout=20)
            except Exception as e:  # noqa: BLE001 -- whatever W&B raises, the spec's
                raise SpecError("run.callbacks", f"wandb cannot log in ({type(e).__name__}: "
                                f"{_first_line(e)}); allowed: a valid $WANDB_API_KEY, or "
                                "WANDB_MODE=offline") from None
            if not ok:
                raise SpecError("run.callbacks", "wandb is not logged in; allowed: "
                                "$WANDB_API_KEY (or `wandb login`), or WANDB_MODE=offline")
        self._init = dict(project=self.project or os.environ.get("WANDB_PROJECT") or name,
                          mode=mode, dir=where, study_id=study_id, experiment=experiment)
        self._runs, self._last = {}, {}
        log.info("wandb: project %r (%s), one run per member", self._init["project"], mode)

    def _begin(self, key: str, table: dict[str, dict[str, Any]]) -> None:
        import wandb  # lazy: wandb

        i = self._init
        for mid, row in table.items():
            h = str(row["config_hash"])
            if h in self._runs:
                continue
            # One id per study and member: a resumed member continues its run.
            rid = f"{h}-{hashlib.sha256(i['study_id'].encode()).hexdigest()[:8]}"
            self._runs[h] = wandb.init(
                project=i["project"], mode=i["mode"], dir=i["dir"], id=rid,
                name=run_name(row), group=f"trial-{key}", job_type="member",
                config=dict(row, **{"wdsweep.study_id": i["study_id"],
                                    "wdsweep.experiment": i["experiment"],
                                    "wdsweep.trial": key, "wdsweep.member": mid}),
                reinit="create_new", resume="allow", allow_val_change=True,
                settings=wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                        save_code=False))

    def _metrics(self, key: str, table: dict[str, dict[str, Any]], step: int,
                 per: dict[int, dict[str, float]], pack: dict[str, float]) -> None:
        for mid, row in table.items():
            h, k = str(row["config_hash"]), parse_member_id(mid)
            run = self._runs.get(h)
            if run is not None and k in per and step > self._last.get(h, -1):
                run.log(per[k], step=step)
                self._last[h] = step

    def _finish(self, key: str, table: dict[str, dict[str, Any]], status: str) -> None:
        for row in table.values():
            run = self._runs.pop(str(row["config_hash"]), None)
            if run is not None:
                run.finish(exit_code=0 if status == FINISHED else 1)

    def _close(self) -> None:
        for h in sorted(self._runs):  # a trial Tune never ended: left to `resume`
            self._runs.pop(h).finish(exit_code=1)
