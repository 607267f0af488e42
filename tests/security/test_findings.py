"""What an attack review of the hardening found (each failed before its fix): forged
records that reached outside the study, hung, blew up memory or gave tracebacks."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from sweep.store import study as st
from tests.security.conftest import forge, one_line
from trainer import ConfigError


def test_repair_never_writes_a_plan_named_outside_the_study(study, tmp_path, wdsweep):
    target = tmp_path / "outside" / "settings.json"
    target.parent.mkdir()
    target.write_text("{}")
    p = study / "plans" / "exp-000.json"
    plan = json.loads(p.read_text())
    for name in ("../../outside/settings", str(target.with_suffix(""))):
        p.write_text(json.dumps({**plan, "experiment": name}))
        (study / "study.json").write_text("{")
        r = wdsweep("repair", study, timeout=120)
        one_line(r, "plans/exp-000.json", "not a plan record")
        assert target.read_text() == "{}"


@pytest.mark.parametrize("edit", ["traversal key", "imported with trials"])
def test_trial_keys_and_imports_are_data_never_paths(study, wdsweep, edit):
    def f(s):
        e = s["experiments"][0]
        if edit == "traversal key":
            e["trials"] = ["x/../../../../outside/tw0"]
        else:
            s["experiments"].append({"name": "imported", "status": "imported",
                                     "uri": "/elsewhere", "trials": e["trials"],
                                     "members": []})
    forge(study, f)
    for cmd in ("status", "resume"):
        one_line(wdsweep(cmd, study, timeout=120), "study.json", "wdsweep repair")
    r = wdsweep("repair", study, timeout=120)  # study.json again from the plans, as data
    assert r.returncode == 0, r.stderr
    assert wdsweep("status", study, timeout=120).returncode == 0


@pytest.mark.parametrize("name", ["results.csv", ".lock", "study.json"])
def test_a_fifo_in_a_study_is_refused_not_waited_on(study, wdsweep, name):
    (study / name).unlink()
    os.mkfifo(study / name)
    for cmd in ("status", "repair", "export"):
        r = wdsweep(cmd, study, *(["/tmp/never-written"] if cmd == "export" else []),
                    timeout=60)
        one_line(r, name, "not a regular file")


def test_a_sparse_study_json_is_refused_without_reading_it(study, wdsweep):
    p = study / "study.json"
    p.unlink()
    with open(p, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB apparent, nothing on disk
    r = wdsweep("status", study, timeout=60)
    one_line(r, "study.json", "larger than")


def test_a_legacy_spec_with_a_huge_grid_is_refused_before_it_is_expanded(tmp_path, wdsweep):
    study = tmp_path / "study"
    (study / "specs").mkdir(parents=True)
    axes = "\n".join(f"{k} = {list(range(1, 61))}" for k in
                     ("seed", "width", "depth", "batch_size", "eval_every", "data_seed"))
    (study / "specs" / "exp-000.toml").write_text(f'name = "x"\npreset = "tiny"\n[grid]\n{axes}\n')
    exp = {"name": "exp-000", "uri": str(study / "experiments"), "status": "running",
           "members": [], "trials": []}
    (study / "study.json").write_text(json.dumps({"experiments": [exp]}))
    r = wdsweep("repair", "--migrate", study, timeout=60)
    one_line(r, "grid")


def test_resume_bounds_a_forged_plan_like_run(study, wdsweep):
    def plan(p):
        for t in p["trials"]:
            for m in t["members"]:
                m["epochs"], m["steps"] = 10 ** 9, None

    forge(study, lambda s: s["experiments"][0].update(status="running"), plan)
    (study / "results.csv").unlink()
    (study / "history.csv").unlink()
    forge(study, lambda s: s.pop("tables"))
    r = wdsweep("resume", study, timeout=120)
    one_line(r, "core-hours", "--yes")


def _remove_deep(top: Path, d: Path) -> None:
    """Bottom-up, without recursion (shutil.rmtree, and pytest's cleanup, recurse)."""
    for p in d.iterdir():
        p.unlink()
    while d != top:
        d.rmdir()
        d = d.parent


def test_a_very_deep_tree_is_one_line(study, wdsweep):
    top = study / "experiments"
    d = top
    for _ in range(1100):  # os.makedirs itself recurses
        d = d / "d"
        d.mkdir()
    (d / "x").symlink_to("/etc/hostname")
    try:
        for cmd in ("status", "repair"):
            one_line(wdsweep(cmd, study, timeout=120), "nested deeper than")
    finally:
        _remove_deep(top, d)


def test_a_plan_member_that_is_not_a_config_is_damage_repair_rebuilds(study, wdsweep):
    forge(study, None, lambda p: p["trials"][0]["members"].append({"bogus": 1}))
    r = wdsweep("status", study, timeout=120)
    one_line(r, "plans/exp-000.json", "wdsweep repair")
    r = wdsweep("repair", study, timeout=120)
    assert r.returncode == 0 and "rebuilt plans/exp-000.json" in r.stdout, r.stderr
    assert wdsweep("status", study, timeout=120).returncode == 0


def test_odd_but_checksummed_table_cells_are_no_traceback(study, wdsweep):
    res = pd.read_csv(study / "results.csv", dtype={"config_hash": str, "trial_id": str})
    res.loc[0, "experiment"] = None
    hist = pd.read_csv(study / "history.csv", dtype={"config_hash": str})
    st.write_tables(study, res, hist)
    r = wdsweep("status", study, timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_analyze_of_a_published_directory_checks_its_manifest(study, tmp_path, wdsweep):
    pub = tmp_path / "pub"
    assert wdsweep("export", study, pub, timeout=120).returncode == 0
    import gzip

    h = gzip.decompress((pub / "history.csv.gz").read_bytes()).replace(b",0.", b",0.9", 1)
    (pub / "history.csv.gz").write_bytes(gzip.compress(h))
    r = wdsweep("analyze", pub, "--out", tmp_path / "rep", timeout=300)
    one_line(r, "history.csv", "differs from what")
    assert not (tmp_path / "rep").exists()


def test_a_link_planted_in_an_old_report_is_never_written_through(study, tmp_path, wdsweep):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "rep"
    out.mkdir()
    (out / "fit.json").symlink_to(victim)
    r = wdsweep("analyze", study, "--out", out, timeout=300)
    assert r.returncode == 0, r.stderr
    assert victim.read_text() == "precious"
    assert not (out / "fit.json").is_symlink() and (out / "report.html").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep.")]


def test_the_projects_errors_survive_pickling_as_ray_sends_them():
    e = pickle.loads(pickle.dumps(ConfigError("lr", "got -1; must be > 0")))
    assert (type(e), e.key, str(e)) == (ConfigError, "lr", "lr: got -1; must be > 0")
    d = pickle.loads(pickle.dumps(st.StudyDamaged(Path("/s"), "results.csv", "torn")))
    assert isinstance(d, st.StudyDamaged) and d.key == "results.csv" and "torn" in str(d)


def test_resume_never_loads_callbacks_named_in_spec_toml(study, tmp_path, cli_env,
                                                        ray_address):
    """spec.toml is the study's, unchecked: `resume` loads only the callbacks study.json
    records (sealed), so a name planted there imports nothing -- even with the study's
    own directory on sys.path (python -m from inside it)."""
    import sys

    marker = tmp_path / "MARKER"
    (study / "evilcb.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from ray.tune import Callback\nclass Cb(Callback):\n    pass\n")
    with open(study / "spec.toml", "a") as f:
        f.write('\n[run]\ncallbacks = ["evilcb.Cb"]\n')
    state = st.read_state(study)
    state["experiments"][0]["status"] = "running"
    st.write_tables(study, pd.DataFrame(), pd.DataFrame(), state)
    r = subprocess.run([sys.executable, "-m", "sweep.cli", "resume", str(study), "--address",
                        ray_address, "--no-report"], cwd=study, env=cli_env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert not marker.exists()
