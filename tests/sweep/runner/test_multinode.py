"""Real multi-node scheduling on one machine with ray.cluster_utils.Cluster."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[1]  # tests/sweep: the driver stays there


@pytest.fixture(scope="module")
def findings(tmp_path_factory):
    import os

    env = dict(os.environ, PYTHONPATH=str(HERE.parents[1]), RAY_USAGE_STATS_ENABLED="0")
    work = tmp_path_factory.mktemp("multinode")
    r = subprocess.run([sys.executable, str(HERE / "multinode_driver.py"), str(work)], env=env,
                       capture_output=True, text=True, timeout=900)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    assert r.returncode == 0 and lines, r.stdout[-3000:] + r.stderr[-5000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


@pytest.mark.slow
def test_trials_spread_across_nodes(findings):
    assert findings["spread_completed"] == 6
    assert len(findings["spread_nodes"]) >= 2
    assert set(findings["spread_nodes"]) <= set(findings["nodes"].values())


@pytest.mark.slow
def test_gpu_trials_land_on_the_gpu_node(findings):
    assert findings["gpu_nodes"] == [findings["nodes"]["gpu"]]


@pytest.mark.slow
def test_losing_a_worker_node_mid_trial_finishes_the_trial_from_its_checkpoint(findings):
    removed, rows = findings["removed"], findings["loss_rows"]
    assert removed, "no trial was running on the CPU worker to remove"
    assert len(rows) == 3 and all(r["status"] == "completed" for r in rows)
    assert all(r["node"] != removed["node"] for r in rows)
    moved = [r for r in rows if r["resumed_from"] > 0]
    assert len(moved) == 1 and moved[0]["resumed_from"] >= 16  # from a checkpoint, not zero
