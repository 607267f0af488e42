"""A real Ray cluster made as docs/cluster.md makes one: a head and a worker started with
the `ray` CLI (`ray start --head`, `ray start --address`) as their own processes on this
machine, with Ray's token authentication on, and `wdsweep run --address HOST:PORT` as a
driver in a subprocess. The trials must use both nodes (one CPU each); a driver without
the token, or with another one, is told so in one line; a dashboard URL as --address or
RAY_ADDRESS is one line naming it; an exported RAY_ADDRESS never redirects a plain
`wdsweep run`. Every process the cluster started is killed afterwards and none is left.

The two nodes share this machine's disk, so the study's default storage is shared too
(a real cluster needs NFS or s3://, docs/cluster.md). Ray's GCS listens on every interface
whatever --node-ip-address says; the random token keeps the test's cluster to itself."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from sweep.plan.spec import SpecError
from sweep.runner.reap import descendants
from sweep.runner.session import _check_reachable

ROOT = Path(__file__).resolve().parents[3]
RAY = Path(sys.executable).with_name("ray")
TOKEN = secrets.token_hex(32)
# The tiny preset; `epochs` long enough (~2 ms a step, 16 steps an epoch) that the first trial is
# still training when the second one's worker process has started on the other node.
SPEC = """
name = "ray-start-cluster"
preset = "tiny"
[fixed]
epochs = {epochs}
[grid]
weight_decay = [0.01, 0.1]
[resources]
cpus_per_trial = 1
[run]
pack = 1
"""
NODES = """
import json, ray
ray.init(address={address!r}, log_to_driver=False)
print("NODES " + json.dumps([[n["NodeID"], "node:__internal_head__" in n["Resources"]]
                             for n in ray.nodes() if n["Alive"]]))
"""

pytestmark = pytest.mark.slow  # two `ray start`s and three sweeps: about 75 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without any RAY_* (a Ray this test session started
    leaves RAY_AUTH_MODE and the local-only switch there), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0", **extra)
    return env


TOKEN_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}


def _ray_start(tmp: Path, name: str, *args: str) -> subprocess.Popen:
    """`ray start --block` in its own session: every port its own (other Rays run on this
    machine), one CPU, its own temp dir, the cluster's token; output in tmp/NAME.log."""
    ports = [f"--{p}={_free_port()}" for p in (
        "node-manager-port", "object-manager-port", "metrics-export-port",
        "runtime-env-agent-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port")]
    cmd = [str(RAY), "start", "--block", "--disable-usage-stats", f"--temp-dir={tmp / name}",
           "--num-cpus=1", "--min-worker-port=0", "--max-worker-port=0", *ports, *args]
    with open(tmp / f"{name}.log", "wb") as log:
        return subprocess.Popen(cmd, env=_env(**TOKEN_ENV), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _ours(tmp: Path, port: int) -> set[int]:
    """This cluster's live processes: each whose command line names its temp dir or its
    GCS port (Ray's daemons, the Ray Client server), and their descendants (agents and
    workers rename themselves `ray::...`)."""
    marks = (str(tmp).encode(), f":{port}\0".encode())
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if any(m in cmd for m in marks):
                out |= {int(d.name), *descendants(int(d.name))}
    return {pid for pid in out if _alive(pid)}


def _kill(procs: list[subprocess.Popen], tmp: Path, port: int) -> set[int]:
    """SIGTERM each `ray start`'s process group; after 5 s SIGKILL whatever of the
    cluster is left (the groups, their descendants, `_ours`). Returns what still lives."""
    pids = {q for p in procs for q in [p.pid, *descendants(p.pid)]} | _ours(tmp, port)
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.2)
    left = pids
    for _ in range(3):
        pids |= _ours(tmp, port)
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for p in procs:
            p.wait(timeout=30)
        time.sleep(1)
        left = {pid for pid in pids if _alive(pid)} | _ours(tmp, port)
        if not left:
            break
    return left


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _nodes(address: str, want: int, timeout: float = 120) -> list[list]:
    """[node id, is head] of the alive nodes, once there are `want` of them."""
    deadline, got = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        r = subprocess.run([sys.executable, "-c", NODES.format(address=address)],
                           env=_env(**TOKEN_ENV), capture_output=True, text=True, timeout=120)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("NODES ")]
        got = json.loads(lines[-1].removeprefix("NODES ")) if lines else []
        if len(got) >= want:
            return got
        time.sleep(2)
    raise AssertionError(f"{len(got)} of {want} nodes came up at {address}")


@pytest.fixture(scope="module")
def cluster():
    """{address, head, worker}: a head (`ray start --head`) and a worker (`ray start
    --address`) on this machine, token authentication on, one CPU each."""
    tmp = Path(tempfile.mkdtemp(prefix="/tmp/wdsrc-"))  # short: Ray's socket paths
    port, procs = _free_port(), []
    head_args = [f"--port={port}", "--include-dashboard=false",
                 f"--dashboard-port={_free_port()}"]
    if importlib.util.find_spec("grpc") is not None:  # Ray Client: 10001 unless told
        head_args.append(f"--ray-client-server-port={_free_port()}")
    try:
        procs.append(_ray_start(tmp, "head", "--head", *head_args))
        address = f"127.0.0.1:{port}"
        head = _nodes(address, 1)
        procs.append(_ray_start(tmp, "worker", f"--address={address}"))
        nodes = _nodes(address, 2)
        ids = {is_head: nid for nid, is_head in nodes}
        assert len(nodes) == 2 and ids[True] == head[0][0], nodes
        yield {"address": address, "head": ids[True], "worker": ids[False], "tmp": tmp}
    finally:
        left = _kill(procs, tmp, port)
        logs = "".join((tmp / f"{n}.log").read_text(errors="replace")[-2000:]
                       for n in ("head", "worker") if (tmp / f"{n}.log").exists())
        shutil.rmtree(tmp, ignore_errors=True)
        assert not left, f"Ray processes left running: {left}\n{logs}"


def _run(tmp_path: Path, env: dict[str, str], *args: str, epochs: int = 20,
         timeout: float = 300) -> tuple[subprocess.CompletedProcess, Path]:
    spec, study = tmp_path / "spec.toml", tmp_path / "study"
    spec.write_text(SPEC.format(epochs=epochs))
    r = subprocess.run([sys.executable, "-m", "sweep.cli", "run", str(spec), "--study",
                        str(study), "--no-report", *args], env=env, capture_output=True,
                       text=True, timeout=timeout)
    return r, study


def _error_line(r: subprocess.CompletedProcess) -> str:
    """The one line a refused run ends with; nothing of Ray's before it."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and lines, r.stderr
    assert lines[-1].startswith("wdsweep run: error: "), r.stderr
    assert not [ln for ln in lines[:-1] if not ln.startswith("plan: ")], r.stderr
    return lines[-1].removeprefix("wdsweep run: error: ")


def test_a_sweep_uses_the_head_and_the_worker(cluster, tmp_path):
    # RAY_ADDRESS exported as the old doc said: an explicit --address is what is used.
    env = _env(**TOKEN_ENV, RAY_ADDRESS="http://127.0.0.1:8265")
    r, study = _run(tmp_path, env, "--address", cluster["address"], epochs=250)
    assert r.returncode == 0, r.stderr[-4000:]
    res = pd.read_csv(study / "results.csv")
    assert len(res) == 2 and (res.status == "completed").all(), res
    assert set(res.node) == {cluster["head"], cluster["worker"]}


def test_address_auto_joins_the_cluster_ray_address_names(cluster, tmp_path):
    env = _env(**TOKEN_ENV, RAY_ADDRESS=cluster["address"])
    r, study = _run(tmp_path, env, "--address", "auto")
    assert r.returncode == 0, r.stderr[-4000:]
    res = pd.read_csv(study / "results.csv")
    assert (res.status == "completed").all() and len(res) == 2
    assert set(res.node) <= {cluster["head"], cluster["worker"]}


def test_a_driver_without_the_token_is_told_it_is_authentication(cluster, tmp_path):
    t = time.monotonic()
    r, study = _run(tmp_path, _env(), "--address", cluster["address"], timeout=120)
    line = _error_line(r)
    assert line.startswith(f"RAY_AUTH_MODE: the Ray cluster at {cluster['address']} "
                           "requires token authentication and this driver sends no token"), line
    assert "RAY_AUTH_MODE=token" in line and "RAY_AUTH_TOKEN" in line
    assert "ray get-auth-token" in line and "allowed:" not in line
    assert time.monotonic() - t < 30  # not Ray's minute of retries
    assert not study.exists()


def test_a_wrong_token_is_refused_as_a_wrong_token(cluster, tmp_path):
    env = _env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    r, study = _run(tmp_path, env, "--address", cluster["address"], timeout=120)
    line = _error_line(r)
    assert line.startswith(f"RAY_AUTH_TOKEN: the Ray cluster at {cluster['address']} "
                           "refused the token from RAY_AUTH_TOKEN"), line
    assert not study.exists()


def test_token_mode_without_a_token_says_so(cluster, tmp_path):
    env = _env(RAY_AUTH_MODE="token", HOME=str(tmp_path))  # no ~/.ray/auth_token there
    r, _ = _run(tmp_path, env, "--address", cluster["address"], timeout=120)
    line = _error_line(r)
    assert line.startswith("RAY_AUTH_TOKEN: RAY_AUTH_MODE=token but no token is set to send "
                           f"to Ray at {cluster['address']}"), line
    env["RAY_AUTH_TOKEN_PATH"] = str(tmp_path / "no-such-token")
    r, _ = _run(tmp_path, env, "--address", cluster["address"], timeout=120)
    line = _error_line(r)
    assert line.startswith(f"RAY_AUTH_TOKEN_PATH: names {tmp_path / 'no-such-token'}, which "
                           "cannot be read or is empty"), line


def test_a_dashboard_url_as_address_is_one_line_naming_address(tmp_path):
    r, study = _run(tmp_path, _env(), "--address", "http://127.0.0.1:8265", timeout=60)
    line = _error_line(r)
    assert line.startswith("--address: got 'http://127.0.0.1:8265': a dashboard / job API "
                           "address (`ray job submit --address`, RAY_API_SERVER_ADDRESS)"), line
    assert "allowed: auto, host:port (the head's GCS port" in line and "ray://" not in line
    assert not study.exists()


@pytest.mark.parametrize("address", ["https://head:8265", "127.0.0.1", "head:port",
                                     "head:0", ":6379", "gcs://head:6379", "ray://"])
def test_other_addresses_of_the_wrong_form(address):
    with pytest.raises(SpecError) as e:
        _check_reachable(address)
    assert str(e.value).startswith(f"--address: got {address!r}"), e.value
    assert "allowed: auto, host:port" in str(e.value)


def test_ray_client_is_refused_in_one_line_before_ray_starts():
    # Ray Client runs Tune's controller in an actor on the head: the driver's recorder
    # would never see its trials. Refused before anything connects (no server here).
    with pytest.raises(SpecError) as e:
        _check_reachable("ray://127.0.0.1:10001")
    msg = str(e.value)
    assert msg.startswith("--address: got 'ray://127.0.0.1:10001': Ray Client") and \
        "ray job submit" in msg and "\n" not in msg
    assert "allowed: auto, host:port" in str(e.value)


def test_address_auto_with_a_dashboard_ray_address_names_ray_address(tmp_path):
    env = _env(RAY_ADDRESS="http://127.0.0.1:8265")
    r, _ = _run(tmp_path, env, "--address", "auto", timeout=60)
    line = _error_line(r)
    assert line.startswith("RAY_ADDRESS: got RAY_ADDRESS='http://127.0.0.1:8265', which "
                           "--address auto stands for: a dashboard / job API address"), line
    assert "allowed: RAY_ADDRESS unset, or host:port" in line


def test_a_plain_run_ignores_an_exported_dashboard_ray_address(tmp_path):
    # The old doc's `export RAY_ADDRESS=http://127.0.0.1:8265`, then a local sweep: wdsweep
    # starts its own local Ray (ray.init(address="local")), whatever RAY_ADDRESS says.
    r, study = _run(tmp_path, _env(RAY_ADDRESS="http://127.0.0.1:8265"))
    assert r.returncode == 0, r.stderr[-4000:]
    assert (pd.read_csv(study / "results.csv").status == "completed").all()
