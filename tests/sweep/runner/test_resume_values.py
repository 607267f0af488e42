"""Sweep resume paths give the values of an uninterrupted study, bit for bit.

Counts and `resumed_from` say that work was not lost or duplicated; these say that the
numbers are the ones an uninterrupted study computes. The spec is the same, so the packs
are the same, and a trial resumed from its checkpoint must end bit-identical.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import sweep
from sweep.plan.packs import make_plan
from sweep.plan.spec import parse
from tests.sweep._helpers import wait_for
from trainer import METRIC_COLUMNS

SPEC = """
name = "rv"
preset = "tiny"
[fixed]
epochs = 40
train_size = 256
eval_every = 8
[grid]
weight_decay = [0.0, 0.1, 0.3, 1.0]
seed = [0, 1]
[run]
pack = 2
checkpoint_every = 40
max_failures = 0
"""
# Measured per run (wall_time) or per command (node, trial timings): not results.
MEASURED = ("wall_time", "train_seconds", "node", "experiment", "resumed_from", "warnings",
            "error")
VALUES = [c for c in METRIC_COLUMNS if c not in MEASURED]


def _tables(study: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    res = pd.read_csv(study / "results.csv", dtype={"config_hash": str, "trial_id": str})
    res = res.drop(columns=[c for c in MEASURED if c in res.columns])
    res = res.set_index("config_hash").sort_index()
    hist = pd.read_csv(study / "history.csv", dtype={"config_hash": str})
    hist = hist[VALUES].sort_values(["config_hash", "step"]).reset_index(drop=True)
    return res, hist


def assert_same_values(study: Path, reference: Path) -> None:
    res, hist = _tables(study)
    ref_res, ref_hist = _tables(reference)
    assert (res.status == "completed").all() and len(res) == 8
    assert list(res.index) == list(ref_res.index)
    assert (res.trial_id == ref_res.trial_id).all(), "pack composition changed"
    pd.testing.assert_frame_equal(res[ref_res.columns], ref_res, check_exact=True)
    pd.testing.assert_frame_equal(hist, ref_hist, check_exact=True)


@pytest.fixture(scope="module")
def reference(ray_local, tmp_path_factory) -> Path:
    """The uninterrupted study."""
    study = tmp_path_factory.mktemp("uninterrupted") / "study"
    out = sweep.run(parse(SPEC), study)
    assert out["completed"] == 8 and out["errored"] == 0
    return study


@pytest.mark.slow
def test_a_sigkilled_driver_resumed_equals_the_uninterrupted_study(reference, ray_address,
                                                                  tmp_path, cli_env):
    spec_file, study = tmp_path / "s.toml", tmp_path / "study"
    spec_file.write_text(SPEC)
    p = subprocess.Popen([sys.executable, "-m", "sweep.cli", "run", str(spec_file), "--study",
                          str(study), "--address", ray_address, "--no-report"], env=cli_env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def mid_run() -> bool:  # a trial has checkpointed past its start and not yet finished
        # its trainer checkpoints (state-<step>.pt), polled every 0.2 s: status.json is
        # written only every 5 s, too seldom for a trial that lasts about a second
        steps: dict[Path, int] = {}
        try:
            for f in study.rglob("state-*.pt"):
                if m := re.fullmatch(r"state-([0-9]+)\.pt", f.name):
                    steps[f.parent] = max(steps.get(f.parent, 0), int(m.group(1)))
        except FileNotFoundError:  # a directory went while walking: look again
            return False
        return any(40 <= s < 320 for s in steps.values())  # 320: a member's last step

    assert wait_for(mid_run), p.communicate()[0]
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert not (study / "results.csv").exists() or \
        len(pd.read_csv(study / "results.csv")) < 8
    r = subprocess.run([sys.executable, "-m", "sweep.cli", "resume", str(study), "--address",
                        ray_address, "--no-report"], env=cli_env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = pd.read_csv(study / "results.csv")
    assert (res.resumed_from > 0).any(), "no trial resumed from a checkpoint"
    assert_same_values(study, reference)


@pytest.mark.slow
def test_a_trial_retried_from_its_checkpoint_equals_the_uninterrupted_study(
        reference, ray_local, tmp_path, fault_dir):
    s = parse(SPEC)
    victim = make_plan(s).trials[0].members[0]
    fault = fault_dir / victim.config_hash()
    fault.write_text("200")  # raise at the step-200 evaluation: the last checkpoint is 160
    try:
        out = sweep.run(s, tmp_path / "study")
    finally:
        fault.unlink()
    assert out["errored"] == 2 and out["completed"] == 6
    out = sweep.resume(tmp_path / "study", retry_errored=True)
    assert out["completed"] == 2
    res = pd.read_csv(tmp_path / "study" / "results.csv", dtype={"config_hash": str})
    assert res.set_index("config_hash").loc[victim.config_hash(), "resumed_from"] == 160
    assert_same_values(tmp_path / "study", reference)
