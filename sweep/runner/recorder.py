"""Results as they happen, on the driver: a Tune callback that

* writes one TensorBoard run per member under STUDY/tensorboard/ (its row of the member
  table as hparams: λ in every unit, seed, b, B, T, lr, the model's keys and each
  task_args.* / model_args.* axis; one curve per member), from the `mKK/<metric>`
  values each evaluation reports (sweep.runner.trainable); and
* folds a pack's members into results.csv / history.csv as soon as its trial
  completes (study.merge_results: atomic, checksummed in study.json, a member's
  rows exactly once), so a killed driver loses no finished trial and `resume`
  never runs or adds it again.

Both run in the driver, so they work the same for a local Ray and a cluster.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from ray.tune import Callback

from sweep.plan.members import MEMBER_METRICS as SCALARS
from sweep.plan.members import run_name
from sweep.plan.trial import Trial
from sweep.store import study as st
from sweep.store.rows import INFO, completed_rows
from trainer.schema import member_key, parse_member_id, trial_table

log = logging.getLogger(__name__)

TENSORBOARD = "tensorboard"


class Live(Callback):
    """Tune pickles callbacks with the experiment: open writers are not pickled."""

    def __init__(self, study: Path, experiment: str, tensorboard: bool = True) -> None:
        self.study, self.experiment, self.tensorboard = study, experiment, tensorboard
        self.fault: str | None = None
        self._writers: dict[str, Any] = {}  # config hash -> SummaryWriter (open trials)
        self._last: dict[str, int] = {}  # config hash -> last step written
        self.merged: set[str] = set()  # trial keys folded into the tables

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_writers"} | {"_writers": {}}

    # TensorBoard -----------------------------------------------------------------------
    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if not self.tensorboard or "eval_step" not in result:
            return
        step = int(result["eval_step"])
        for mid, row in (trial_table(trial.config) or {}).items():
            h, k = row["config_hash"], parse_member_id(mid)
            if step <= self._last.get(h, -1) or member_key(k, "test_acc") not in result:
                continue
            w = self._writer(row, step)
            for c in SCALARS:
                if member_key(k, c) in result:
                    w.add_scalar(c, result[member_key(k, c)], step)
            self._last[h] = step

    def _writer(self, row: dict[str, Any], step: int):
        h = row["config_hash"]
        if h not in self._writers:
            # lazy: tensorboardX only when a member reports
            from tensorboardX import SummaryWriter
            from tensorboardX.summary import hparams

            d = self.study / TENSORBOARD / run_name(row)
            again = d.exists()  # a resumed member: drop what a killed driver wrote past here
            w = SummaryWriter(str(d), flush_secs=10, purge_step=step if again else None)
            if not again:
                exp, ssi, _ = hparams({k: _hparam(v) for k, v in row.items()},
                                      {c: 0.0 for c in ("test_acc", "train_acc", "test_loss")})
                w.file_writer.add_summary(exp)
                w.file_writer.add_summary(ssi)
            self._writers[h] = w
        return self._writers[h]

    def _close(self, trial) -> None:
        for row in (trial_table(trial.config) or {}).values():
            w = self._writers.pop(row["config_hash"], None)
            if w is not None:
                w.close()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._close(trial)

    def on_experiment_end(self, trials, **info) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()

    # results.csv / history.csv ------------------------------------------------------
    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._close(trial)
        result = trial.last_result or {}
        if not result.get("finished") or trial.checkpoint is None or self.fault is not None:
            return  # stopped early (Ctrl-C): left to resume
        try:
            self.merge(Trial.from_json(trial.config["trial"]), trial.checkpoint, result)
        except OSError as e:  # a fault: the driver reports it once Tune has stopped
            self.fault = f"cannot write the study's tables: {e.strerror or e}"
            log.error("%s", self.fault)

    def merge(self, trial: Trial, checkpoint, result: dict[str, Any]) -> None:
        """Fold one finished trial (its final checkpoint's metrics.csv) into the tables."""
        if trial.key in self.merged:
            return
        with checkpoint.as_directory() as d:
            h = pd.read_csv(Path(d) / "metrics.csv", dtype={"config_hash": str})
        rows = completed_rows(list(trial.members), trial.key, self.experiment, h,
                              {k: result.get(k) for k in INFO})
        st.merge_results(self.study, rows, h)
        self.merged.add(trial.key)
        log.info("%s: trial %s completed; %d members added to %s", self.experiment,
                 trial.key, len(rows), self.study / st.RESULTS)


def _hparam(v: Any) -> bool | int | float | str:
    """A member-table value as TensorBoard's HParams take it (the table holds scalars;
    anything else, e.g. from an older plan, as its text)."""
    return v if isinstance(v, bool | int | float | str) else str(v)
