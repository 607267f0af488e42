"""Issue 12: resume runs no code from a study directory, survives kills at unlucky
moments, and an embedded local Ray listens on loopback only and is reaped."""

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import sweep
from sweep.plan.packs import make_plan
from sweep.plan.spec import SpecError
from sweep.runner.reap import descendants
from sweep.store.repair import repair
from tests.faults import FAULT_DIR_ENV
from tests.sweep._helpers import driver, exp_dir, spec, wait_for


class Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(exp_dir: Path, marker: Path) -> int:
    """A code-running pickle wherever Tune keeps one, and in every checkpoint."""
    evil = pickle.dumps(Evil(marker))
    targets = [exp_dir / "tuner.pkl", *exp_dir.glob("trial-*/params.pkl"),
               *(c / "evil.pkl" for c in exp_dir.glob("trial-*/checkpoint_*"))]
    for t in targets:
        t.write_bytes(evil)
    return len(targets)


def history(study: Path) -> pd.DataFrame:
    h = pd.read_csv(study / "history.csv", dtype={"config_hash": str})
    return h.drop(columns=["wall_time"]).sort_values(["config_hash", "step"]) \
        .reset_index(drop=True)


def test_resume_runs_no_planted_pickle_and_ends_bit_identical(ray_local, tmp_path,
                                                              fault_dir):
    s = spec(epochs=6, name="r", run="")
    victim = make_plan(s).trials[0].members[0]
    fault = fault_dir / victim.config_hash()
    fault.write_text("40")  # the pack errors at step 40, after its step-32 checkpoint
    study, marker = tmp_path / "study", tmp_path / "PWNED"
    try:
        sweep.run(s, study)
    finally:
        fault.unlink()
    assert plant(exp_dir(study), marker) >= 3
    out = sweep.resume(study, retry_errored=True)
    assert out["completed"] == 2 and not marker.exists()
    res = pd.read_csv(study / "results.csv", dtype={"config_hash": str})
    assert (res.status == "completed").all() and len(res) == 4
    assert res.set_index("config_hash").loc[victim.config_hash(), "resumed_from"] == 32

    clean = tmp_path / "clean"  # the same sweep, never interrupted
    sweep.run(s, clean)
    pd.testing.assert_frame_equal(history(study), history(clean))


def _some_done(study: Path) -> bool:
    p = study / "status.json"
    try:
        c = json.loads(p.read_text())["trials"] if p.exists() else None
    except ValueError:
        return False
    return bool(c) and c["completed"] >= 1 and c["running"] + c["pending"] >= 1


def long_spec_text() -> str:
    """Four packs on two CPUs, long enough to be killed with some done, some not."""
    return spec(epochs=60, name="r", run="").text.replace(
        "checkpoint_every = 8", "checkpoint_every = 40").replace(
        "weight_decay = [0.0, 0.1]", "weight_decay = [0.0, 0.1, 0.3, 1.0]")


def _rm_newest_checkpoints(exp: Path) -> None:
    """What an unlucky SIGKILL leaves: the newest Tune checkpoint of each unfinished
    trial half-written or gone (Tune's state may still name it)."""
    for t in exp.glob("trial-*"):
        ck = sorted(t.glob("checkpoint_*"))
        if ck:
            for f in (ck[-1] / "checkpoints").glob("*.pt"):
                f.write_bytes(f.read_bytes()[:100])  # torn: fails its sha256


@pytest.mark.slow
def test_sigkill_then_resume_from_trainer_checkpoints_with_planted_pickles(
        ray_address, tmp_path, cli_env):
    spec_file, study, marker = tmp_path / "s.toml", tmp_path / "study", tmp_path / "PWNED"
    spec_file.write_text(long_spec_text())
    p = driver(["run", spec_file, "--study", study, "--address", ray_address, "--no-report"],
               cli_env)
    assert wait_for(lambda: _some_done(study)), p.communicate()[0]
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    exp = exp_dir(study)
    _rm_newest_checkpoints(exp)
    plant(exp, marker)
    r = subprocess.run([sys.executable, "-m", "sweep.cli", "resume", study, "--address",
                        ray_address, "--no-report"], env=cli_env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not marker.exists()
    res = pd.read_csv(study / "results.csv")
    assert len(res) == 8 and (res.status == "completed").all()
    assert "Could not recover" not in r.stdout + r.stderr


@pytest.mark.slow
def test_resume_on_s3_runs_no_planted_pickle(tmp_path, s3_server, cli_env, fault_dir):
    import boto3

    creds = dict(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                 AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=s3_server)
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="wdsweep-safe")
    s = spec(epochs=6, name="r", run='storage = "s3://wdsweep-safe/st"')
    victim = make_plan(s).trials[0].members[0]
    faults = tmp_path / "faults"
    faults.mkdir()
    (faults / victim.config_hash()).write_text("40")
    spec_file, study, marker = tmp_path / "s.toml", tmp_path / "study", tmp_path / "PWNED"
    spec_file.write_text(s.text)
    env = {**cli_env, **creds, FAULT_DIR_ENV: str(faults)}
    r = subprocess.run([sys.executable, "-m", "tests.sweep.fault_cli", "run", spec_file,
                        "--study", study,
                        "--no-report"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]  # one pack errored
    (faults / victim.config_hash()).unlink()
    prefix = exp_dir(study).as_posix().split("wdsweep-safe/", 1)[1]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="wdsweep-safe",
                                                 Prefix=prefix)["Contents"]]
    evil = pickle.dumps(Evil(marker))
    planted = [k for k in keys if k.endswith(("tuner.pkl", "params.pkl"))]
    planted += {k.rsplit("/", 2)[0] + "/evil.pkl" for k in keys if "/checkpoint_" in k}
    for k in planted:
        s3.put_object(Bucket="wdsweep-safe", Key=k, Body=evil)
    assert len(planted) >= 3
    r = subprocess.run([sys.executable, "-m", "tests.sweep.fault_cli", "resume", study,
                        "--retry-errored", "--no-report"], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not marker.exists()
    res = pd.read_csv(study / "results.csv", dtype={"config_hash": str})
    assert len(res) == 4 and (res.status == "completed").all()
    assert res.set_index("config_hash").loc[victim.config_hash(), "resumed_from"] == 32


def _listening(pids: list[int]) -> list[str]:
    """Local addresses of the LISTEN TCP sockets that `pids` hold (from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    out = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                addr, port = f[1].split(":")
                ip = (socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1])
                      if width == 8 else socket.inet_ntop(
                          socket.AF_INET6, b"".join(bytes.fromhex(addr[i:i + 8])[::-1]
                                                    for i in range(0, 32, 8))))
                out.append(f"{ip}:{int(port, 16)}")
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="Linux /proc")
def test_embedded_ray_listens_on_loopback_only_and_a_killed_drivers_ray_is_reaped(
        ray_address, tmp_path, cli_env, wdsweep):
    spec_file, study = tmp_path / "s.toml", tmp_path / "study"
    spec_file.write_text(long_spec_text())
    p = driver(["run", spec_file, "--study", study, "--no-report"], cli_env)  # embedded Ray
    assert wait_for(lambda: _some_done(study)), p.communicate()[0]
    ray_pids = descendants(p.pid)
    addrs = _listening([p.pid, *ray_pids])
    assert addrs, "Ray's processes should be listening somewhere"
    assert all(a.startswith(("127.", "::ffff:127.", "::1:")) for a in addrs), addrs
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    time.sleep(1)
    left = [q for q in ray_pids if Path(f"/proc/{q}").exists()]
    assert left, "a SIGKILLed driver leaves its Ray processes behind"
    r = wdsweep("status", study, timeout=120)  # the next command reaps them
    assert r.returncode == 0, r.stderr
    # Ray's agents (retitled, so without the token in their environment) included
    assert wait_for(lambda: not [q for q in ray_pids if _running(q)], timeout=30), (
        [_title(q) for q in ray_pids if _running(q)], r.stderr)
    r = wdsweep("resume", study, "--address", ray_address, "--no-report", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(pd.read_csv(study / "results.csv")) == 8


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()[:60].decode(errors="replace")
    except OSError:
        return f"{pid} (gone)"


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_a_study_from_before_plan_records_is_migrated_from_its_saved_spec_then_resumes(
        ray_local, tmp_path, fault_dir):
    s = spec(epochs=2, name="r", run="")
    victim = make_plan(s).trials[1].members[0]
    fault = fault_dir / victim.config_hash()
    fault.write_text("16")
    study = tmp_path / "study"
    try:
        sweep.run(s, study)
    finally:
        fault.unlink()
    state = json.loads((study / "study.json").read_text())
    for e in state["experiments"]:  # what an older wdsweep wrote: no plan records
        del e["plan_sha256"], e["continues"]
    del state["seal"]  # ... and no checksum of study.json itself
    (study / "study.json").write_text(json.dumps(state))
    for p in (study / "plans").iterdir():
        p.unlink()
    with pytest.raises(SpecError, match="repair --migrate"):  # refused until adopted
        sweep.resume(study, retry_errored=True)
    repair(study, say=lambda _: None, migrate=True)
    assert len(list((study / "plans").iterdir())) == 1  # planned again, checksummed
    out = sweep.resume(study, retry_errored=True)
    assert out["completed"] == 2
    st = sweep.status(study)
    assert (st["total"], st["completed"], st["errored"]) == (4, 4, 0)
