"""The Ray Tune function trainable: one trial = one pack of members.

The trainer writes to a local scratch directory; every trainer checkpoint is
handed to Tune together with metrics.csv and config.json, so the trial's latest
Tune checkpoint always holds its full metric history. When Tune retries a
trial (a crash, a lost node) the scratch directory is rebuilt from that
checkpoint and the trainer continues from it. A trial that `wdsweep resume`
starts in a new experiment carries `init`: the Tune checkpoint directories of
its pack's newest verified trainer checkpoints, of which only the trainer's own
files are copied (never a pickle), so it continues bit-identically.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ray import tune

import trainer
from sweep.plan import member_from_dict

FAULT_DIR_ENV = "WDSWEEP_FAULT_DIR"  # fault injection for tests: see _maybe_fail


def train_trial(config: dict[str, Any]) -> None:
    trial = config["trial"]
    members = [member_from_dict(d) for d in trial["members"]]
    scratch = Path(tempfile.mkdtemp(prefix=f"wdsweep-{trial['key']}-"))
    try:
        run_dir = scratch / "run"
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                shutil.copytree(d, run_dir)
        elif trial.get("init"):
            from sweep._records import fetch

            for i, uri in enumerate(reversed(trial["init"])):  # the newest last: its files win
                fetch(uri, run_dir, ("config.json", "metrics.csv") if i == len(
                    trial["init"]) - 1 else ())
        _run(members, run_dir, trial["key"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(members: list[trainer.TrainConfig], run_dir: Path, key: str) -> None:
    import ray

    S = members[0].total_steps
    node = ray.get_runtime_context().get_node_id()
    t_start = time.perf_counter()
    latest: dict[str, Any] = {"resumed_from": 0}
    final = {"reported": False}

    def log(line: str) -> None:
        """Keep where the trainer resumed and every warning (results.csv shows them);
        progress lines are dropped: the driver shows its own progress view."""
        if line.startswith("resumed at step"):
            latest["resumed_from"] = int(line.split()[3].split("/")[0])
        elif line.startswith("WARNING"):
            print(line, file=sys.stderr, flush=True)
            latest["warnings"] = (latest.get("warnings", "") + line + "\n")[-4000:]

    def on_eval(rows: list[dict[str, Any]]) -> None:
        _maybe_fail(rows[0]["step"], members)
        latest.update(step=rows[0]["step"], total_steps=S, members=len(rows), node=node,
                      test_acc_mean=sum(r["test_acc"] for r in rows) / len(rows),
                      train_acc_mean=sum(r["train_acc"] for r in rows) / len(rows))

    def on_checkpoint(path: Path, step: int) -> None:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d)
            (out / "checkpoints").mkdir()
            for f in (path, path.with_suffix(".sha256")):
                shutil.copy2(f, out / "checkpoints" / f.name)
            for f in ("config.json", "metrics.csv"):
                if (run_dir / f).exists():
                    shutil.copy2(run_dir / f, out / f)
            metrics = dict(latest, step=step, finished=step == S, trial_key=key,
                           train_seconds=time.perf_counter() - t_start)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            final["reported"] = step == S

    # metrics.csv is rewritten before each on_checkpoint call (trainer.run), so the
    # final checkpoint carries the complete history.
    trainer.run(members, run_dir, log=log, on_eval=on_eval,
                on_checkpoint=on_checkpoint)
    if not final["reported"]:  # resumed from the final checkpoint: nothing left to train
        from trainer.checkpoint import list_checkpoints

        newest = list_checkpoints(run_dir / "checkpoints")
        if newest and newest[0].name == f"state-{S:09d}.pt":
            latest.setdefault("step", S)
            on_checkpoint(newest[0], S)


def _maybe_fail(step: int, members: list[trainer.TrainConfig]) -> None:
    """Tests make a trial raise by creating FAULT_DIR/<config_hash> holding a step."""
    fault_dir = os.environ.get(FAULT_DIR_ENV)
    if not fault_dir:
        return
    for m in members:
        f = Path(fault_dir) / m.config_hash()
        if f.exists() and step >= int(f.read_text() or 0):
            raise RuntimeError(f"injected fault for member {m.config_hash()} at step {step}")
