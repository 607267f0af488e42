"""The `wdsweep` sweep commands as a user runs them: every shipped spec parses and plans,
`run --dry-run` plans without writing, and `run` -> report -> `status` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import sweep
from sweep.plan.packs import make_plan
from sweep.plan.spec import load

ROOT = Path(__file__).resolve().parents[3]
SPECS = sorted([*ROOT.glob("examples/**/*.toml"), *ROOT.glob("studies/*.toml"),
                *ROOT.glob("docs/data/**/specs/*.toml")])


def test_the_shipped_specs_are_found() -> None:
    names = {p.name for p in SPECS}
    assert {"demo.toml", "seed.toml", "rules_b.toml", "rules_T.toml"} <= names
    assert any(p.parent.name == "studies" for p in SPECS)


@pytest.mark.parametrize("path", SPECS, ids=[str(p.relative_to(ROOT)) for p in SPECS])
def test_every_shipped_spec_parses_and_plans(path: Path, tmp_path: Path) -> None:
    spec = load(path)
    plan = make_plan(spec)  # builds and validates every member of the grid
    assert plan.members and plan.trials
    assert len({m.config_hash() for m in plan.members}) == len(plan.members)
    assert all(len(t.members) <= spec.pack for t in plan.trials) or spec.gpus_per_trial > 0
    out = sweep.run(spec, tmp_path / "study", dry_run=True)
    assert out["ran"] == 0 and not (tmp_path / "study").exists()


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path, wdsweep) -> None:
    study = tmp_path / "study"
    r = wdsweep("run", ROOT / "examples" / "demo.toml", "--study", study, "--dry-run",
                timeout=120)
    assert r.returncode == 0, r.stderr
    plan = make_plan(load(ROOT / "examples" / "demo.toml"))
    assert f"{len(plan.members)} members" in r.stdout
    assert f"{len(plan.trials)} trials to run" in r.stdout
    assert not study.exists()


def test_status_of_a_directory_that_is_no_study_is_one_line_and_exit_2(tmp_path: Path,
                                                                      wdsweep) -> None:
    r = wdsweep("status", tmp_path, timeout=120)
    assert r.returncode == 2 and "not a wdsweep study" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


SPEC = """
name = "cli"
preset = "tiny"
[fixed]
epochs = 6
train_size = 256
eval_every = 8
[grid]
weight_decay = [0.0, 0.03, 0.1, 0.3, 1.0]
seed = [0, 1]
batch_size = [16, 32]
[run]
pack = 10
checkpoint_every = 40
"""


@pytest.mark.slow
def test_run_writes_a_report_and_status_shows_the_finished_study(tmp_path: Path, wdsweep,
                                                                  ray_address) -> None:
    spec_file, study = tmp_path / "s.toml", tmp_path / "study"
    spec_file.write_text(SPEC)
    r = wdsweep("run", spec_file, "--study", study, "--address", ray_address, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = study / "report" / "report.html"
    assert f"report: {report}" in r.stderr  # messages on stderr, data on stdout
    page = report.read_text()
    assert "<img" in page and "data:image/png;base64," in page

    r = wdsweep("status", study, timeout=120)
    assert r.returncode == 0, r.stderr
    head = r.stdout.splitlines()[0]
    assert "20/20 members completed" in head and "0 errored" in head, r.stdout
    assert "driver not running" in head
    assert "exp-000: finished" in r.stdout

    r = wdsweep("status", study, "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert {k: st[k] for k in ("total", "completed", "running", "pending", "errored")} == \
        {"total": 20, "completed": 20, "running": 0, "pending": 0, "errored": 0}
    assert st["driver_alive"] is False

    # Running the same spec again: nothing to do, no report rebuilt.
    before = report.stat().st_mtime_ns
    r = wdsweep("run", spec_file, "--study", study, "--address", ray_address, timeout=300)
    assert r.returncode == 0 and "already completed" in r.stderr, r.stdout + r.stderr
    assert report.stat().st_mtime_ns == before
