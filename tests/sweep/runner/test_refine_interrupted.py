"""Refinement interrupted and extended, in a real study (real Ray, training, files): a
killed driver's grid and round are finished by `wdsweep refine`, Ctrl-C stops the loop
before any round, and an extension with a new cell refines that cell on its own budget.
(A file of its own so that `make test`'s two workers share the refine tests.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import sweep
from sweep.store import publish
from sweep.store import study as st
from tests.sweep.runner._refine_grid import GRID, GRID_STEPS, _results


@pytest.mark.parametrize("where", ["grid", "fixed"])
def test_an_extension_with_a_new_cell_refines_that_cell_on_its_own_budget(ray_local, tmp_path,
                                                                          where):
    # An earlier sitting's cell (batch 16: 7,680 member-steps) the extension must neither
    # propose to nor count: counted, it would use up the budget before any round. The new
    # cell is a grid axis, or fixed (its spec's grid is λ and seeds only: b = 512 added
    # to a study of b = 16...256 was refined as one cell with the whole study).
    study = tmp_path / "s"
    # It was refined too (one round): the extension's rounds are its own, not counted on.
    old = GRID.replace("[grid]", "[grid]\nbatch_size = [16]").replace("seed = [0, 1]",
                                                                     "seed = [0]")
    sweep.run(sweep.parse(old + "budget = 1e6\nrounds = 1\nrange = [1e-4, 100]\n"), study)
    before = set(_results(study).config_hash)
    new = GRID.replace("[grid]", "[grid]\nbatch_size = [64]") if where == "grid" else \
        GRID.replace("[fixed]", "[fixed]\nbatch_size = 64")
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
    want = "batch_size = [64]" if where == "grid" else "batch_size = 64"
    assert want in rec["spec"] and len(rec["rounds"]) == 1
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
