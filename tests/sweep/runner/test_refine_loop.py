"""Closed-loop refinement in a real study (sweep.runner.refine): real Ray, real training
(the digits task, 20 epochs: ~300 steps a member), real files.

The loop's own decisions (which points, when the data cannot tell) are tested on an
oracle in tests/analysis/test_refine.py; here: the rounds are plain experiments, the
loop stops by itself (rounds, budget, no gain) and says so, nothing runs twice, and the
rounds travel with export/import. Interrupted and extended refinements:
test_refine_interrupted.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sweep
from sweep.store import study as st
from tests.sweep._helpers import assert_run_refused
from tests.sweep.runner._refine_grid import GRID, GRID_STEPS, _results, _spec


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
