"""Issue 10: live, per-member results where Tune and TensorBoard look, and in the study
while its driver runs; a driver killed mid-sweep, then resumed, has every member once."""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import sweep
from sweep.plan.packs import make_plan
from tests.sweep._helpers import spec as tiny_spec


def spec(wds=(0.0, 0.3), epochs=4):
    """The sweep tests' tiny spec, checkpointing every 16 steps."""
    return tiny_spec(wds, epochs, ckpt=16)


def events(run_dir: Path) -> list:
    """Every event of a TensorBoard run, read with the raw TFRecord framing and
    tensorboardX's own Event protobuf (no TensorFlow, no tensorboard needed)."""
    from tensorboardX.proto.event_pb2 import Event

    out = []
    for f in sorted(run_dir.glob("events.out.tfevents.*")):
        data, i = f.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            out.append(Event.FromString(data[i + 12:i + 12 + n]))
            i += 12 + n + 4  # length, its crc, the record, its crc
    return out


def curves(run_dir: Path) -> tuple[dict[str, dict[int, float]], dict[str, object]]:
    """(tag -> {step: value}, hparams) of one TensorBoard run."""
    from google.protobuf.json_format import MessageToDict
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    scalars: dict[str, dict[int, float]] = {}
    hp: dict[str, object] = {}
    for e in events(run_dir):
        for v in e.summary.value:
            if v.metadata.plugin_data.plugin_name == "hparams":
                d = HParamsPluginData.FromString(v.metadata.plugin_data.content)
                if d.HasField("session_start_info"):
                    hp = MessageToDict(d.session_start_info)["hparams"]
            elif v.HasField("simple_value"):
                scalars.setdefault(v.tag, {})[e.step] = v.simple_value
    return scalars, hp


def test_every_member_is_its_own_curve_in_tune_and_in_tensorboard(ray_local, tmp_path):
    s = spec()
    study = tmp_path / "study"
    out = sweep.run(s, study)
    assert out["completed"] == 4
    hist = pd.read_csv(study / "history.csv", dtype={"config_hash": str})
    # The Python API's results object: the tables as DataFrames, the per-member status.
    pd.testing.assert_frame_equal(out.history, hist)
    assert len(out.results) == 4 and (out.results.status == "completed").all()
    st = out.status()
    assert len(st["members"]) == 4 and {m["status"] for m in st["members"]} == {"completed"}
    last = out.results.set_index("config_hash").last_test_acc
    assert all(m["test_acc"] == last[m["config_hash"]] for m in st["members"])
    members = {m.config_hash(): m for m in make_plan(s).members}

    # Ray Tune's own reader: every evaluation was reported (steps 8, 16, 24, 32), each
    # member's metrics under mKK/..., and the trial config names member KK.
    from ray.tune import ExperimentAnalysis

    exp = json.loads((study / "study.json").read_text())["experiments"][0]["uri"]
    ea = ExperimentAnalysis(exp)
    assert len(ea.trials) == 2
    seen = set()
    for trial in ea.trials:
        df = ea.trial_dataframes[trial.trial_id]
        assert list(df.step) == [8, 16, 24, 32]
        for key, row in trial.config["trial"]["table"].items():
            h = row["config_hash"]
            assert row["weight_decay"] == members[h].decay.weight_decay
            want = hist[hist.config_hash == h].sort_values("step").test_acc.to_numpy()
            assert list(df[f"{key}/test_acc"]) == pytest.approx(list(want), abs=0)
            seen.add(h)
    assert seen == set(members)
    cols = ea.dataframe().columns
    assert {"m00/test_acc", "m01/test_acc", "config/trial/table/m01/weight_decay"} <= set(cols)

    # TensorBoard: one run per member under STUDY/tensorboard, its λ, seed, b, B, T as
    # hparams, one test_acc curve equal to the member's history.
    runs = sorted((study / "tensorboard").iterdir())
    assert len(runs) == 4
    for run in runs:
        scalars, hp = curves(run)
        h = hp["config_hash"]
        m = members[h]
        assert hp["weight_decay"] == pytest.approx(m.decay.weight_decay)
        assert (hp["seed"], hp["batch_size"], hp["train_size"], hp["total_steps"]) == \
            (m.seed, m.batch_size, m.train_size, m.total_steps)
        want = hist[hist.config_hash == h].set_index("step").test_acc
        assert sorted(scalars["test_acc"]) == [8, 16, 24, 32]
        for step, v in scalars["test_acc"].items():
            assert v == pytest.approx(want[step], abs=1e-6)  # float32 in the event file
    lams = {round(curves(r)[1]["weight_decay"], 9) for r in runs}
    assert lams == {0.0, 0.3}


def _rows(study: Path) -> int:
    try:
        return len(pd.read_csv(study / "results.csv"))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


@pytest.mark.slow
def test_rows_land_while_the_driver_runs_and_a_sigkill_then_resume_keeps_each_once(
        ray_address, tmp_path, cli_env):
    s = spec(wds=(0.0, 0.1, 0.3), epochs=150)  # 3 trials on 2 CPUs: one waits
    spec_file, study = tmp_path / "s.toml", tmp_path / "study"
    spec_file.write_text(s.text)
    cli = [sys.executable, "-m", "sweep.cli"]
    p = subprocess.Popen([*cli, "run", spec_file, "--study", study, "--address", ray_address,
                          "--no-report"], env=cli_env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while _rows(study) == 0 and p.poll() is None and time.time() - t0 < 300:
        time.sleep(0.2)
    assert p.poll() is None, "rows must appear while the driver still runs: " + \
        p.communicate()[1][-3000:]
    n = _rows(study)
    assert 0 < n < 6 and n % 2 == 0  # whole packs, as their trials complete

    # status while it runs: per member, completed rows and running ones with progress.
    r = subprocess.run([*cli, "status", study], env=cli_env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    print("\n" + r.stdout)  # the screenshot-as-text of a running sweep
    r = subprocess.run([*cli, "status", study, "--json"], env=cli_env, capture_output=True,
                       text=True, timeout=120)
    st = json.loads(r.stdout)
    assert st["driver_alive"] and len(st["members"]) == 6
    assert {m["status"] for m in st["members"]} <= {"completed", "running", "pending"}
    assert sum(m["status"] == "completed" for m in st["members"]) >= n

    # analyze on the running study: its completed members, saying how many are pending.
    r = subprocess.run([*cli, "analyze", study, "--out", tmp_path / "report", "--json"],
                       env=cli_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert a["driver_running"] and a["completed_members"] >= n and a["pending_members"] > 0
    assert "pending" in r.stderr and (tmp_path / "report" / "report.html").exists()

    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    kept = pd.read_csv(study / "results.csv", dtype={"config_hash": str})
    assert (kept.status == "completed").all() and kept.config_hash.is_unique

    r = subprocess.run([*cli, "resume", study, "--address", ray_address, "--no-report"],
                       env=cli_env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = pd.read_csv(study / "results.csv", dtype={"config_hash": str})
    want = {m.config_hash() for m in make_plan(s).members}
    assert len(res) == 6 and set(res.config_hash) == want and (res.status == "completed").all()
    # The rows written before the kill are kept as they were, not run again.
    pd.testing.assert_frame_equal(res.set_index("config_hash").loc[kept.config_hash].reset_index(),
                                  kept)
    hist = pd.read_csv(study / "history.csv", dtype={"config_hash": str})
    steps = make_plan(s).members[0].total_steps
    per = hist.groupby("config_hash").step.apply(list)
    assert set(per.index) == want and all(v == list(range(8, steps + 1, 8)) for v in per)
