"""Issue 22 (4, 8): T is epochs wherever a person reads it (the plan, status, TensorBoard
run names; steps are "steps"), `run --set KEY=VALUE`, "did you mean" for a misspelled key,
`analyze` without `--out` on a study, `sweep.parse` of a path."""

from __future__ import annotations

import datetime as dt
import json
import math
import tomllib
from pathlib import Path

import pytest

import sweep
from sweep.cli import main as cli
from sweep.cli.overrides import apply, dumps
from sweep.plan.packs import make_plan
from sweep.plan.spec import SpecError, parse

SPEC = """
name = "p"
preset = "tiny"
[fixed]
epochs = 4
train_size = 256
batch_size = 32
eval_every = 8
[grid]
weight_decay = [0.0, 0.1]
seed = [0, 1]
[run]
pack = 2
checkpoint_every = 8
max_failures = 0
"""


@pytest.fixture
def spec_file(tmp_path) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(SPEC)
    return p


def run_cli(capsys, *args) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_the_plan_says_T_in_epochs_and_steps_as_steps(spec_file, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "run", spec_file, "--study", tmp_path / "st", "--dry-run")
    assert rc == 0, err
    lines = out.splitlines()
    assert "T = 4 epochs (32 steps) per member" in lines[0]
    head = lines[1].split()
    assert head == ["trial", "weight_decay", "seed", "b", "B", "T", "steps", "config_hash"]
    rows = [ln.split() for ln in lines[2:6]]
    assert {r[head.index("T")] for r in rows} == {"4"}
    assert {r[head.index("steps")] for r in rows} == {"32"}
    assert lines[6].startswith("T: epochs")
    # --json keeps total_steps (data) and adds epochs
    rc, out, err = run_cli(capsys, "run", spec_file, "--study", tmp_path / "st", "--dry-run",
                           "--json", "--set", "fixed.epochs=", "--set", "fixed.steps=20")
    m = json.loads(out)["trials"][0]["members"][0]
    assert (m["epochs"], m["total_steps"]) == (2.5, 20)
    assert not (tmp_path / "st").exists()
    plan = make_plan(parse(SPEC))  # with everything done: nothing to say about T
    done = make_plan(parse(SPEC), {m.config_hash() for m in plan.members})
    assert "0 trials to run with 0 members, 0 member-steps" in done.summary(1)


def test_set_overrides_the_spec_before_it_is_checked(spec_file, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "run", spec_file, "--study", tmp_path / "st", "--dry-run",
                           "--json", "--set", "fixed.epochs=2", "--set", "run.pack=1",
                           "--set", "grid.seed=[0, 1, 2]", "--set", "name=renamed")
    assert rc == 0, err
    plan = json.loads(out)
    assert len(plan["trials"]) == 6 and plan["to_run"] == 6  # 2 λ x 3 seeds, packs of 1
    assert {m["epochs"] for t in plan["trials"] for m in t["members"]} == {2.0}
    assert {m["seed"] for t in plan["trials"] for m in t["members"]} == {0, 1, 2}


@pytest.mark.parametrize("setting, said", [
    ("run.pakc=4", "--set run.pakc: unknown key (did you mean run.pack?)"),
    ("fixd.lr=0.01", "--set fixd.lr: unknown table 'fixd' (did you mean fixed.lr?)"),
    ("fixed.lrr=0.01", "--set fixed.lrr: unknown trainer key (did you mean fixed.lr?)"),
    ("lr=0.01", "--set lr: unknown key (did you mean fixed.lr?)"),
    ("run.pack", "--set: got 'run.pack'; allowed: KEY=VALUE"),
    ("fixed.lr=fast", "fixed.lr: got 'fast'"),  # the spec's own check, naming the field
    ("run.pack=0", "run.pack: got 0; must be an integer >= 1"),
    ("grid.weight_decay=[0.1, 0.1]", "grid.weight_decay: got [0.1, 0.1]; values must be "
                                     "distinct"),
])
def test_a_bad_set_is_one_line_naming_the_key_exit_2_nothing_written(
        spec_file, tmp_path, capsys, setting, said):
    rc, out, err = run_cli(capsys, "run", spec_file, "--study", tmp_path / "st", "--set",
                           setting)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and f"wdsweep run: error: {said}" in err, err
    assert not (tmp_path / "st").exists()


def test_an_unknown_spec_key_suggests_the_nearest_one():
    for text, key, near in (
            (SPEC.replace("pack = 2", "pakc = 2"), "run.pakc", "run.pack"),
            (SPEC + "[resources]\ncpu_per_trial = 1\n", "resources.cpu_per_trial",
             "resources.cpus_per_trial"),
            (SPEC.replace("[grid]", "[gird]"), "gird", "grid")):
        with pytest.raises(SpecError) as e:
            parse(text)
        assert e.value.key == key and f"(did you mean {near}?)" in str(e.value), str(e.value)
    with pytest.raises(SpecError) as e:
        parse(SPEC.replace("pack = 2", "zzzzzz = 2"))
    assert "did you mean" not in str(e.value) and "allowed: pack" in str(e.value)


def test_overrides_write_toml_that_reads_back_the_same():
    raw = {"name": "x", "n": 3, "f": 1e-05, "big": 1e300, "inf": math.inf, "ok": True,
           "s": 'quote " back \\ nl \n tab \t del \x7f λ', "when": dt.date(2024, 1, 2),
           "grid": {"model_args.batch_norm": [False, True],
                    "weight_decay": {"log": [0.0001, 1.0, 9]}, "a b": [[1, 2], ["x"]]},
           "run": {}, "refine": {"range": [1e-4, 10], "seeds": [0, 1]}}
    assert tomllib.loads(dumps(raw)) == raw
    nan = tomllib.loads(dumps({"v": math.nan}))["v"]
    assert math.isnan(nan)
    text = apply(SPEC, ["grid.model_args.batch_norm=[false, true]", "fixed.precision=bf16",
                        "run.storage=/mnt/nfs/runs", "fixed.eval_every="])
    raw = tomllib.loads(text)
    assert raw["grid"]["model_args.batch_norm"] == [False, True]
    assert raw["fixed"]["precision"] == "bf16" and "eval_every" not in raw["fixed"]
    assert raw["run"]["storage"] == "/mnt/nfs/runs" and raw["run"]["pack"] == 2


def test_sweep_parse_takes_text_a_path_or_a_str_naming_a_toml_file(spec_file, tmp_path,
                                                                   monkeypatch):
    by_text = sweep.parse(SPEC)
    for given in (spec_file, str(spec_file)):
        s = sweep.parse(given)
        assert (s.name, s.grid, s.fixed) == (by_text.name, by_text.grid, by_text.fixed)
    monkeypatch.chdir(tmp_path)
    assert sweep.parse("s.toml").name == "p"  # relative to the current directory
    with pytest.raises(SpecError) as e:
        sweep.parse("missing.toml")
    assert e.value.key == "spec" and "no file 'missing.toml'" in str(e.value)
    assert sweep.parse('name = "x" # notes.toml').name == "x"  # a text is never a path
    assert sweep.parse('name = "x.toml"').name == "x.toml"
    with pytest.raises(SpecError) as e:
        sweep.parse(123)  # type: ignore[arg-type]
    assert e.value.key == "spec"
    assert sweep.run.__doc__ and "dry_run" in sweep.run.__doc__ and sweep.parse.__doc__
    assert all(getattr(sweep, n).__doc__ for n in ("load", "resume", "status", "parse"))


def test_status_and_tensorboard_say_T_in_epochs_and_analyze_writes_study_report(
        ray_local, tmp_path, wdsweep):
    study = tmp_path / "study"
    out = sweep.run(parse(SPEC), study)
    assert out["completed"] == 4
    r = wdsweep("status", study, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    (head,) = [ln.split() for ln in lines if ln.split()[:1] == ["trial"]]
    assert head[5:8] == ["T", "status", "steps"]
    rows = [ln.split() for ln in lines if "completed" in ln.split()]
    assert len(rows) == 4 and {(x[5], x[7]) for x in rows} == {("4", "32/32")}
    st = json.loads(wdsweep("status", study, "--json", timeout=120).stdout)
    assert {(m["epochs"], m["total_steps"]) for m in st["members"]} == {(4.0, 32)}
    runs = sorted(p.name for p in (study / "tensorboard").iterdir())
    assert len(runs) == 4 and all("-B256-T4-" in n for n in runs), runs

    r = wdsweep("analyze", study, "--no-figures", timeout=600)  # no --out: STUDY/report
    assert r.returncode == 0, r.stderr
    assert (study / "report" / "report.html").is_file()
    assert r.stdout.strip() == f"wrote {study / 'report' / 'report.html'}"
    r = wdsweep("analyze", study / "results.csv", timeout=120)  # a table needs --out
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "--out" in r.stderr
