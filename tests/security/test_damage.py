"""Damage is caught, and every stuck state has a next command that moves it on
(issue 23, "Damage that is not caught, or that sticks")."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import sweep
from sweep.store import study as st
from tests.security.conftest import TINY, one_line


def _completed(study: Path) -> int:
    return sweep.status(study)["completed"]


def test_a_deleted_study_json_is_damage_for_every_reader_and_repair_rebuilds_it(
        study, tmp_path, wdsweep):
    (study / "study.json").unlink()
    for args in (["status", study], ["analyze", study, "--out", tmp_path / "rep"],
                 ["export", study, tmp_path / "pub"]):
        r = wdsweep(*args, timeout=120)
        one_line(r, "study.json", "missing", "wdsweep repair")
    assert not (tmp_path / "rep").exists() and not (tmp_path / "pub").exists()
    r = wdsweep("repair", study, timeout=120)
    assert r.returncode == 0, r.stderr
    assert _completed(study) == 4


def test_study_json_replaced_by_a_directory_is_damage_and_repair_moves_it_aside(
        study, wdsweep):
    (study / "study.json").unlink()
    (study / "study.json").mkdir()
    r = wdsweep("status", study, timeout=120)
    one_line(r, "study.json", "wdsweep repair")
    r = wdsweep("repair", study, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (study / "study.json").is_file() and _completed(study) == 4
    assert [p.name for p in study.glob("study.json.damaged-*")]


def test_a_table_replaced_by_a_directory_is_repaired(study, wdsweep):
    res0 = pd.read_csv(study / "results.csv")
    (study / "results.csv").unlink()
    (study / "results.csv").mkdir()
    r = wdsweep("status", study, timeout=120)
    one_line(r, "results.csv", "wdsweep repair")
    r = wdsweep("repair", study, timeout=120)
    assert r.returncode == 0, r.stderr
    res = pd.read_csv(study / "results.csv")
    last = [c for c in res0.columns if c.startswith("last_")]
    pd.testing.assert_frame_equal(res.sort_values("config_hash")[last].reset_index(drop=True),
                                  res0.sort_values("config_hash")[last].reset_index(drop=True))


def test_a_damaged_plan_is_found_by_repair_and_rebuilt(study, wdsweep):
    p = study / "plans" / "exp-000.json"
    p.write_bytes(p.read_bytes()[:-40])
    r = wdsweep("status", study, timeout=120)
    one_line(r, "plans/exp-000.json", "wdsweep repair")
    r = wdsweep("repair", study, timeout=120)
    assert r.returncode == 0 and "rebuilt plans/exp-000.json" in r.stdout, r.stdout + r.stderr
    assert _completed(study) == 4
    r = wdsweep("repair", study, timeout=120)
    assert r.returncode == 0 and "nothing to repair" in r.stdout


def test_a_driver_killed_after_tune_finished_is_moved_on_by_resume(study, ray_local):
    state = st.read_state(study)
    state["experiments"][0]["status"] = "running"  # as a driver killed before recording it
    st.write_state(study, state)
    spec = sweep.parse(TINY.replace("seed = [0, 1]", "seed = [0, 1, 2]"))
    with pytest.raises(sweep.SpecError, match="wdsweep resume"):
        sweep.run(spec, study)
    assert sweep.resume(study)["resumed"] == 0
    assert st.read_state(study)["experiments"][0]["status"] == "finished"
    assert sweep.run(spec, study)["completed"] == 2


@pytest.mark.slow
def test_a_second_run_during_the_first_ones_ray_start_leaves_it_alone(tmp_path, cli_env):
    """The lock is taken before Ray starts: the second driver stops at once, and the
    first one's record of its Ray processes (for reaping) stays."""
    spec, study = tmp_path / "s.toml", tmp_path / "study"
    spec.write_text(TINY.replace("epochs = 2", "epochs = 6"))
    cmd = [sys.executable, "-m", "sweep.cli", "run", str(spec), "--study", str(study),
           "--no-report"]
    env = {k: v for k, v in cli_env.items() if k != "RAY_ADDRESS"}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    t = time.monotonic()
    while not st.is_locked(study) and time.monotonic() - t < 60:
        time.sleep(0.02)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and "in use by another wdsweep process" in second.stderr
    while not (study / ".ray-local.json").exists() and first.poll() is None:
        time.sleep(0.05)
    assert (study / ".ray-local.json").exists() or first.poll() == 0
    out = first.communicate(timeout=300)[0]
    assert first.returncode == 0, out
    assert _completed(study) == 4
    assert not (study / ".ray-local.json").exists()  # forgotten by its own driver only


def test_the_study_fixture_is_a_real_moved_copy(finished_study, study):
    (a,), (b,) = (json.loads((s / "study.json").read_text())["experiments"]
                  for s in (finished_study, study))
    assert a["members"] == b["members"] and b["uri"].startswith(str(study))
    assert sweep.status(study)["completed"] == 4
    shutil.rmtree(study)
    assert (finished_study / "study.json").exists()
