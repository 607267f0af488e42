"""MLflow: one run per member, nested under a run per trial (the package docstring)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sweep.plan.members import run_name
from sweep.plan.spec import SpecError
from sweep.runner.trackers._base import (
    EXPERIMENT,
    HASH,
    KILLED,
    KIND,
    MEMBER,
    PACK_METRICS,
    STUDY,
    STUDY_ID,
    TRIAL,
    Tracker,
    _first_line,
    _missing,
    _study_dir,
    log,
)
from trainer.schema import parse_member_id


class MLflowTracker(Tracker):
    """One MLflow run per member, nested under a run per trial (the package docstring)."""

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

