"""Limits and bad specs (issue 23): each is one line naming the field and what is
allowed, exit 2, nothing written anywhere; the memory and compute estimates the
bounds use are checked against real runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweep.plan.spec import parse
from tests.security.conftest import TINY, one_line

ROOT = Path(__file__).resolve().parents[2]


def _with(fixed: str = "", grid: str = "", top: str = "", res: str = "", run: str = "",
          text: str = TINY) -> str:
    text = text.replace("[fixed]\n", f"[fixed]\n{fixed}\n").replace("[grid]\n", f"[grid]\n{grid}\n")
    text = text.replace("[run]\n", f"[run]\n{run}\n")
    return top + "\n" + text + (f"[resources]\n{res}\n" if res else "")


def _refused(tmp_path: Path, wdsweep, spec: str | bytes, *needles: str) -> str:
    """`wdsweep run SPEC --study DIR` (a real run, not a dry run) from an empty working
    directory: exit 2, one line, and nothing left in the study, the cwd or next to the spec."""
    f = tmp_path / "s.toml"
    f.write_bytes(spec if isinstance(spec, bytes) else spec.encode())
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = wdsweep("run", f, "--study", tmp_path / "study", "--no-report", timeout=120, cwd=cwd)
    line = one_line(r, *needles)
    assert not (tmp_path / "study").exists()
    assert not any(cwd.iterdir()), list(cwd.rglob("*"))  # no ./gs:/..., ./file:/...
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    return line


@pytest.fixture(autouse=True)
def host_memory(cli_env, monkeypatch):
    """The memory bounds judged against a 24 GiB host (the dev box) on any machine."""
    cli_env["WDSWEEP_HOST_MEMORY_GB"] = "24"
    monkeypatch.setenv("WDSWEEP_HOST_MEMORY_GB", "24")


NESTED = "[" * 500 + "]" * 500


@pytest.mark.parametrize("spec,needles", [
    (b'name = "h"\xff\n', ("spec", "0xFF", "UTF-8")),
    (f'name = "h"\n[task_args]\nx = {NESTED}\n', ("spec", "nested")),
    (f'name = "h"\n[task_args]\nx = {"[" * 40}{"]" * 40}\n', ("task_args.x", "nested")),
    (_with(fixed="width = 1e308"), ("fixed.width", "integer")),
    (_with(grid="width = [64, 1e308]"), ("grid.width", "integer")),
    (_with(fixed=f"depth = {10**400}"), ("fixed.depth", "1329 bits", "int64")),
    (_with(fixed=f"depth = {'9' * 5000}"), ("spec", "64 bits")),  # past int()'s 4300 digits
    (_with(fixed=f"depth = {10**30}"), ("fixed.depth", "int64")),
    (_with(grid=f"width = {{lin = [1, 2, {10**400}]}}"), ("grid.width", "lin = [lo, hi, n]")),
    (_with(grid="lr = {lin = [-1e308, 1e308, 3]}"), ("grid.lr", "finite")),  # no numpy warning
    (_with(res="cpus_per_trial = 1e-300"), ("resources.cpus_per_trial", "0.0001")),
    (_with(res="gpus_per_trial = 1e-9"), ("resources.gpus_per_trial", "0.0001")),
    (_with(res="cpus_per_trial = 1e300"), ("resources.cpus_per_trial",)),
    (_with(text=TINY.replace("pack = 2", "pack = 1e300")), ("run.pack", "integer")),
    (_with(text=TINY.replace('name = "h"', f'name = "{"n" * 300}"')), ("name", "128 bytes")),
])
def test_what_gave_tracebacks_is_one_line(tmp_path, wdsweep, spec, needles):
    _refused(tmp_path, wdsweep, spec, *needles)


def test_a_code_symlink_loop_is_one_line(tmp_path, wdsweep):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for d in ("loop", "a"):
        _refused(tmp_path, wdsweep, f'code = ["{d}"]\n' + TINY, "code", d, "directories")


@pytest.mark.parametrize("storage", ["file:///", "file:///tmp/x", "gs://b/p",
                                     "http://127.0.0.1:9/x", "foo://bar", "s3://", "S3://b/p",
                                     "s3://Bad_Bucket/p", "hdfs://h/p", "~nosuchuser123/x",
                                     "a\\u0000b"])
def test_a_storage_tune_cannot_serve_here_is_refused_up_front(tmp_path, wdsweep, storage):
    _refused(tmp_path, wdsweep, _with(run=f'storage = "{storage}"'), "run.storage",
             "s3://bucket/prefix")


def test_local_and_s3_storage_still_parse():
    for storage in ("runs", "/nfs/shared/runs", "s3://wdsweep-test/studies", "s3://b.c-d"):
        assert parse(_with(run=f'storage = "{storage}"')).storage == storage


@pytest.mark.parametrize("edit,needles", [
    # memory: trainer.memory, with the task's data sizes (the default preset, pack 8)
    (dict(fixed="val_size = 1e10"), ("fixed.val_size", "GiB", "val_size <=")),
    (dict(fixed='task = "modular_add"\nmodulus = 1e9'), ("fixed.modulus", "GiB")),
    (dict(text='name = "h"\n[fixed]\nbits = 100000\n'), ("fixed.bits", "GiB", "bits <=")),
    (dict(text=TINY.replace("train_size = 256", "train_size = 1e12")),
     ("fixed.train_size", "GiB")),
    (dict(fixed="depth = 100000"), ("fixed.depth", "GiB")),
    (dict(grid="width = [64, 200000]"), ("grid.width", "GiB")),
    (dict(fixed="test_size = 1e11"), ("fixed.test_size", "GiB")),
    (dict(fixed="val_size = 4000000", text=TINY.replace("pack = 2", "pack = 8").replace(
        "seed = [0, 1]", "seed = {lin = [0, 7, 8]}")), ("run.pack", "at most 2 members")),
    # the field that makes the decay explode, not the decay
    (dict(fixed="lr = 1e308"), ("fixed.lr", "per-step decay")),
    (dict(grid="lr = [1e-3, 1e308]"), ("grid.lr", "per-step decay")),
    # one place per key; numbers are numbers
    (dict(fixed="lr = 0.1", grid="lr = [0.1, 0.2]"), ("grid.lr", "fixed.lr", "one place")),
    (dict(fixed='lr = "0.2"'), ("fixed.lr", "must be a number", "without quotes")),
    (dict(fixed='lr = "1e-3"'), ("fixed.lr", "must be a number")),
    (dict(grid='lr = [0.1, "1e-3"]'), ("grid.lr", "must be a number")),
    (dict(fixed='batch_size = "32"'), ("fixed.batch_size", "must be an integer")),
    (dict(fixed='shuffle = "true"'), ("fixed.shuffle", "true or false")),
    (dict(fixed='train_digits = "2,4"'), ("fixed.train_digits", "list of integers")),
])
def test_bad_values_name_the_right_field(tmp_path, wdsweep, edit, needles):
    _refused(tmp_path, wdsweep, _with(**edit), *needles)


@pytest.mark.parametrize("edit,field", [
    (dict(text=TINY.replace("epochs = 2", "epochs = 1e13")), "fixed.epochs"),
    (dict(text=TINY.replace("epochs = 2\n", "steps = 1e12\n")), "fixed.steps"),
    (dict(grid="epochs = [2, 1e13]", text=TINY.replace("epochs = 2\n", "")), "grid.epochs"),
])
def test_huge_compute_names_the_field_and_needs_yes(tmp_path, wdsweep, edit, field):
    line = _refused(tmp_path, wdsweep, _with(**edit), field, "core-hours", "--yes")
    assert "members" in line


def test_a_bad_host_memory_setting_is_one_line(tmp_path, wdsweep, cli_env):
    cli_env["WDSWEEP_HOST_MEMORY_GB"] = "lots"
    _refused(tmp_path, wdsweep, TINY, "WDSWEEP_HOST_MEMORY_GB", "GiB")


def test_a_member_larger_than_its_gpu_share_names_the_field(tmp_path, monkeypatch):
    """pack_size fits K to the card (trainer.memory); one member may not fit at all."""
    import sweep
    from sweep.plan.spec import SpecError

    monkeypatch.setenv("WDSWEEP_GPU_MEMORY_GB", "2")
    spec = _with(fixed="width = 20000", res="gpus_per_trial = 1")
    with pytest.raises(SpecError) as e:
        sweep.run(parse(spec), tmp_path / "study")
    assert e.value.key == "fixed.width" and "GPU memory" in str(e.value), str(e.value)
    assert not (tmp_path / "study").exists()
    sweep.run(parse(spec.replace("20000", "64")), tmp_path / "study", dry_run=True)


# -- the estimates, against real runs --------------------------------------------------
PEAK = """
import json, resource, sys
from trainer import build, preset, train
from trainer.memory import host_bytes
name, k, over = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
base = build(preset(name), {**over, "threads": 1, "device": "cpu"})
members = [base.replace(seed=i) for i in range(k)]
train(members)
# VmHWM: this process image's peak. Not ru_maxrss, which keeps the peak from before exec,
# when the forked child still counted its parent's (pytest's) pages.
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM:")]
peak = int(hwm[0].split()[1]) * 1024 if hwm else \
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps([peak, host_bytes(members)]))
"""


@pytest.mark.parametrize("preset,k,over", [
    ("tiny", 2, {}),
    ("tiny", 2, {"val_size": 100000, "steps": 5}),  # data
    ("tiny", 2, {"bits": 4000, "steps": 5}),  # inputs
    ("tiny", 2, {"width": 1024, "depth": 2, "steps": 5}),  # parameters
    ("modular", 2, {"modulus": 200, "train_size": 1000, "steps": 3}),  # all p^2 pairs
])
def test_the_memory_estimate_bounds_a_real_runs_peak(preset, k, over):
    """trainer.memory.host_bytes is an upper estimate, and not a wild one."""
    # As Ray starts a 1-CPU trial's worker: OMP_NUM_THREADS=1 (without it, OpenMP's
    # thread pool and their malloc arenas are sized to the machine before torch is told)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", PEAK, preset, str(k), json.dumps(over)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    peak, est = json.loads(r.stdout.strip().splitlines()[-1])
    assert peak <= est <= 3 * peak, (peak / 2**20, est / 2**20)


def test_the_core_minute_estimate_is_within_5x_of_a_real_tiny_sweep(ray_local, tmp_path):
    """The 150-member plan that said ~0.0 core-minutes: its estimate against the cores
    the real sweep held (wall time x the 2 CPUs of the test's Ray)."""
    import sweep
    from sweep.plan.packs import make_plan

    spec = parse('name = "m150"\npreset = "tiny"\n[grid]\n'
                 "weight_decay = {log = [0.001, 1.0, 15]}\nseed = {lin = [0, 9, 10]}\n")
    plan = make_plan(spec)
    est = plan.core_minutes(spec.cpus_per_trial) * 60
    t = time.monotonic()
    out = sweep.run(spec, tmp_path / "study")
    used = (time.monotonic() - t) * min(2, len(plan.trials))
    assert out["completed"] == 150
    assert est / 5 <= used <= 5 * est, (est, used)
