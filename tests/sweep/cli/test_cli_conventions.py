"""Issue 10: the CLI's conventions (data on stdout, messages on stderr, --json, --version,
-q, help everywhere), spec callbacks, and a non-editable install that runs the examples."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import sweep
from sweep.cli.main import PRESETS, _parser
from sweep.plan.packs import make_plan
from sweep.plan.spec import load, parse

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "examples" / "demo.toml"


def test_version_and_help_on_every_argument(wdsweep) -> None:
    r = wdsweep("--version", timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("wdsweep ") and not r.stderr
    p = _parser()
    (sub,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sp in sub.choices.items():
        for a in sp._actions:
            assert a.help, f"`wdsweep {name}` {a.dest} has no help"
    from trainer.presets import PRESETS as TRAINER_PRESETS

    assert set(PRESETS) == set(TRAINER_PRESETS)
    assert "demo" in sub.choices["train"].format_help()
    assert "preset = \"demo\"" in (ROOT / "README.md").read_text() or \
        "`demo`" in (ROOT / "README.md").read_text()


def test_dry_run_json_is_the_plan_on_stdout_and_nothing_is_written(tmp_path, wdsweep) -> None:
    study = tmp_path / "study"
    r = wdsweep("run", DEMO, "--study", study, "--dry-run", "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    want = make_plan(load(DEMO))
    assert plan["members"] == len(want.members) and len(plan["trials"]) == len(want.trials)
    got = {m["config_hash"]: m for t in plan["trials"] for m in t["members"]}
    assert set(got) == {m.config_hash() for m in want.members}
    assert {round(m["weight_decay"], 9) for m in got.values()} == \
        set(load(DEMO).grid["weight_decay"])
    assert not study.exists()

    r = wdsweep("run", DEMO, "--study", study, "--dry-run", "-q", timeout=120)
    assert r.returncode == 0 and r.stderr == "" and "config_hash" in r.stdout


def test_a_bad_callback_name_is_one_line_exit_2_and_writes_nothing(tmp_path, wdsweep) -> None:
    spec = tmp_path / "s.toml"
    for bad, said in (('["no_such_module.Thing"]', "cannot import"),
                      ('["json.JSONDecoder"]', "is not a ray.tune.Callback"),
                      ('"x"', "dotted names of Ray Tune Callback classes")):
        spec.write_text(DEMO.read_text() + f"callbacks = {bad}\n")
        r = wdsweep("run", spec, "--study", tmp_path / "study", "--dry-run", timeout=120)
        assert r.returncode == 2 and said in r.stderr and "run.callbacks" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
        assert not (tmp_path / "study").exists()


class Recorder:
    """A user's Tune callback, named in the spec: it writes what Tune hands it."""


def _recorder_class():
    from ray.tune import Callback

    class _Recorder(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            with open(os.environ["WDSWEEP_TEST_RECORD"], "a") as f:
                f.write(json.dumps({"step": result["step"], "m00": result["m00/test_acc"],
                                    "lam": trial.config["trial"]["table"]["m00"]
                                    ["weight_decay"]}) + "\n")

    return _Recorder


def test_spec_callbacks_see_every_members_metrics(ray_local, tmp_path, monkeypatch) -> None:
    global Recorder
    Recorder = _recorder_class()  # a real ray.tune.Callback, importable by its dotted name
    monkeypatch.setenv("WDSWEEP_TEST_RECORD", str(tmp_path / "record.jsonl"))
    s = parse("""
name = "cb"
preset = "tiny"
[fixed]
epochs = 2
train_size = 256
eval_every = 8
[grid]
weight_decay = [0.2]
[run]
checkpoint_every = 8
callbacks = ["tests.sweep.cli.test_cli_conventions.Recorder"]
""")
    assert sweep.run(s, tmp_path / "study")["completed"] == 1
    rec = [json.loads(x) for x in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rec] == [8, 16] and {r["lam"] for r in rec} == {0.2}


@pytest.mark.slow
def test_a_wheel_install_runs_the_packaged_examples(tmp_path) -> None:
    """`pip install .` (non-editable) into a fresh venv that reuses this venv's packages
    offline; from a directory without examples/, `wdsweep run examples/demo.toml
    --dry-run` plans the demo from the installed package."""
    wh, venv, cwd = tmp_path / "wheel", tmp_path / "venv", tmp_path / "cwd"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wh)], check=True, capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    py = venv / "bin" / "python"
    (whl,) = wh.glob("wdsweep-*.whl")
    subprocess.run([*pip, "--python", str(py), "install", "-q", "--no-deps", "--no-index",
                    str(whl)], check=True, capture_output=True, timeout=300)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    # The dependencies (torch, ray, ...) from this venv, after the wheel's own files.
    Path(site.stdout.strip(), "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([str(py), "-c", "import sweep; print(sweep.__file__)"], cwd=cwd,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith(str(venv)), r.stdout + r.stderr
    r = subprocess.run([str(venv / "bin" / "wdsweep"), "run", "examples/demo.toml", "--study",
                        "s", "--dry-run", "--json"], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["members"] == len(make_plan(load(DEMO)).members)
    assert "packaged example" in r.stderr and not (cwd / "s").exists()
