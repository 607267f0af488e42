"""`wdsweep run` without --address starts a new local Ray, even when another Ray
cluster runs on the machine and RAY_ADDRESS names it (issue 23, "Embedded Ray is
not embedded")."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sweep.runner.reap import descendants
from tests.security.conftest import TINY

RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def other_cluster():
    """Someone else's Ray head on this machine (its own temp dir, loopback)."""
    tmp = tempfile.mkdtemp(prefix="/tmp/wds-other-")  # short: Ray's socket paths
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    p = subprocess.Popen([str(RAY), "start", "--head", "--block", f"--port={port}",
                          f"--temp-dir={tmp}", "--num-cpus=1", "--include-dashboard=false",
                          "--node-ip-address=127.0.0.1", "--disable-usage-stats"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    logs = Path(tmp) / "session_latest" / "logs"
    t = time.monotonic()
    while not list(logs.glob("raylet*.out")) and time.monotonic() - t < 60:
        time.sleep(0.2)
    time.sleep(2)
    procs = descendants(p.pid)
    try:
        yield f"127.0.0.1:{port}", logs
    finally:
        for pid in [p.pid, *procs]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def _drivers(logs: Path) -> list[str]:
    return sorted(p.name for p in logs.glob("python-core-driver-*"))


@pytest.mark.slow
def test_a_plain_run_never_joins_the_cluster_ray_address_names(other_cluster, tmp_path,
                                                                cli_env):
    address, logs = other_cluster
    before = _drivers(logs)
    spec, study = tmp_path / "s.toml", tmp_path / "study"
    spec.write_text(TINY)
    env = dict(cli_env, RAY_ADDRESS=address)  # as after `export RAY_ADDRESS=...`
    r = subprocess.run([sys.executable, "-m", "sweep.cli", "run", str(spec), "--study",
                        str(study), "--no-report"], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    # A driver that joined it would have left its log there (or, refused by the other
    # cluster's token, have failed the run).
    assert _drivers(logs) == before, "the sweep's driver joined the other cluster"
