"""Shared fixtures. One real local Ray per test session (ray.init costs ~5 s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults import FAULT_DIR_ENV

ROOT = Path(__file__).resolve().parents[1]
# A plain helper module whose asserts should read like a test's (set before it is imported).
pytest.register_assert_rewrite("tests.sweep._helpers")


@pytest.fixture(scope="session")
def fault_dir(tmp_path_factory) -> Path:
    """Files named after a member's config hash make its trial raise (sweep.runner.trainable)."""
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="session")
def ray_local(fault_dir):
    """A real local Ray with 2 CPUs, shared by every test that needs one. Its GCS
    address lets CLI subprocesses join it as drivers (`--address`)."""
    import ray

    from sweep.runner.session import quiet

    quiet()
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT),
                                           FAULT_DIR_ENV: str(fault_dir)},
                              "worker_process_setup_hook": "tests.faults.install"})
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_address(ray_local) -> str:
    return ray_local.get_runtime_context().gcs_address


@pytest.fixture
def cli_env() -> dict[str, str]:
    """Environment for running `python -m sweep.cli` in a subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


@pytest.fixture
def wdsweep(cli_env):
    """Run the CLI in a real subprocess: wdsweep("train", "--out", d) -> CompletedProcess."""

    def run(*args: str, timeout: float = 600, **kw):
        kw.setdefault("env", cli_env)
        return subprocess.run([sys.executable, "-m", "sweep.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, **kw)

    return run
