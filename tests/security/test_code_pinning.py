"""A study's code is pinned: its directories' digests and task/model names are
recorded when it trains them; run and resume use them only as recorded, and only from
a study this user's wdsweep sealed (or with --trust-code)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sweep.store import study as st
from tests.security.conftest import one_line
from tests.sweep.runner.test_user_model_sweep import user_spec

MOD = "wds_user_pin"


@pytest.fixture
def user_study(tmp_path, ray_address, wdsweep):
    root = tmp_path / "user"
    spec = user_spec(root, MOD)
    study = tmp_path / "study"
    r = wdsweep("run", spec, "--study", study, "--address", ray_address, "--no-report",
                timeout=600)
    assert r.returncode == 0, r.stderr
    return root, spec, study


def _interrupted(study):
    """As after a crash mid-run: exp-000 running, no results (sealed by this user)."""
    state = st.read_state(study)
    state["experiments"][0]["status"] = "running"
    st.write_tables(study, pd.DataFrame(), pd.DataFrame(), state)


@pytest.mark.slow
def test_changed_code_is_refused_by_run_and_resume_unless_trusted(user_study, ray_address,
                                                                  wdsweep):
    root, spec, study = user_study
    rec = json.loads((study / "study.json").read_text())["code"]
    assert rec["refs"] == [f"{MOD}:blobs", f"{MOD}:net"]
    assert list(rec["dirs"]) == [str(root / "code")]
    mod = root / "code" / f"{MOD}.py"
    original = mod.read_text()
    mod.write_text(original + "\n# edited\n")
    r = wdsweep("run", spec, "--study", study, "--address", ray_address, timeout=120)
    one_line(r, "code:", f"{MOD}.py changed", "--trust-code")
    r = wdsweep("run", spec, "--study", study, "--dry-run", "--trust-code", timeout=120)
    assert r.returncode == 0 and f"{MOD}.py changed" in r.stderr, r.stderr
    _interrupted(study)
    r = wdsweep("resume", study, "--address", ray_address, timeout=120)
    one_line(r, "code:", f"{MOD}.py changed")
    mod.write_text(original)
    r = wdsweep("resume", study, "--address", ray_address, "--no-report", timeout=600)
    assert r.returncode == 0, r.stderr
    assert (pd.read_csv(study / "results.csv").status == "completed").sum() == 6


@pytest.mark.slow
def test_a_study_sealed_by_someone_else_resumes_its_code_only_with_trust(
        user_study, ray_address, wdsweep, cli_env, tmp_path):
    _, _, study = user_study
    _interrupted(study)
    other = dict(cli_env, WDSWEEP_CONFIG_DIR=str(tmp_path / "another-user"))
    r = wdsweep("resume", study, "--address", ray_address, timeout=120, env=other)
    one_line(r, "--trust-code", "not written by your wdsweep", f"{MOD}:net")
    r = wdsweep("resume", study, "--address", ray_address, "--no-report", "--trust-code",
                timeout=600, env=other)
    assert r.returncode == 0, r.stderr
    assert (pd.read_csv(study / "results.csv").status == "completed").sum() == 6
    r = wdsweep("status", study, timeout=120, env=other)  # now sealed by the other user
    assert r.returncode == 0, r.stderr
