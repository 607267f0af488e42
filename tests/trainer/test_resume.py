"""A run killed at any moment and started again ends bit-identical."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from trainer import preset, run
from trainer.checkpoint import list_checkpoints, load_latest

ROOT = Path(__file__).resolve().parents[2]

SETS = ["weight_decay=0.1,1.0", "seed=0,1", "steps=1500", "checkpoint_every=20",
        "eval_every=15", "threads=1"]
# wall_time is the run's measured time; every other column must match to the bit.
EXACT = lambda df: df.drop(columns=["wall_time"])  # noqa: E731


def cli(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "sweep.cli", "train", "--preset", "tiny",
                             *[a for s in SETS for a in ("--set", s)], *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = tmp_path_factory.mktemp("ref") / "run"
    p = cli(["--out", str(out)], env)
    assert p.wait(timeout=300) == 0, p.stdout.read().decode()
    return pd.read_csv(out / "metrics.csv")


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun_is_bit_identical(tmp_path, reference, cli_env):
    out = tmp_path / "run"
    rng = random.Random(0)
    kills = 0
    while kills < 4:
        p = cli(["--out", str(out)], cli_env)
        p.stdout.readline()  # the first progress line: training is under way
        time.sleep(rng.uniform(0.0, 0.8))  # then a random moment, checkpoint writes included
        if p.poll() is not None:
            break
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += 1
    p = cli(["--out", str(out)], cli_env)
    log = p.communicate(timeout=300)[0].decode()
    assert p.returncode == 0, log
    assert kills == 4, "the run finished before it could be killed four times"
    got = pd.read_csv(out / "metrics.csv")
    pd.testing.assert_frame_equal(EXACT(got), EXACT(reference), check_exact=True)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["status"] == "done"
    # Restarts after the first checkpoint resumed from it (a kill before any checkpoint
    # restarts from 0 and is not a resume); the record never goes backwards.
    rec = cfg["resumed_from"]
    assert rec and all(s > 0 for s in rec) and rec == sorted(rec), rec
    assert f"resumed at step {rec[-1]}/1500" in log


def test_rerunning_a_finished_run_does_nothing(tmp_path, reference, cli_env):
    out = tmp_path / "run"
    assert cli(["--out", str(out)], cli_env).wait(timeout=300) == 0
    before = (out / "metrics.csv").read_bytes()
    p = cli(["--out", str(out)], cli_env)
    log = p.communicate(timeout=120)[0].decode()
    assert p.returncode == 0 and "already finished" in log
    assert (out / "metrics.csv").read_bytes() == before


def _members(**over):
    from trainer import members
    return members(preset("tiny"), [*SETS, *(f"{k}={v}" for k, v in over.items())])


@pytest.mark.parametrize("damage", ["truncate", "flip-bytes"])
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage):
    out, ref = tmp_path / "run", tmp_path / "ref"
    ms = _members(steps=200)
    run(ms, out, log=lambda s: None)
    run(ms, ref, log=lambda s: None)
    newest, previous = list_checkpoints(out / "checkpoints")[:2]
    data = bytearray(newest.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    newest.write_bytes(bytes(data))
    warnings: list[str] = []
    st = load_latest(out / "checkpoints", warnings.append)
    assert st is not None and st["step"] == int(previous.stem.split("-")[1])
    assert len(warnings) == 1 and "unusable" in warnings[0] and previous.name in warnings[0]
    # Training on from the previous checkpoint reproduces the same history.
    (out / "config.json").write_text(
        (out / "config.json").read_text().replace('"done"', '"running"'))
    run(ms, out, log=warnings.append)
    got = pd.read_csv(out / "metrics.csv")
    want = pd.read_csv(ref / "metrics.csv")
    pd.testing.assert_frame_equal(EXACT(got), EXACT(want), check_exact=True)


def test_checkpoints_load_with_weights_only_and_hold_every_piece_of_state(tmp_path):
    out = tmp_path / "run"
    run(_members(steps=40), out, log=lambda s: None)
    path = list_checkpoints(out / "checkpoints")[0]
    st = torch.load(path, weights_only=True)
    assert {"step", "model", "opt", "history", "rng", "acc_sum", "acc_n", "wall"} <= set(st)
    assert st["step"] == 40 and st["opt"]["t"] == 40
    assert len(list_checkpoints(out / "checkpoints")) == 2  # only the newest two are kept
