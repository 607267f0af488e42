"""`wdsweep train`: one run without Ray."""

import json

import pandas as pd
import pytest

from trainer.rundir import METRIC_COLUMNS

FAST = ["--preset", "tiny", "--set", "epochs=3", "--set", "threads=1"]


def test_train_writes_tidy_metrics_and_the_resolved_config(tmp_path, wdsweep):
    out = tmp_path / "run"
    r = wdsweep("train", *FAST, "--set", "weight_decay=0.01,0.1", "--set", "seed=0,1",
                "--out", out, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "ms/step" in r.stderr and "train acc [" in r.stderr  # progress: stderr
    assert r.stdout.strip() == str(out / "metrics.csv")  # data: the table written
    df = pd.read_csv(out / "metrics.csv")
    assert list(df.columns) == list(METRIC_COLUMNS)
    assert sorted(df.member.unique()) == [0, 1, 2, 3] and len(df) == 4 * 3  # 3 epoch evals
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["status"] == "done" and len(cfg["members"]) == 4
    m = cfg["members"][0]
    assert {"weight_decay", "decay_per_step", "lambda_norm"} <= set(m)
    assert m["decay_per_step"] == pytest.approx(m["lr"] * m["weight_decay"])
    assert {"torch", "numpy", "python", "git_commit"} <= set(cfg["versions"])


@pytest.mark.parametrize("args, needle", [
    (["--set", "widthh=3"], "widthh: unknown key"),
    (["--set", "weight_decay=-1"], "weight_decay"),
    (["--set", "weight_decay=nan"], "weight_decay"),
    (["--set", "weight_decay=0.1", "--set", "lambda_norm=0.1"], "one decay unit"),
    (["--set", "batch_size=100000"], "batch_size"),
    (["--set", "steps=0"], "steps"),
    (["--preset", "nope"], "preset"),
    (["--set", "task=mnist"], "task"),
    (["--set", "device=tpu"], "device"),
])
def test_bad_input_is_one_line_exit_2_and_no_output_directory(tmp_path, wdsweep, args,
                                                              needle):
    out = tmp_path / "run"
    r = wdsweep("train", *args, "--out", out, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert any(w in lines[0] for w in ("allowed", "must be", "expected")), r.stderr
    assert not out.exists()


def test_asking_for_cuda_without_a_gpu_is_bad_input_before_anything_is_written(tmp_path,
                                                                             wdsweep):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "run"
    r = wdsweep("train", *FAST, "--set", "device=cuda", "--out", out, timeout=120)
    assert r.returncode == 2 and "device: cuda requested" in r.stderr
    assert not out.exists()


def test_a_directory_holding_another_run_is_refused_unchanged(tmp_path, wdsweep):
    out = tmp_path / "run"
    assert wdsweep("train", *FAST, "--out", out, timeout=300).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    r = wdsweep("train", *FAST, "--set", "seed=5", "--out", out, timeout=120)
    assert r.returncode == 2 and "different run" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
