"""Shared fixtures. One real local Ray per test session (ray.init costs ~5 s), and one
real finished tiny study per session for the tests that read or attack a study."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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

    from sweep.runner.raylogs import quiet

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


@pytest.fixture(scope="session")
def finished_study(ray_local, tmp_path_factory) -> Path:
    """A real finished sweep of the hardening tests' tiny spec (tests/sweep/_helpers.py
    spec_text(): 2 λ × 2 seeds in two packs), built once per session. Shared by the
    store's unit tests and the security suite: read it, never change it (take `study`)."""
    import sweep
    from sweep.plan.spec import parse
    from tests.sweep._helpers import spec_text

    study = tmp_path_factory.mktemp("finished") / "study"
    out = sweep.run(parse(spec_text()), study)
    assert out["completed"] == 4
    return study


@pytest.fixture
def study(finished_study, tmp_path) -> Path:
    """A copy of the finished study, moved by its owner: its records name the copy's
    own experiments (and are sealed by this user, as the user's own wdsweep would)."""
    from sweep.store import study as st

    dst = tmp_path / "study"
    shutil.copytree(finished_study, dst, symlinks=True)
    old, new = str(finished_study), str(dst)
    state = json.loads((dst / "study.json").read_text().replace(old, new))
    for e in state["experiments"]:
        p = dst / "plans" / f"{e['name']}.json"
        data = p.read_text().replace(old, new).encode()
        p.write_bytes(data)
        e["plan_sha256"] = hashlib.sha256(data).hexdigest()
    st.write_state(dst, state)
    return dst


# `make test` runs two xdist workers, a file at a time (-n 2 --dist loadfile). xdist hands
# out the files with the most tests first (its loadscope reorder); among equals, the
# longest files below go first. Measured on fresh clones here: 17:44 of pytest so, 19:15
# with --no-loadscope-reorder and this list alone. Serial seconds each, `pytest
# --durations=0`, 2-core dev box, 2026-12-01; a file missing here just keeps its place.
HEAVY_FIRST = (
    "sweep/runner/test_multinode.py",  # 81 (three raylets)
    "sweep/runner/test_refine_loop.py",  # 187
    "sweep/runner/test_resume_safe.py",  # 125
    "sweep/runner/test_sweep.py",  # 95
    "security/test_bad_specs.py",  # 93
    "sweep/cli/test_hardening.py",  # 91
    "sweep/runner/test_ray_start_cluster.py",  # 76
    "sweep/runner/test_trackers.py",  # 57
    "trainer/test_resume_record.py",  # 54
    "security/test_code_pinning.py",  # 48
)


def pytest_collection_modifyitems(config, items) -> None:
    rank = {f"tests/{f}": i for i, f in enumerate(HEAVY_FIRST)}

    def key(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(rank))
    items.sort(key=key)  # stable: the rest keep their order
