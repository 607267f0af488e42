"""Sweeps on a real local Ray: completeness, extension, errors, crashes, the lock."""

import json
import signal
import subprocess
import sys

import pandas as pd
import pytest

import sweep
from sweep.plan.packs import make_plan
from sweep.plan.spec import SpecError, parse
from tests.sweep._helpers import SPEC, assert_each_member_once, driver, exp_dir, spec, wait_for


def test_a_sweep_completes_every_member_exactly_once(ray_local, tmp_path):
    s = spec()
    out = sweep.run(s, tmp_path / "study")
    assert out["completed"] == 4 and out["errored"] == 0
    assert_each_member_once(tmp_path / "study", s)
    st = sweep.status(tmp_path / "study")
    assert {k: st[k] for k in ("total", "completed", "running", "pending", "errored")} == \
        {"total": 4, "completed": 4, "running": 0, "pending": 0, "errored": 0}


def test_extending_a_study_runs_only_the_new_members(ray_local, tmp_path):
    study = tmp_path / "study"
    sweep.run(spec(), study)
    before = pd.read_csv(study / "results.csv").set_index("config_hash")
    out = sweep.run(spec(wds=(0.0, 0.1, 1.0)), study)
    assert out["completed"] == 2  # only the two new (lambda = 1.0) members ran
    res = assert_each_member_once(study, spec(wds=(0.0, 0.1, 1.0)))
    kept = res.set_index("config_hash").loc[before.index]
    assert (kept.experiment == "exp-000").all()
    pd.testing.assert_series_equal(kept.last_test_acc, before.last_test_acc)
    assert sweep.run(spec(wds=(0.0, 0.1, 1.0)), study)["ran"] == 0


def test_an_erroring_trial_is_recorded_and_retried_from_its_checkpoint(ray_local, tmp_path,
                                                                       fault_dir):
    s = spec(epochs=8)
    victim = make_plan(s).trials[0].members[0]
    fault = fault_dir / victim.config_hash()
    fault.write_text("40")  # raise once the trial passes step 40 (checkpoints every 8)
    study = tmp_path / "study"
    out = sweep.run(s, study)
    assert out["errored"] == 2 and out["completed"] == 2  # the other trial went on
    res = pd.read_csv(study / "results.csv")
    err = res[res.status == "errored"]
    assert victim.config_hash() in set(err.config_hash)
    tb = err.error.iloc[0]  # the traceback, frames included
    assert "RuntimeError: injected fault" in tb and "in _maybe_fail" in tb and "File \"" in tb
    assert sweep.status(study)["errored"] == 2

    fault.unlink()
    out = sweep.resume(study, retry_errored=True)
    assert out["completed"] == 2  # only the errored pack ran again, from its checkpoint
    res = assert_each_member_once(study, s).set_index("config_hash")
    # The fault fires at the step-40 evaluation, before that step's checkpoint: step 32.
    assert res.loc[victim.config_hash(), "resumed_from"] == 32


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_killed_or_interrupted_driver_then_resume_loses_and_duplicates_nothing(
        ray_address, tmp_path, cli_env, sig):
    s = spec(wds=(0.0, 0.1, 0.3, 1.0), epochs=60, ckpt=40)
    spec_file, study = tmp_path / "s.toml", tmp_path / "study"
    spec_file.write_text(s.text)
    p = driver(["run", spec_file, "--study", study, "--address", ray_address, "--no-report"],
               cli_env)
    status = study / "status.json"

    def some_done_some_running():
        if not status.exists():
            return False
        c = json.loads(status.read_text())["trials"]
        return c["completed"] >= 1 and c["running"] + c["pending"] >= 1

    assert wait_for(some_done_some_running, timeout=120), p.communicate()[0]
    p.send_signal(sig)
    rc = p.wait(timeout=120)
    live = json.loads(status.read_text())["per_trial"]
    finished = [t["key"] for t in live if t["status"] == "completed"]
    exp = exp_dir(study)
    stamps = {k: sorted(c.stat().st_mtime_ns for c in (exp / f"trial-{k}").glob("checkpoint_*"))
              for k in finished}
    st = sweep.status(study)
    assert st["total"] == 8 and not st["driver_alive"] and st["completed"] < 8
    if sig == signal.SIGKILL:  # finished trials were folded into results.csv as they ended
        done = pd.read_csv(study / "results.csv", dtype={"trial_id": str})
        assert (done.status == "completed").all() and set(finished) <= set(done.trial_id)
        assert st["completed"] == len(done) == done.config_hash.nunique()
    else:  # Tune stops the trials; only the ones that reached their last step count
        assert rc == 130, p.stdout.read()
        done = pd.read_csv(study / "results.csv") if (study / "results.csv").exists() else None
        assert done is None or (done.status == "completed").all()

    r = subprocess.run([sys.executable, "-m", "sweep.cli", "resume", study, "--address",
                        ray_address, "--no-report"], env=cli_env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_each_member_once(study, s)
    for k in finished:  # finished trials were not run again
        now = sorted(c.stat().st_mtime_ns for c in (exp / f"trial-{k}").glob("checkpoint_*"))
        assert now == stamps[k]


@pytest.mark.slow
def test_a_second_run_on_a_busy_study_refuses_and_corrupts_nothing(ray_address, tmp_path,
                                                                   cli_env, wdsweep):
    s = spec(epochs=30)
    spec_file, study = tmp_path / "s.toml", tmp_path / "study"
    spec_file.write_text(s.text)
    p = driver(["run", spec_file, "--study", study, "--address", ray_address, "--no-report"],
               cli_env)
    assert wait_for(lambda: (study / "study.json").exists(), timeout=120)
    r = wdsweep("run", spec_file, "--study", study, "--address", ray_address, timeout=120)
    assert r.returncode == 2 and "in use by another wdsweep process" in r.stderr
    assert p.wait(timeout=600) == 0, p.stdout.read()
    assert_each_member_once(study, s)


def test_gpus_asked_of_a_cluster_without_gpus_is_bad_input_and_leaves_nothing(ray_local,
                                                                             tmp_path):
    s = parse(SPEC.format(wds=[0.1], epochs=1, ckpt=8, name="t", run="")
              + "[resources]\ngpus_per_trial = 1\n")
    with pytest.raises(SpecError) as e:
        sweep.run(s, tmp_path / "study")
    assert e.value.key == "resources.gpus_per_trial" and "has 0 GPUs" in str(e.value)
    assert not (tmp_path / "study").exists()


def test_two_studies_sharing_one_storage_root_do_not_collide(ray_local, tmp_path):
    shared = tmp_path / "shared-runs"
    s = spec(wds=[0.0, 0.1], epochs=2, run=f'storage = "{shared}"')
    sweep.run(s, tmp_path / "a")
    sweep.run(s, tmp_path / "b")
    ua, ub = exp_dir(tmp_path / "a"), exp_dir(tmp_path / "b")
    assert ua != ub and ua.parent.parent == ub.parent.parent == shared
    for study in ("a", "b"):
        assert_each_member_once(tmp_path / study, s)
