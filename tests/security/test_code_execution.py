"""Nothing in a study directory runs: not a saved spec's code, not a plan's model, not a
code directory the study names (issue 23, "Code execution")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.security.conftest import evil_module, forge, one_line

LEGACY_SPEC = """
name = "evil"
preset = "tiny"
task = "evil:task"
code = ["."]
[fixed]
steps = 8
[grid]
weight_decay = [0.1]
"""


def _legacy(study: Path, marker: Path, plans: bool = False) -> None:
    """A crafted minimal study as an older wdsweep wrote it: study.json without seal or
    plan checksum, and a saved spec whose code sits next to it."""
    (study / "specs").mkdir(parents=True)
    (study / "specs" / "exp-000.toml").write_text(LEGACY_SPEC)
    evil_module(study / "specs", "evil", marker)
    evil_module(study, "evil", marker)
    exp = {"name": "exp-000", "uri": str(study / "experiments" / "x" / "exp-000"),
           "status": "running", "members": ["0123456789abcdef"], "trials": ["abcdef012345"]}
    (study / "study.json").write_text(json.dumps({"experiments": [exp], "id": "evil-1",
                                                  "name": "evil"}))


@pytest.mark.parametrize("cmd", ["status", "analyze", "resume", "repair", "export"])
def test_a_legacy_study_with_a_code_spec_runs_nothing(tmp_path, wdsweep, cmd):
    study, marker = tmp_path / "study", tmp_path / "MARKER"
    _legacy(study, marker)
    args = {"analyze": ["--out", tmp_path / "rep"], "export": [tmp_path / "pub"]}.get(cmd, [])
    r = wdsweep(cmd, study, *args, timeout=120)
    one_line(r, "repair --migrate")
    assert not marker.exists()
    assert not (tmp_path / "rep").exists() and not (tmp_path / "pub").exists()


def test_migrating_a_legacy_study_with_a_code_spec_refuses_to_plan_it(tmp_path, wdsweep):
    study, marker = tmp_path / "study", tmp_path / "MARKER"
    _legacy(study, marker)
    r = wdsweep("repair", "--migrate", study, timeout=120)
    one_line(r, "specs/exp-000.toml", "your own task or model")
    assert not marker.exists()


def test_repair_of_a_crafted_study_json_and_specs_runs_nothing(tmp_path, wdsweep):
    study, marker = tmp_path / "study", tmp_path / "MARKER"
    _legacy(study, marker)
    (study / "study.json").write_text("{garbage")  # repair then rebuilds it from plans/ only
    r = wdsweep("repair", study, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert not marker.exists()


def _running_with_model(study: Path, code_dir: Path) -> None:
    """exp-000 back to running, its members training `evilmod:model` from `code_dir`."""
    def plan(p):
        for t in p["trials"]:
            for m in t["members"]:
                m["model"] = "evilmod:model"

    def state(s):
        e = s["experiments"][0]
        e["status"], e["code"] = "running", [str(code_dir)]
    forge(study, state, plan)
    (study / "results.csv").unlink()
    (study / "history.csv").unlink()
    forge(study, lambda s: s.pop("tables"))


@pytest.mark.parametrize("where", ["hidden dir inside the study", "a directory beside it"])
def test_a_forged_plan_model_and_code_dir_never_run_on_resume(study, tmp_path, wdsweep,
                                                              where):
    marker = tmp_path / "MARKER"
    code = study / ".hidden" if where.startswith("hidden") else tmp_path / "elsewhere"
    evil_module(code, "evilmod", marker)
    _running_with_model(study, code)
    r = wdsweep("resume", study, timeout=120)
    one_line(r, *(["inside the study"] if where.startswith("hidden") else
                  ["--trust-code", "evilmod:model", str(code)]))
    assert not marker.exists()
    r = wdsweep("status", study, timeout=120)  # a read-only command imports nothing either
    assert r.returncode == 0 and not marker.exists(), r.stderr


def test_code_inside_the_study_is_refused_even_when_trusted(study, tmp_path, wdsweep):
    marker = tmp_path / "MARKER"
    code = evil_module(study / ".hidden", "evilmod", marker)
    _running_with_model(study, code)
    r = wdsweep("resume", study, "--trust-code", timeout=120)
    one_line(r, "inside the study")
    assert not marker.exists()


def test_a_bit_flip_in_study_json_is_damage(study, wdsweep):
    p = study / "study.json"
    text = p.read_text()
    h = json.loads(text)["experiments"][0]["members"][0]
    p.write_text(text.replace(h, h[:-1] + ("0" if h[-1] != "0" else "1"), 1))
    r = wdsweep("status", study, timeout=120)
    one_line(r, "study.json", "differs from its own checksum", "wdsweep repair")
