"""Resumption is proved, not inferred: every restart logs and records (config.json
`resumed_from`) the step it continued from, and still ends bit-identical.

A restart from step 0 reproduces the same metrics too, so bit-equality alone cannot
tell a trainer that resumes from one that silently starts over.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import trainer
from trainer import members, preset
from trainer.checkpoint import list_checkpoints

ROOT = Path(__file__).resolve().parents[2]
OPTIMIZERS = ["adamw", "adam_l2", "sgdw"]
SHUFFLE = pytest.mark.parametrize("shuffle", [False, True], ids=["fixed-order", "shuffle"])
EXACT = lambda df: df.drop(columns=["wall_time"])  # noqa: E731  (wall_time is measured)


class Crash(RuntimeError):
    """Raised from a checkpoint callback: the run stops right after that checkpoint."""


def sets(optimizer: str, shuffle: bool, steps: int, ckpt: int, **over: object) -> list[str]:
    lr = 3e-2 if optimizer == "sgdw" else 1e-3
    kv = {**dict(weight_decay="0.1,1.0", seed="0,1", optimizer=optimizer, lr=lr,
                 shuffle=shuffle, steps=steps, checkpoint_every=ckpt, eval_every=15, threads=1),
          **over}
    return [f"{k}={v}" for k, v in kv.items()]


def crash_at(step: int) -> Callable[[Path, int], None]:
    def hook(path: Path, at: int) -> None:
        if at == step:
            raise Crash(f"stopped at step {at}")
    return hook


def metrics(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "metrics.csv", dtype={"config_hash": str})


@SHUFFLE
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_restart_records_the_step_it_resumed_from(tmp_path: Path, optimizer: str,
                                                       shuffle: bool) -> None:
    ms = members(preset("tiny"), sets(optimizer, shuffle, steps=150, ckpt=20))
    ref = tmp_path / "ref"
    trainer.run(ms, ref, log=lambda s: None)
    assert json.loads((ref / "config.json").read_text())["resumed_from"] == []

    out, logs = tmp_path / "run", []
    for stop in (40, 100):
        with pytest.raises(Crash):
            trainer.run(ms, out, log=logs.append, on_checkpoint=crash_at(stop))
        cfg = json.loads((out / "config.json").read_text())
        assert cfg["status"] == "running"
    trainer.run(ms, out, log=logs.append)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["status"] == "done" and cfg["resumed_from"] == [40, 100]
    assert [s for s in logs if s.startswith("resumed at step")] == \
        ["resumed at step 40/150", "resumed at step 100/150"]
    pd.testing.assert_frame_equal(EXACT(metrics(out)), EXACT(metrics(ref)), check_exact=True)


def _train_cli(args: list[str], out: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", "train", "--preset", "tiny",
         *[a for s in args for a in ("--set", s)], "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _newest_step(ckpt_dir: Path) -> int:
    found = list_checkpoints(ckpt_dir)
    return int(found[0].stem.split("-")[1]) if found else 0


def _wait(pred: Callable[[], bool], p: subprocess.Popen[str], timeout: float = 120) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end and p.poll() is None:
        if pred():
            return True
        time.sleep(0.002)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("optimizer, shuffle", [("adamw", True), ("adam_l2", False),
                                                ("sgdw", True)])  # adamw, fixed: test_resume
def test_sigkilled_restarts_resume_from_increasing_steps(tmp_path: Path, cli_env, optimizer: str,
                                                         shuffle: bool) -> None:
    """A real process SIGKILLed three times, each time once it has written a checkpoint
    newer than the one it resumed from; the fourth run finishes."""
    args = sets(optimizer, shuffle, steps=800, ckpt=40)
    ms = members(preset("tiny"), args)
    ref = tmp_path / "ref"
    trainer.run(ms, ref, log=lambda s: None)
    out = tmp_path / "run"
    seen: list[int] = []
    for _ in range(3):
        p = _train_cli(args, out, cli_env)
        last = seen[-1] if seen else 0
        assert _wait(lambda last=last: _newest_step(out / "checkpoints") > last, p), \
            p.communicate()[0]
        p.send_signal(signal.SIGKILL)
        log = p.communicate(timeout=60)[0]
        if seen:
            assert f"resumed at step {seen[-1]}/800" in log, log
        seen = json.loads((out / "config.json").read_text())["resumed_from"] + [
            _newest_step(out / "checkpoints")]
    p = _train_cli(args, out, cli_env)
    log = p.communicate(timeout=300)[0]
    assert p.returncode == 0, log
    assert f"resumed at step {seen[-1]}/800" in log, log
    rec = json.loads((out / "config.json").read_text())["resumed_from"]
    assert rec == seen and all(s > 0 for s in rec) and rec == sorted(set(rec)) and len(rec) == 3
    pd.testing.assert_frame_equal(EXACT(metrics(out)), EXACT(metrics(ref)), check_exact=True)


def _in_write(ckpt_dir: Path) -> bool:
    """A checkpoint file (data or sidecar) is being written under a temporary name."""
    try:
        return any(".tmp-" in e.name for e in os.scandir(ckpt_dir))
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_a_kill_during_a_checkpoint_write_resumes_from_the_previous_one(tmp_path: Path,
                                                                       cli_env) -> None:
    """A wider model (checkpoints of ~13 MB, written every 5 steps) is SIGKILLed the
    moment a checkpoint's temporary file appears; the rerun resumes from a complete
    checkpoint and ends bit-identical."""
    args = sets("adamw", True, steps=150, ckpt=5, width=512, weight_decay=0.1, seed=0)
    ms = members(preset("tiny"), args)
    ref = tmp_path / "ref"
    trainer.run(ms, ref, log=lambda s: None)
    out, ckpts, torn = tmp_path / "run", tmp_path / "run" / "checkpoints", False
    for _ in range(5):  # until a kill lands inside a write (nearly always the first)
        p = _train_cli(args, out, cli_env)
        first = _newest_step(ckpts)
        assert _wait(lambda first=first: _newest_step(ckpts) > first and _in_write(ckpts), p), \
            p.communicate()[0]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        if _in_write(ckpts):
            torn = True
            break
    assert torn, "no kill landed inside a checkpoint write"
    before = _newest_step(ckpts)
    assert before > 0
    p = _train_cli(args, out, cli_env)
    log = p.communicate(timeout=300)[0]
    assert p.returncode == 0, log
    assert f"resumed at step {before}/150" in log, log
    assert json.loads((out / "config.json").read_text())["resumed_from"][-1] == before
    pd.testing.assert_frame_equal(EXACT(metrics(out)), EXACT(metrics(ref)), check_exact=True)
