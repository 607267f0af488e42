"""Every path a study names stays inside it; nothing it records kills a process
(issue 23, "Writes and kills outside the study")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweep.runner import reap as _reap
from tests.security.conftest import TINY, forge, one_line


@pytest.fixture
def victim_file(tmp_path) -> Path:
    p = tmp_path / "precious.txt"
    p.write_text("precious")
    return p


def test_a_lock_symlink_is_never_followed(study, tmp_path, wdsweep, victim_file):
    (study / ".lock").unlink()
    (study / ".lock").symlink_to(victim_file)
    spec = tmp_path / "s.toml"
    spec.write_text(TINY.replace("seed = [0, 1]", "seed = [0, 1, 2]"))
    for args in (["run", spec, "--study", study], ["resume", study], ["repair", study],
                 ["status", study]):
        r = wdsweep(*args, timeout=120)
        one_line(r, ".lock", "symbolic link")
        assert victim_file.read_text() == "precious"


def test_a_lock_symlink_in_a_new_study_directory_launches_nothing(tmp_path, wdsweep,
                                                                  victim_file):
    study = tmp_path / "new"
    study.mkdir()
    (study / ".lock").symlink_to(victim_file)
    spec = tmp_path / "s.toml"
    spec.write_text(TINY)
    r = wdsweep("run", spec, "--study", study, timeout=120)
    one_line(r, ".lock", "symbolic link")
    assert victim_file.read_text() == "precious"
    assert sorted(p.name for p in study.iterdir()) == [".lock"]


@pytest.mark.parametrize("entry", ["plans", "specs", "results.csv", "report", "experiments"])
def test_a_symlinked_study_entry_is_refused_and_its_target_untouched(study, tmp_path,
                                                                     wdsweep, entry):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep").write_text("x")
    p = study / entry
    if p.is_dir():
        import shutil

        shutil.rmtree(p)
    elif p.exists():
        p.unlink()
    p.symlink_to(target)
    for args in (["status", study], ["resume", study], ["repair", study],
                 ["analyze", study, "--out", tmp_path / "rep"], ["export", study,
                                                                  tmp_path / "pub"]):
        r = wdsweep(*args, timeout=120)
        one_line(r, entry, "symbolic link")
    assert sorted(q.name for q in target.iterdir()) == ["keep"]


def test_resume_never_writes_to_an_experiment_uri_outside_the_study(study, tmp_path,
                                                                    wdsweep):
    out = tmp_path / "attacker-chosen"
    out.mkdir()

    def elsewhere(s):
        e = s["experiments"][0]
        e["status"], e["uri"] = "running", str(out / "exp-000")
    forge(study, elsewhere)
    forge(study, lambda s: s.pop("tables"))
    (study / "results.csv").unlink()
    (study / "history.csv").unlink()
    forge(study)
    r = wdsweep("resume", study, timeout=120)
    one_line(r, "--trust-code", str(out))
    r = wdsweep("repair", study, timeout=120)  # nor reads its checkpoints from there
    assert r.returncode in (0, 2) and "Traceback" not in r.stderr, r.stderr
    assert list(out.iterdir()) == []


def _start_time(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2:].split()[19])


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="Linux /proc")
def test_a_forged_ray_record_kills_nothing(study, tmp_path, wdsweep):
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                              start_new_session=True)
    try:
        time.sleep(0.2)
        rec = {"driver": [2 ** 22 + 17, 1],  # a driver that is gone
               "owner_sha256": "0" * 64,
               "procs": [[victim.pid, _start_time(victim.pid)]]}
        (study / ".ray-local.json").write_text(json.dumps(rec))
        r = wdsweep("status", study, timeout=120)
        assert r.returncode == 0, r.stderr
        assert _reap.reap(study) == 0  # and the API's reaping, directly
        time.sleep(0.3)
        assert victim.poll() is None, "the victim was killed"
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="Linux /proc")
def test_a_record_with_the_owners_token_still_reaps_only_its_owners(tmp_path):
    """The token is what makes a process reapable: one started with it is reaped, a
    process beside it without it is not, even when the record names both."""
    study = tmp_path / "s"
    study.mkdir()
    token = "feedbeef" * 4
    env = dict(os.environ, **{_reap.OWNER_ENV: token})
    mine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env,
                            start_new_session=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                             start_new_session=True)
    try:
        time.sleep(0.3)
        rec = {"driver": [2 ** 22 + 17, 1], "owner_sha256": _reap._digest(token, study),
               "procs": [[p.pid, _start_time(p.pid)] for p in (mine, other)]}
        (study / ".ray-local.json").write_text(json.dumps(rec))
        copy = tmp_path / "another-study"  # the same record copied into another study
        copy.mkdir()
        (copy / ".ray-local.json").write_text(json.dumps(rec))
        assert _reap.reap(copy, wait_s=5) == 0
        assert mine.poll() is None
        assert _reap.reap(study, wait_s=5) == 1
        mine.wait(timeout=10)
        assert other.poll() is None
    finally:
        for p in (mine, other):
            p.kill()
            p.wait()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="Linux /proc")
def test_a_signed_record_reaps_its_recorded_processes_and_a_forged_signature_nothing(
        tmp_path, monkeypatch):
    """Ray's agents lose the token from their environment (they retitle themselves):
    the record's own list counts for them, but only under this user's signature, for
    this study."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv(_reap.OWNER_ENV, "c0ffee" * 6)
    study, other = tmp_path / "s", tmp_path / "other"
    study.mkdir()
    other.mkdir()
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                              env={k: v for k, v in os.environ.items()
                                   if k != _reap.OWNER_ENV}, start_new_session=True)
    try:
        time.sleep(0.3)
        gone = [2 ** 22 + 17, 1]
        for s in (study, other):
            _reap.record(s)  # signed; this pytest process is its "driver"
            rec = json.loads((s / ".ray-local.json").read_text())
            rec["procs"] = [[orphan.pid, _start_time(orphan.pid)]]
            rec["driver"] = gone
            rec["hmac"] = _reap._mac(_reap._key(False), s, gone, rec["procs"],
                                     rec["owner_sha256"])
            (s / ".ray-local.json").write_text(json.dumps(rec))
        key_file = tmp_path / "state" / "wdsweep" / "reap.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        forged = dict(rec, hmac="0" * 64)
        (study / ".ray-local.json").write_text(json.dumps(forged))
        assert _reap.reap(study, wait_s=5) == 0 and orphan.poll() is None
        (study / ".ray-local.json").write_text(  # another study's signed record
            (other / ".ray-local.json").read_text())
        assert _reap.reap(study, wait_s=5) == 0 and orphan.poll() is None
        assert _reap.reap(other, wait_s=5) == 1
        orphan.wait(timeout=10)
    finally:
        orphan.kill()
        orphan.wait()


@pytest.mark.parametrize("where", ["report/report.html", "tensorboard/run",
                                   "experiments/x/exp-001"])
def test_a_link_deep_in_a_written_tree_is_refused(study, tmp_path, wdsweep, victim_file,
                                                 where):
    p = study / where
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists():
        p.unlink()
    p.symlink_to(victim_file)
    for args in (["analyze", study, "--out", study / "report"], ["resume", study],
                 ["status", study]):
        r = wdsweep(*args, timeout=120)
        one_line(r, where, "symbolic link")
    assert victim_file.read_text() == "precious"
