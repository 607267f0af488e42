"""Issue 22: trackers see members, not packs. A real MLflow (SQLite store under tmp_path)
reads back one run per member, nested under its pack's run, with its λ, seed, b, B, T,
... as params and its metrics under their plain names; set-up errors are one line that
leaves the study as it was; a tracker failing mid-sweep is a warning, not a failure."""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import struct
from pathlib import Path

import pandas as pd
import pytest

import sweep
from sweep.plan.packs import make_plan
from sweep.plan.spec import Spec, SpecError
from tests.sweep._helpers import spec as tiny_spec

mlflow = pytest.importorskip("mlflow", reason="mlflow is a dev dependency (pip install "
                             "-e .[dev])")
from mlflow.tracking import MlflowClient  # noqa: E402

from sweep.runner.callbacks import load  # noqa: E402
from sweep.runner.trackers import MLflowTracker, WandbTracker  # noqa: E402

TRACKER = "sweep.runner.trackers.MLflowTracker"
def spec(name="mlf", wds=(0.05, 0.2), epochs=4, run="") -> Spec:
    """The sweep tests' tiny spec (2 λ × 2 seeds in packs of 2, an evaluation every 8 steps)."""
    return tiny_spec(wds, epochs, name=name, run=run)


def runs(uri: str, experiment: str) -> tuple[dict, dict]:
    """(config hash -> member run, trial key -> parent run) of an MLflow experiment."""
    c = MlflowClient(tracking_uri=uri)
    e = c.get_experiment_by_name(experiment)
    assert e is not None, f"no MLflow experiment {experiment!r} at {uri}"
    members, parents = {}, {}
    for r in c.search_runs([e.experiment_id], max_results=1000):
        t = r.data.tags
        if t["wdsweep.kind"] == "member":
            assert t["wdsweep.config_hash"] not in members, "one run per member"
            members[t["wdsweep.config_hash"]] = r
        else:
            parents[t["wdsweep.trial"]] = r
    return members, parents


def check_members(uri: str, experiment: str, study: Path, s: Spec) -> dict:
    """Every member of `s` is one FINISHED MLflow run under its trial's parent run, with
    its params and its history.csv metrics at the training steps."""
    c = MlflowClient(tracking_uri=uri)
    members, parents = runs(uri, experiment)
    want = {m.config_hash(): m for m in make_plan(s).members}
    assert set(members) == set(want)
    hist = pd.read_csv(study / "history.csv", dtype={"config_hash": str})
    res = pd.read_csv(study / "results.csv", dtype={"config_hash": str, "trial_id": str})
    for h, r in members.items():
        m, p = want[h], r.data.params
        assert r.info.status == "FINISHED"
        assert float(p["weight_decay"]) == pytest.approx(m.decay.weight_decay)
        assert float(p["decay_per_step"]) == pytest.approx(m.decay.decay_per_step)
        assert float(p["lambda_norm"]) == pytest.approx(m.decay.lambda_norm)
        assert (int(p["seed"]), int(p["batch_size"]), int(p["train_size"]),
                int(p["total_steps"]), float(p["epochs_T"]), float(p["lr"])) == \
            (m.seed, m.batch_size, m.train_size, m.total_steps, m.epochs_T, m.lr)
        assert p["config_hash"] == h and p["task"] == "binary_add"
        assert (int(p["width"]), p["batch_norm"]) == (m.width, str(m.batch_norm))
        # plain metric names, no mKK/ indirection, step = the training step
        assert {"test_acc", "train_acc", "test_loss", "weight_norm"} <= set(r.data.metrics)
        assert not any("/" in k for k in r.data.metrics)
        got = {x.step: x.value for x in c.get_metric_history(r.info.run_id, "test_acc")}
        mine = hist[hist.config_hash == h].set_index("step").test_acc
        assert sorted(got) == sorted(mine.index) == [8, 16, 24, 32]
        assert all(got[k] == pytest.approx(mine[k], abs=1e-9) for k in got)
        # nested under the parent run of its pack's trial
        trial = res.set_index("config_hash").trial_id[h]
        parent = parents[trial]
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert r.data.tags["wdsweep.trial"] == trial
    for key, parent in parents.items():
        kids = [r for r in members.values()
                if r.data.tags["mlflow.parentRunId"] == parent.info.run_id]
        assert len(kids) == 2 and parent.data.params["members"] == "2"
        assert parent.info.run_name == f"trial-{key}" and parent.info.status == "FINISHED"
        assert "test_acc_mean" in parent.data.metrics
        assert len(parent.data.params) < 20  # the pack's shared params, no member table blob
    return members


def test_mlflow_one_run_per_member_nested_under_its_pack(ray_local, tmp_path, monkeypatch):
    """`callbacks = ["mlflow"]` and nothing else: the study's own SQLite store, an
    experiment named after the study."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    s = dataclasses.replace(spec(), callbacks=("mlflow",))  # (see the xfail below)
    study = tmp_path / "study"
    out = sweep.run(s, study)
    assert out["completed"] == 4
    db = study / "mlflow" / "mlflow.db"
    assert db.is_file()
    uri = f"sqlite:///{db}"
    check_members(uri, "mlf", study, s)
    e = MlflowClient(tracking_uri=uri).get_experiment_by_name("mlf")
    assert e.artifact_location == (study / "mlflow" / "artifacts").resolve().as_uri()
    assert json.loads((study / "study.json").read_text())["callbacks"] == ["mlflow"]


def test_mlflow_an_instance_honours_the_environment_and_a_resumed_member_continues_its_run(
        ray_local, tmp_path, monkeypatch, fault_dir):
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "chosen")
    s = spec(name="mlf2", wds=(0.07, 0.3))
    victim = make_plan(s).trials[0].members[0]
    fault = fault_dir / victim.config_hash()
    fault.write_text("24")  # its trial raises at step 24 (checkpointed at 16)
    study = tmp_path / "study"
    try:
        out = sweep.run(s, study, callbacks=[MLflowTracker()])
        assert out["errored"] == 2 and out["completed"] == 2
        members, _ = runs(uri, "chosen")
        assert members[victim.config_hash()].info.status == "FAILED"
    finally:
        fault.unlink()
    out = sweep.resume(study, retry_errored=True, callbacks=[MLflowTracker()])
    assert out["resumed"] == 1 and out["completed"] == 2
    check_members(uri, "chosen", study, s)  # the same 4 runs: 8, 16 then 24, 32
    assert not (study / "mlflow").exists()


def test_the_short_name_and_dotted_names_load(monkeypatch):
    (a,) = load(["mlflow"])
    (b,) = load([TRACKER])
    assert type(a) is type(b) is MLflowTracker
    if WANDB:
        assert [type(c) for c in load(["wandb"])] == [WandbTracker]
    with pytest.raises(SpecError) as e:
        load(["wandbx"])
    assert e.value.key == "run.callbacks" and "allowed: mlflow" in str(e.value)


def test_the_spec_accepts_the_short_name():
    assert spec(run='callbacks = ["mlflow"]').callbacks == ("mlflow",)
    with pytest.raises(SpecError, match="run.callbacks.*mlflow, wandb"):
        spec(run='callbacks = ["mlfow"]')


def test_mlflow_missing_is_one_line_naming_run_callbacks(tmp_path, wdsweep, cli_env):
    """Without mlflow installed (an import that fails, first on the path)."""
    fake = tmp_path / "no_mlflow" / "mlflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'mlflow'\")\n")
    env = dict(cli_env, PYTHONPATH=f"{fake.parent}:{cli_env['PYTHONPATH']}")
    f = tmp_path / "s.toml"
    f.write_text(spec(run=f'callbacks = ["{TRACKER}"]').text)
    r = wdsweep("run", f, "--study", tmp_path / "study", "--dry-run", env=env, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "run.callbacks" in r.stderr
    assert "mlflow is not installed" in r.stderr and "pip install mlflow" in r.stderr
    assert not (tmp_path / "study").exists()


def test_a_uri_mlflow_refuses_is_one_line_and_leaves_no_interrupted_study(
        ray_address, tmp_path, wdsweep, cli_env):
    """MLflow 3 refuses the old file store: exit 2 before any trial, nothing recorded; the
    same study then runs with a good URI (no `resume` asked for)."""
    f, study = tmp_path / "s.toml", tmp_path / "study"
    f.write_text(spec(name="mlf3", wds=(0.11,), epochs=1,
                      run=f'callbacks = ["{TRACKER}"]').text)
    env = dict(cli_env, MLFLOW_TRACKING_URI=f"file:{tmp_path / 'mlruns'}")
    r = wdsweep("run", f, "--study", study, "--address", ray_address, "--no-report", env=env,
                timeout=300)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "error: run.callbacks: mlflow cannot use the tracking URI file:" in last, r.stderr
    assert "Traceback" not in r.stderr
    assert not (study / "study.json").exists()
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'good.db'}"
    r = wdsweep("run", f, "--study", study, "--address", ray_address, "--no-report", env=env,
                timeout=300)
    assert r.returncode == 0, r.stderr
    members, _ = runs(env["MLFLOW_TRACKING_URI"], "mlf3")
    assert len(members) == 2


class _Broken(MLflowTracker):
    """A real MLflow store that breaks once the sweep runs: its metrics table is gone."""

    def bind(self, study, name, study_id, experiment):
        super().bind(study, name, study_id, experiment)
        with sqlite3.connect(self.uri.removeprefix("sqlite:///")) as db:
            db.execute("DROP TABLE metrics")


def test_a_tracker_failing_mid_sweep_is_one_warning_and_the_sweep_completes(
        ray_local, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'broken.db'}")
    s = spec(name="mlf4", wds=(0.13,), epochs=2)
    with caplog.at_level(logging.WARNING, logger="sweep.runner.trackers"):
        out = sweep.run(s, tmp_path / "study", callbacks=[_Broken()])
    assert out["completed"] == 2 and out["errored"] == 0
    warned = [r for r in caplog.records if r.name == "sweep.runner.trackers"]
    assert len(warned) == 1, [r.getMessage() for r in warned]
    msg = warned[0].getMessage()
    assert "run.callbacks: mlflow failed" in msg and "the sweep goes on" in msg
    assert "\n" not in msg


# -- W&B, offline -----------------------------------------------------------------------
try:
    import wandb  # noqa: F401
    from wandb.proto import wandb_internal_pb2
    WANDB = True
except ImportError:
    WANDB = False


def wandb_records(path: Path):
    """The records of an offline W&B run file (run-ID.wandb): W&B's 7-byte header, then
    LevelDB's log format (32 KiB blocks of chunks: crc32c, length, type) of Record
    protobufs."""
    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    i, buf = 7, b""
    while i + 7 <= len(data):
        left = block - i % block
        if left < 7:  # a block's tail too short for a chunk header: padding
            i += left
            continue
        _, n, kind = struct.unpack("<IHB", data[i:i + 7])
        if kind == 0 and n == 0:  # preallocated zeros
            i += left
            continue
        buf += data[i + 7:i + 7 + n]
        i += 7 + n
        if kind in (1, 4):  # FULL, LAST: a whole record
            r = wandb_internal_pb2.Record()
            r.ParseFromString(buf)
            buf = b""
            yield r


def wandb_runs(root: Path) -> dict[str, dict]:
    """config_hash -> {group, name, config, history {step: {metric: value}}, exit} of
    every offline run under root/wandb."""
    out = {}
    for f in sorted(root.glob("wandb/offline-run-*/run-*.wandb")):
        run: dict = {"history": {}}
        for r in wandb_records(f):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                run.update(group=r.run.run_group, name=r.run.display_name,
                           project=r.run.project, config={
                               c.key or "/".join(c.nested_key): json.loads(c.value_json)
                               for c in r.run.config.update})
            elif kind == "history":
                row = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                       for i in r.history.item}
                run["history"][row.pop("_step")] = row
            elif kind == "exit":
                run["exit"] = r.exit.exit_code
        h = run["config"]["config_hash"]
        assert h not in out, "one run per member"
        out[h] = run
    return out


@pytest.mark.skipif(not WANDB, reason="wandb is a dev dependency (pip install -e .[dev])")
def test_wandb_offline_one_run_per_member_grouped_by_its_pack(ray_local, tmp_path,
                                                               monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    for k in ("WANDB_DIR", "WANDB_PROJECT"):
        monkeypatch.delenv(k, raising=False)
    s = spec(name="wb", wds=(0.04, 0.4))
    study = tmp_path / "study"
    out = sweep.run(s, study, callbacks=[WandbTracker()])
    assert out["completed"] == 4
    got = wandb_runs(study)
    want = {m.config_hash(): m for m in make_plan(s).members}
    assert set(got) == set(want)
    hist = pd.read_csv(study / "history.csv", dtype={"config_hash": str})
    res = pd.read_csv(study / "results.csv", dtype={"config_hash": str, "trial_id": str})
    for h, run in got.items():
        m, c = want[h], run["config"]
        assert run["project"] == "wb" and run["exit"] == 0
        assert run["group"] == f"trial-{res.set_index('config_hash').trial_id[h]}"
        assert c["weight_decay"] == pytest.approx(m.decay.weight_decay)
        assert (c["seed"], c["batch_size"], c["train_size"], c["total_steps"]) == \
            (m.seed, m.batch_size, m.train_size, m.total_steps)
        mine = hist[hist.config_hash == h].set_index("step").test_acc
        assert sorted(run["history"]) == [8, 16, 24, 32]
        for step, row in run["history"].items():
            assert row["test_acc"] == pytest.approx(mine[step], abs=1e-9)
            assert "train_acc" in row and not any("/" in k for k in row)
    # extending the study: W&B's own links in STUDY/wandb are no reason to refuse it
    assert (study / "wandb" / "latest-run").is_symlink()
    out = sweep.run(spec(name="wb", wds=(0.04, 0.4, 1.5)), study, callbacks=[WandbTracker()])
    assert out["completed"] == 2 and len(wandb_runs(study)) == 6


@pytest.mark.skipif(not WANDB, reason="wandb is a dev dependency (pip install -e .[dev])")
def test_wandb_online_without_a_login_is_one_line_before_any_trial(ray_local, tmp_path,
                                                                    monkeypatch):
    for k in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no saved W&B settings
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    study = tmp_path / "study"
    with pytest.raises(SpecError) as e:
        sweep.run(spec(name="wb2", wds=(0.12,), epochs=1), study, callbacks=[WandbTracker()])
    assert e.value.key == "run.callbacks" and "WANDB_MODE=offline" in str(e.value)
    assert not (study / "study.json").exists()
