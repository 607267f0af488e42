"""The Ray Tune function trainable: one trial = one pack of members.

The trainer writes to a local scratch directory; every trainer checkpoint is
handed to Tune together with metrics.csv and config.json, so the trial's latest
Tune checkpoint always holds its full metric history. When Tune retries a
trial (a crash, a lost node) the scratch directory is rebuilt from that
checkpoint and the trainer continues from it. A trial that `wdsweep resume`
starts in a new experiment carries `init`: the Tune checkpoint directories of
its pack's newest verified trainer checkpoints, of which only the trainer's own
files are copied (never a pickle), so it continues bit-identically.

Every evaluation reaches Tune when it is made (`tune.report`, with the Tune
checkpoint at checkpoint steps), carrying each member's metrics under `mKK/...`.
The trainer talks to this module through hooks (on_eval, on_checkpoint,
on_resume) and `logging` records, never through printed lines.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray import tune

import trainer
from sweep.plan.members import MEMBER_METRICS
from sweep.plan.trial import Trial
from sweep.store.records import fetch
from trainer.checkpoint import list_checkpoints
from trainer.rundir import finished_at
from trainer.schema import member_key

# Called in the worker with (step, members) at every evaluation; empty in a sweep. The
# tests install a fault injector here through Ray's worker_process_setup_hook
# (tests/faults.py), so nothing in this module reads a test's environment.
EVAL_HOOKS: list[Callable[[int, list[trainer.TrainConfig]], None]] = []


def train_trial(config: dict[str, Any]) -> None:
    trial = Trial.from_json(config["trial"])
    scratch = Path(tempfile.mkdtemp(prefix=f"wdsweep-{trial.key}-"))
    try:
        run_dir = scratch / "run"
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                shutil.copytree(d, run_dir)
        elif trial.init:

            for i, uri in enumerate(reversed(trial.init)):  # the newest last: its files win
                fetch(uri, run_dir, ("config.json", "metrics.csv") if i == len(
                    trial.init) - 1 else ())
        _run(list(trial.members), run_dir, trial.key)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(members: list[trainer.TrainConfig], run_dir: Path, key: str) -> None:
    S, every = members[0].total_steps, members[0].checkpoint_every
    node = ray.get_runtime_context().get_node_id()
    t_start = time.perf_counter()
    latest: dict[str, Any] = {"resumed_from": 0}
    final = {"reported": False}

    def on_resume(step: int) -> None:
        latest["resumed_from"] = step

    def report(step: int, checkpoint: tune.Checkpoint | None = None,
               done: bool = False) -> None:
        metrics = dict(latest, step=step, total_steps=S, finished=step == S or done,
                       trial_key=key, train_seconds=time.perf_counter() - t_start)
        tune.report(metrics, checkpoint=checkpoint)

    def on_eval(rows: list[dict[str, Any]]) -> None:
        step = rows[0]["step"]
        for hook in EVAL_HOOKS:
            hook(step, members)
        latest.update(member_metrics(rows), eval_step=step, members=len(rows), node=node)
        if step % every and step != S:  # else the checkpoint right after reports it
            report(step)

    def on_checkpoint(path: Path, step: int) -> None:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d)
            (out / "checkpoints").mkdir()
            for f in (path, path.with_suffix(".sha256")):
                shutil.copy2(f, out / "checkpoints" / f.name)
            for f in ("config.json", "metrics.csv"):
                if (run_dir / f).exists():
                    shutil.copy2(run_dir / f, out / f)
            # finished at the run's end, or earlier when every member stopped early
            done = finished_at(members, run_dir, step)
            report(step, tune.Checkpoint.from_directory(d), done)
            final["reported"] = done

    # metrics.csv is rewritten before each on_checkpoint call (trainer.run), so the
    # final checkpoint carries the complete history. The trainer's warnings are
    # logging records, kept for results.csv (`warnings`).
    with _Warnings(latest):
        trainer.run(members, run_dir, on_eval=on_eval, on_checkpoint=on_checkpoint,
                    on_resume=on_resume)
    if not final["reported"]:  # resumed from the final checkpoint: nothing left to train

        newest = list_checkpoints(run_dir / "checkpoints")
        at = int(newest[0].stem.removeprefix("state-")) if newest else -1
        if newest and finished_at(members, run_dir, at):
            on_checkpoint(newest[0], at)


def member_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """One evaluation of a pack as Tune metrics: every member's under `mKK/<metric>`
    (KK = its index in the pack, the trial config's `trial/table` row), and the pack's
    mean test and train accuracy."""
    out = {member_key(r["member"], c): r[c] for r in rows for c in MEMBER_METRICS}
    out["test_acc_mean"] = sum(r["test_acc"] for r in rows) / len(rows)
    out["train_acc_mean"] = sum(r["train_acc"] for r in rows) / len(rows)
    return out


class _Warnings(logging.Handler):
    """Collects the trainer's WARNING records (logger `trainer`) into `into["warnings"]`
    while a trial trains, and writes them to the worker's stderr."""

    def __init__(self, into: dict[str, Any]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        line = f"WARNING: {record.getMessage()}"
        print(line, file=sys.stderr, flush=True)
        self.into["warnings"] = (self.into.get("warnings", "") + line + "\n")[-4000:]

    def __enter__(self) -> _Warnings:
        logging.getLogger("trainer").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("trainer").removeHandler(self)
