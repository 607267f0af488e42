"""Closed-loop refinement in a real study (sweep.runner.refine): real Ray, real training
(the digits task, 20 epochs: ~300 steps a member), real files.

The loop's own decisions (which points, when the data cannot tell) are tested on an
oracle in tests/analysis/test_refine.py; here: the rounds are plain experiments, the
loop stops by itself (rounds, budget, no gain) and says so, nothing runs twice, a
killed driver's round is finished by `wdsweep refine`, and the rounds travel with
export/import.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import sweep
from sweep.store import publish
from sweep.store import study as st
from tests.sweep._helpers import assert_run_refused

GRID = """name = "rf"
preset = "digits"

[fixed]
epochs = 20

[grid]
weight_decay = [0.0, 0.01, 0.1, 1.0, 10.0, 100.0]
seed = [0, 1]

[run]
pack = 16
checkpoint_every = 40

[refine]
"""
GRID_STEPS = 12 * 320  # 12 members, 1,000 images / batch 64 -> 16 steps an epoch, 20 epochs


def _spec(refine: str) -> sweep.Spec:
    return sweep.parse(GRID + refine)


def _results(study: Path) -> pd.DataFrame:
    return pd.read_csv(study / st.RESULTS, dtype={"config_hash": str})


@pytest.fixture(scope="module")
def refined(ray_local, tmp_path_factory) -> tuple[Path, dict]:
    study = tmp_path_factory.mktemp("refined") / "study"
    out = sweep.run(_spec("budget = 1e6\nrounds = 1\nrange = [1e-4, 100]\n"), study)
    return study, out


def test_the_loop_stops_after_its_rounds_and_records_them(refined):
    study, out = refined
    assert out["refine_stop"] == "rounds" and out["refine_rounds"] == 1
    state = st.read_state(study)
    rounds = state["refine"]["rounds"]
    assert [r["experiment"] for r in rounds] == ["exp-001"]
    assert [e["name"] for e in state["experiments"]] == ["exp-000", "exp-001"]
    res = _results(study)
    assert res.config_hash.is_unique and (res.status == "completed").all()
    new = res[res.experiment == "exp-001"]
    assert len(new) == rounds[0]["points"] > 0
    assert new.total_steps.sum() == rounds[0]["member_steps"]
    assert state["refine"]["spent"] == res.total_steps.sum()  # every member counted once
    # Proposals are ordinary members of the grid's cell, at λ the grid did not have
    # (or new seeds), within the range the spec allows.
    grid = res[res.experiment == "exp-000"]
    assert not set(zip(new.weight_decay, new.seed)) & set(zip(grid.weight_decay, grid.seed))
    assert new.weight_decay.between(1e-4, 100).all()
    assert set(new.batch_size) == set(grid.batch_size)
    s = sweep.status(study)
    assert s["refine"]["stop"] == "rounds" and s["refine"]["rounds"][0]["points"] == len(new)
    assert s["total"] == s["completed"] == len(res)


def test_more_rounds_continue_the_study_without_repeating_a_member(refined):
    study, _ = refined
    before = _results(study)
    out = sweep.refine(study, rounds=1)
    res = _results(study)
    assert res.config_hash.is_unique and set(before.config_hash) <= set(res.config_hash)
    rec = st.read_state(study)["refine"]
    assert len(rec["rounds"]) in (1, 2) and rec["stop"] in ("rounds", "no_gain", "target")
    assert out.get("refine_stop") == rec["stop"]


def test_a_round_a_tracker_refuses_leaves_no_round_behind(refined):
    from sweep.plan.spec import SpecError
    from tests.sweep.runner.test_callbacks import FailingSetup

    study, _ = refined
    before = st.read_state(study)
    with pytest.raises(SpecError, match="run.callbacks: FailingSetup"):
        sweep.refine(study, rounds=1, callbacks=[FailingSetup()])
    after = st.read_state(study)
    assert after["refine"]["rounds"] == before["refine"]["rounds"]  # not counted, not named
    assert [e["name"] for e in after["experiments"]] == \
        [e["name"] for e in before["experiments"]]


def test_a_refined_study_exported_and_imported_keeps_its_rounds(refined, tmp_path, wdsweep):
    study, _ = refined
    r = wdsweep("export", study, tmp_path / "pub")
    assert r.returncode == 0, r.stderr
    assert "spec" not in json.loads((tmp_path / "pub" / "published.json").read_text())["refine"]
    r = wdsweep("import", tmp_path / "pub", "--study", tmp_path / "imp")
    assert r.returncode == 0, r.stderr
    got, want = st.read_state(tmp_path / "imp")["refine"], st.read_state(study)["refine"]
    assert got["rounds"] == want["rounds"] and got["stop"] == want["stop"]
    assert "spec" not in got  # a foreign spec is data, never planned from
    r = wdsweep("refine", tmp_path / "imp")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_budget_the_grid_uses_up_stops_before_any_round(ray_local, tmp_path):
    out = sweep.run(_spec(f"budget = {GRID_STEPS + 100}\n"), tmp_path / "s")
    assert out["refine_stop"] == "budget" and out["refine_rounds"] == 0
    assert [e["name"] for e in st.read_state(tmp_path / "s")["experiments"]] == ["exp-000"]


def test_a_study_the_data_cannot_settle_stops_with_no_gain_and_says_why(ray_local, tmp_path):
    # No range to grow into, and the digits' top at the grid's smallest λ: nothing helps.
    out = sweep.run(_spec("budget = 1e6\nrounds = 6\ntarget = 0.01\n"), tmp_path / "s")
    assert out["refine_stop"] == "no_gain"
    assert "onset" in out["refine_reason"]
    assert _results(tmp_path / "s").config_hash.is_unique


def test_an_extension_with_a_new_cell_refines_that_cell_on_its_own_budget(ray_local, tmp_path):
    # An earlier sitting's cell (batch 16: 7,680 member-steps) the extension must neither
    # propose to nor count: counted, it would use up the budget before any round.
    study = tmp_path / "s"
    # It was refined too (one round): the extension's rounds are its own, not counted on.
    old = GRID.replace("[grid]", "[grid]\nbatch_size = [16]").replace("seed = [0, 1]",
                                                                     "seed = [0]")
    sweep.run(sweep.parse(old + "budget = 1e6\nrounds = 1\nrange = [1e-4, 100]\n"), study)
    before = set(_results(study).config_hash)
    new = GRID.replace("[grid]", "[grid]\nbatch_size = [64]")
    out = sweep.run(sweep.parse(new + f"budget = {GRID_STEPS + 6_000}\nrounds = 1\n"
                                "range = [1e-4, 100]\n"), study)
    assert out["refine_rounds"] == 1 and out["refine_stop"] == "rounds", out
    res = _results(study)
    added = res[~res.config_hash.isin(before)]
    assert set(added.batch_size) == {64} and len(added) > 12  # the grid and its round
    assert out["member_steps_spent"] == added.total_steps.sum()  # the new cell's alone
    assert out["member_steps_spent"] <= GRID_STEPS + 6_000
    assert res.config_hash.is_unique
    rec = st.read_state(study)["refine"]
    assert "batch_size = [64]" in rec["spec"] and len(rec["rounds"]) == 1
    (past,) = rec["earlier"]  # the first spec's record, whole
    assert "batch_size = [16]" in past["spec"] and len(past["rounds"]) == 1
    assert past["stop"] == "rounds"
    exp = tmp_path / "exp"
    publish.export(study, exp)  # the records travel as data, without specs
    got = json.loads((exp / "published.json").read_text())["refine"]
    assert "spec" not in got and "spec" not in got["earlier"][0]
    publish.import_(exp, tmp_path / "imp")
    got = st.read_state(tmp_path / "imp")["refine"]
    assert [len(r["rounds"]) for r in (*got["earlier"], got)] == [1, 1]


@pytest.mark.parametrize("refine, key", [
    ("rounds = 2\n", "refine.budget"),
    ("budget = 0\n", "refine.budget"),
    ("budget = 1e6\ntarget = -1\n", "refine.target"),
    ("budget = 1e6\nrounds = 1.5\n", "refine.rounds"),
    ("budget = 1e6\nseeds = [1, 1]\n", "refine.seeds"),
    ("budget = 1e6\nrange = [10, 1]\n", "refine.range"),
    ("budget = 1e6\ntargte = 0.1\n", "refine.targte"),
])
def test_bad_refine_values_are_one_line_exit_2_and_write_nothing(tmp_path, wdsweep, refine,
                                                                  key):
    assert_run_refused(wdsweep, tmp_path, GRID + refine, f"error: {key}:")


def test_the_dry_run_says_what_refinement_will_do(tmp_path, wdsweep):
    spec = tmp_path / "s.toml"
    spec.write_text(GRID + "budget = 2e5\nrounds = 4\n")
    r = wdsweep("run", spec, "--study", tmp_path / "study", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "then up to 4 refinement rounds" in r.stdout and "200,000 member-steps" in r.stdout
    assert not (tmp_path / "study").exists()


def test_refine_on_a_study_without_refine_is_one_line(tmp_path, wdsweep):
    spec = tmp_path / "s.toml"
    spec.write_text(GRID.replace("[refine]\n", ""))
    assert wdsweep("run", spec, "--study", tmp_path / "st", "--dry-run").returncode == 0
    (tmp_path / "st").mkdir()
    r = wdsweep("refine", tmp_path / "st")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def _kill_when_running(args: list, study: Path, name: str, cli_env: dict) -> None:
    """Run `wdsweep ARGS` and SIGKILL its process group 3 s into experiment `name`."""
    p = subprocess.Popen([sys.executable, "-m", "sweep.cli", *args, "--no-report"],
                         env=cli_env, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and not _running(study, name):
            time.sleep(0.5)
        assert _running(study, name), f"{name} never started"
        time.sleep(3)  # mid-experiment: its trial is training
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


@pytest.mark.slow
def test_drivers_killed_in_the_grid_and_in_a_round_are_finished_by_refine_without_duplicates(
        tmp_path, cli_env, wdsweep):
    spec, study = tmp_path / "s.toml", tmp_path / "study"
    # One round; members long enough (640 steps) that an experiment's trial is still
    # training 3 s after it starts. The first driver dies in the grid (exp-000), the
    # first `refine` in the round (exp-002, after the grid's resume exp-001); the second
    # `refine` finishes that round (exp-003) and stops on rounds.
    spec.write_text(GRID.replace("epochs = 20", "epochs = 40")
                    + "budget = 1e6\nrounds = 1\nrange = [1e-4, 100]\n")
    _kill_when_running(["run", spec, "--study", study], study, "exp-000", cli_env)
    assert "refine" in st.read_state(study)  # recorded with the grid, before it ran
    _kill_when_running(["refine", study], study, "exp-002", cli_env)
    r = wdsweep("refine", study, "--no-report", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    res = _results(study)
    assert res.config_hash.is_unique and (res.status == "completed").all()
    state = st.read_state(study)
    assert not any(e["status"] == "running" for e in state["experiments"])
    planned = {h for e in state["experiments"] for h in e["members"]}
    assert planned == set(res.config_hash)  # every planned member ran, exactly once
    assert [r["experiment"] for r in state["refine"]["rounds"]] == ["exp-002"]
    assert state["refine"]["stop"] == "rounds"
    # the round's members: planned once, in exp-002 (and its resume), none twice
    grid = {h for e in state["experiments"][:2] for h in e["members"]}
    assert set(res.loc[~res.config_hash.isin(grid), "config_hash"]) == \
        {h for e in state["experiments"][2:] for h in e["members"]}


@pytest.mark.slow
def test_ctrl_c_in_the_grid_stops_the_loop_before_any_round(tmp_path, cli_env):
    """Ctrl-C (SIGINT to the driver's group) mid-grid: exit 130, the grid's experiment left
    to finish, and no round proposed from the partial grid (before, the loop went on,
    recorded a round and was then refused for the interrupted grid)."""
    spec, study = tmp_path / "s.toml", tmp_path / "study"
    spec.write_text(GRID.replace("epochs = 20", "epochs = 40")
                    + "budget = 1e6\nrounds = 1\nrange = [1e-4, 100]\n")
    p = subprocess.Popen([sys.executable, "-m", "sweep.cli", "run", spec, "--study", study,
                          "--no-report"], env=cli_env, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and not _running(study, "exp-000"):
            time.sleep(0.5)
        assert _running(study, "exp-000"), "the grid never started"
        time.sleep(3)  # mid-grid: its trial is training
        os.killpg(p.pid, signal.SIGINT)
        out, _ = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 130, out[-3000:]
    state = st.read_state(study)
    assert [(e["name"], e["status"]) for e in state["experiments"]] == [("exp-000", "running")]
    assert state["refine"]["rounds"] == [] and "stop" not in state["refine"]
    assert sorted(x.name for x in (study / st.PLANS).iterdir()) == ["exp-000.json"]
    assert f"wdsweep refine {study}" in out and "refine round" not in out


def _running(study: Path, name: str) -> bool:
    try:
        state = json.loads((study / st.STATE).read_text())
    except (OSError, ValueError):
        return False
    return any(e["name"] == name and e["status"] == "running" for e in state["experiments"])
