"""Issue 9 in sweeps: a user module in a temporary directory outside the repository,
swept with packing on the local Ray (a `wdsweep run` driver joining it) and on a
two-worker ray.cluster_utils.Cluster; the module reaches Ray's workers only through the
spec's `code` (Ray's runtime_env), and bad user code stops `wdsweep run` before Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.user_module import write

ROOT = Path(__file__).resolve().parents[3]
MOD = "wds_user_sweep"

SPEC = """
name = "own-model"
preset = "tiny"
task = "{mod}:blobs"
model = "{mod}:net"
code = ["code"]
[task_args]
n = 64
marker = "{marker}"
[fixed]
batch_size = 16
steps = 40
eval_every = 10
lr = 0.01
[grid]
weight_decay = [0.0, 0.1, 1.0]
"model_args.bn" = [false, true]
[run]
pack = 3
checkpoint_every = 20
"""


def user_spec(root: Path, name: str = MOD) -> Path:
    """root/code/<name>.py and root/spec.toml; imports are recorded under root/marker."""
    assert not str(root).startswith(str(ROOT))
    write(root / "code", name)
    (root / "marker").mkdir()
    spec = root / "spec.toml"
    spec.write_text(SPEC.format(mod=name, marker=root / "marker"))
    return spec


def imported_from(root: Path) -> set[str]:
    return {line for f in (root / "marker").glob("*.txt") for line in f.read_text().split()}


def check_study(study: Path, root: Path) -> pd.DataFrame:
    res = pd.read_csv(study / "results.csv")
    assert len(res) == 6 and (res.status == "completed").all()
    assert sorted(res.groupby("trial_id").size()) == [3, 3]  # packed: 3 members per trial
    assert set(res.model) == {f"{MOD}:net"} and res.task_args.str.contains('"n": 64').all()
    assert res.train_size.eq(64).all()  # B from the task
    hist = pd.read_csv(study / "history.csv")
    assert len(hist) == 6 * 4 and hist.test_acc.between(0, 1).all()
    # the driver imported the module from `code`; every worker from Ray's runtime_env copy
    paths = imported_from(root)
    here = str(root / "code" / f"{MOD}.py")
    assert here in paths and len(paths - {here}) >= 1, paths
    return res


def test_local_ray_sweep_packs_the_user_model_shipped_by_code(tmp_path, ray_address,
                                                              cli_env):
    spec = user_spec(tmp_path)
    study = tmp_path / "study"
    r = subprocess.run([sys.executable, "-m", "sweep.cli", "run", str(spec), "--study",
                        str(study), "--address", ray_address], env=cli_env, cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    check_study(study, tmp_path)
    assert (study / "report" / "report.html").exists()
    [exp] = json.loads((study / "study.json").read_text())["experiments"]
    assert exp["code"] == [str(tmp_path / "code")]  # `wdsweep resume` ships them again
    # run again: every member is completed (extend by config hash), nothing re-runs
    r = subprocess.run([sys.executable, "-m", "sweep.cli", "run", str(spec), "--study",
                        str(study), "--address", ray_address, "--no-report"], env=cli_env,
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and "already completed" in r.stdout + r.stderr


@pytest.mark.parametrize("edit, key", [
    (("net", "nope"), "model"),
    (('code = ["code"]', ""), "task"),  # not importable without `code`
    (("n = 64", "n = 64\nwidth = 3"), "task_args"),
])
def test_bad_user_code_stops_run_before_ray(tmp_path, cli_env, edit, key):
    spec = user_spec(tmp_path)
    spec.write_text(spec.read_text().replace(*edit))
    study = tmp_path / "study"
    # an unreachable --address: the error must come before any connection
    r = subprocess.run([sys.executable, "-m", "sweep.cli", "run", str(spec), "--study",
                        str(study), "--address", "127.0.0.1:9"], env=cli_env, cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith(f"wdsweep run: error: {key}: "), lines[0]
    assert not study.exists()


@pytest.mark.slow
def test_two_worker_cluster_imports_the_user_model_only_through_code(tmp_path):
    spec = user_spec(tmp_path)
    env = dict(__import__("os").environ, PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")
    driver = Path(__file__).resolve().parents[1] / "user_multinode_driver.py"  # tests/sweep
    r = subprocess.run([sys.executable, str(driver), str(spec), str(tmp_path / "study")],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stdout[-3000:] + r.stderr[-5000:]
    found = json.loads(lines[-1].removeprefix("RESULT "))
    assert found["completed"] == 6 and found["pack_sizes"] == [3, 3]
    assert set(found["nodes"]) <= set(found["workers"])  # the head has no CPUs
    check_study(tmp_path / "study", tmp_path)
