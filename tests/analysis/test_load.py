"""Reading the three input kinds into the canonical table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import load
from tests.analysis.synth import make_history, small_study, write_study

ROOT = Path(__file__).resolve().parents[2]


def _tune_dir(root: Path) -> Path:
    """A Ray Tune experiment laid out as Ray 2.x writes it, written by hand (no ray)."""
    exp = root / "exp"
    exp.mkdir()
    (exp / "experiment_state-2025.json").write_text("{}")
    (exp / "tuner.pkl").write_bytes(b"\x80")
    for i, (wd, seed, epochs) in enumerate([(0.1, 0, 10), (0.3, 0, 10), (0.1, 1, 40),
                                            (0.3, 1, 40), (1.0, 0, 40)]):
        t = exp / f"fn_ab12c_{i:05d}_{i}_epochs={epochs},seed={seed},weight_decay={wd}"
        t.mkdir()
        cfg = {"lr": 1e-3, "batch_size": 64, "train_size": 5000, "epochs": epochs,
               "seed": seed, "weight_decay": wd, "train_digits": [2, 4]}
        (t / "params.json").write_text(json.dumps(cfg))
        rows = [{"test_acc": 0.1 * k * wd, "train_acc": 0.1 * k, "step": 100 * k,
                 "training_iteration": k, "trial_id": f"ab12c_{i:05d}", "done": False,
                 "time_total_s": 0.1 * k, "hostname": "h", "config/seed": seed}
                for k in range(1, 6)]
        if i == 3:  # this trial only has result.json, with the config nested in each row
            (t / "result.json").write_text("".join(json.dumps({**r, "config": cfg}) + "\n"
                                                   for r in rows))
        else:
            pd.DataFrame(rows).to_csv(t / "progress.csv", index=False)
        if i == 4:
            (t / "error.txt").write_text("Traceback: boom")
    return exp


def test_reads_a_plain_tune_experiment_without_ray(tmp_path: Path) -> None:
    f = load(_tune_dir(tmp_path))
    h = f.hist
    assert f.kind == "tune" and f.curves
    assert h["run"].nunique() == 4  # the errored trial is left out, with a warning
    assert any("did not complete (1 errored)" in w for w in f.warnings)
    assert len(h) == 20 and h["step"].max() == 500
    assert f.keys == ["T"]  # seed, λ, Tune's bookkeeping and constants are not cell keys
    assert set(h["cell"]) == {"T=10", "T=40"}
    assert np.allclose(h["decay_per_step"], 1e-3 * h["weight_decay"])
    assert np.allclose(h["lambda_norm"], h["decay_per_step"] / np.sqrt(64 / (5000 * h["T"])))


def test_analysis_never_imports_ray_or_torch(tmp_path: Path) -> None:
    """It may use the trainer's torch-free parts (units, schema), nothing that needs torch."""
    exp = _tune_dir(tmp_path)
    code = ("import sys, analysis, analysis.cli; analysis.analyze(sys.argv[1]); "
            "bad = [m for m in ('ray', 'torch', 'trainer.loop', 'trainer.model', "
            "'trainer.rundir') if m in sys.modules]; "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code, str(exp)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_the_config_keys_and_units_are_the_trainers() -> None:
    """One home for each fact: the analysis' config keys and decay units are trainer.config's
    (the hand copy had drifted: a phantom train_frac, no model or cuda_graph)."""
    from analysis._schema import DECAY_UNITS, KNOWN_CONFIG, NOT_CELL
    from trainer.config import DECAY_KEYS, DERIVED_KEYS, EXECUTION_ONLY, FIELDS

    assert DECAY_UNITS == DECAY_KEYS
    assert KNOWN_CONFIG == set(FIELDS) | set(DERIVED_KEYS)
    assert {"model", "cuda_graph", "lr_schedule", "precision"} <= KNOWN_CONFIG
    assert "train_frac" not in KNOWN_CONFIG
    assert set(EXECUTION_ONLY) <= NOT_CELL  # how a run was executed never splits a cell


def test_a_packed_trial_is_one_run_per_member_key(tmp_path: Path) -> None:
    """A wdsweep trial reports member k under trainer.schema.member_key(k, metric) and
    names it in its config's member table; only keys that codec writes are a member's
    (from member 100 on the key has three digits)."""
    from analysis._load import read
    from trainer.schema import member_id, member_key

    t = tmp_path / "exp" / "train_trial_00000"
    t.mkdir(parents=True)
    ks = (0, 1, 100)
    table = {member_id(k): {"weight_decay": 0.1 * (k + 1), "seed": k, "config_hash": f"h{k}"}
             for k in ks}
    (t / "params.json").write_text(json.dumps({"trial": {"key": "p0", "table": table}}))
    rows = [{"eval_step": 10 * s, "finished": s == 3, "test_acc_mean": 0.5,
             **{member_key(k, "test_acc"): k + s / 10 for k in ks},
             "m1/test_acc": -1.0, "m001/test_acc": -1.0, "m01/x-y": -1.0}  # not the codec's
            for s in (1, 2, 3)]
    pd.DataFrame(rows).to_csv(t / "progress.csv", index=False)
    f = read(tmp_path / "exp").frame
    assert sorted(f["run"].unique()) == ["h0", "h1", "h100"]
    assert set(f["status"]) == {"completed"}
    for k in ks:
        mine = f[f["run"] == f"h{k}"]
        assert mine["step"].tolist() == [10, 20, 30]
        assert mine["test_acc"].tolist() == [k + 0.1, k + 0.2, k + 0.3]
        assert (mine["seed"] == k).all()
    assert not {"m1/test_acc", "m001/test_acc", "x-y"} & set(f.columns)


def test_reads_a_study_joining_history_to_results(tmp_path: Path) -> None:
    res = small_study()
    res = pd.concat([res, res.iloc[:2].assign(config_hash=["e1", "e2"], status="errored",
                                              final_test_acc=np.nan)], ignore_index=True)
    res["experiment"] = ["exp1"] * 20 + ["exp2"] * (len(res) - 20)  # bookkeeping, not a cell key
    hist = make_history(res[res["status"] == "completed"], n_evals=10)
    f = load(write_study(tmp_path / "study", res, hist))
    assert f.kind == "study" and f.curves and f.unit == "weight_decay"
    assert f.hist["run"].nunique() == len(res) - 2
    assert len(f.hist) == 10 * (len(res) - 2)
    assert f.keys == ["batch_size", "T"]
    assert "final_test_acc" not in f.hist  # per-evaluation metrics come from history.csv


def test_csv_and_parquet_tables_load_alike(tmp_path: Path) -> None:
    df = small_study()
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    a, b = load(tmp_path / "t.csv").hist, load(tmp_path / "t.parquet").hist
    cols = ["run", "cell", "lam", "seed", "T", "test_acc"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert not load(tmp_path / "t.csv").curves


def test_other_decay_units_and_steps_convert(tmp_path: Path) -> None:
    df = pd.DataFrame(dict(lambda_norm=[0.01, 0.04, 0.16], lr=1e-3, batch_size=64,
                           train_size=5000, steps=7800, test_acc=[0.1, 0.9, 0.2]))
    h = load(df).hist
    assert h["T"].tolist() == [100.0] * 3  # steps / floor(B / b)
    k = np.sqrt(64 / (5000 * 100))
    assert np.allclose(h["decay_per_step"], h["lambda_norm"] * k)
    assert np.allclose(h["weight_decay"], h["lambda_norm"] * k / 1e-3)
    assert load(df.drop(columns="lr")).unit == "decay_per_step"


def test_duplicate_configs_without_seed_are_taken_as_seeds() -> None:
    df = pd.DataFrame(dict(weight_decay=[0.1, 0.1, 0.3, 0.3], test_acc=[0.5, 0.6, 0.7, 0.8]))
    f = load(df)
    assert sorted(f.hist["seed"]) == [0, 0, 1, 1]
    assert f.hist["run"].nunique() == 4
    assert any("taken as seeds" in w for w in f.warnings)


def test_history_table_keeps_unknown_metrics_out_of_the_config() -> None:
    df = pd.DataFrame(dict(weight_decay=0.1, seed=0, step=[1, 2, 3], test_acc=[0.1, 0.2, 0.3],
                           grad_norm=[1.0, 2.0, 3.0], width=[256] * 3))
    f = load(df)
    assert f.hist["run"].nunique() == 1 and f.curves


@pytest.mark.parametrize("name", ["x.json", "missing.csv"])
def test_unreadable_paths_raise_a_one_line_error(tmp_path: Path, name: str) -> None:
    from analysis import AnalysisError

    if name.endswith(".json"):
        (tmp_path / name).write_text("{}")
    with pytest.raises(AnalysisError) as e:
        load(tmp_path / name)
    assert "\n" not in str(e.value)


def test_fp32_and_bf16_runs_are_separate_cells() -> None:
    """The trainer writes `precision` only when it is not the default (fp32): a study
    that mixes both is two cells, fp32 named as such, never one cell with twice the seeds."""
    df = pd.DataFrame(dict(weight_decay=[0.1, 0.3] * 2, seed=0, test_acc=[0.5, 0.6, 0.7, 0.8],
                           precision=[None, None, "bf16", "bf16"],
                           config_hash=["a", "b", "c", "d"]))
    f = load(df)
    assert f.keys == ["precision"]
    assert sorted(f.hist["cell"].unique()) == ["precision=bf16", "precision=fp32"]


def test_history_alone_puts_zero_lambda_runs_into_their_cells() -> None:
    """seed_rules' history.csv.gz read without results.csv: it has no length column, so
    T comes from d/λ_norm -- undefined at λ = 0. Those runs must still join their cell
    (5 cells at B 5,000, not 8 with T = NaN ones), each with its 3 seeds at λ = 0."""
    f = load(ROOT / "docs/data/seed_rules/history.csv.gz")
    runs = f.hist.drop_duplicates("run")
    assert runs["T"].notna().all()
    assert sorted(runs["T"].unique()) == [96.0, 192.0, 385.0]  # exact: no float noise
    assert runs["cell"].nunique() == 7
    at5000 = runs[runs["train_size"] == 5000]
    assert at5000["cell"].nunique() == 5
    zero = runs[runs["lam"] == 0].groupby("cell").size()
    assert len(zero) == 7 and (zero == 3).all()


def test_lambda_norm_converts_at_each_runs_own_T() -> None:
    """A per-evaluation table giving λ_norm and no length column: each run's T is its last
    step over floor(B/b) (steps of one run, not any other's), λ = 0 runs included, and the
    PyTorch weight_decay is λ_norm·sqrt(b/(B·T))/lr at that T."""
    rows = []
    for run, (T, lam) in enumerate([(96, 0.0), (96, 0.035), (385, 0.0), (385, 0.035)]):
        spe = 5000 // 64
        for s in np.linspace(spe * T / 10, spe * T, 10):
            rows.append(dict(run=f"r{run}", lambda_norm=lam, lr=1e-3, batch_size=64,
                             train_size=5000, step=s, test_acc=0.5))
    h = load(pd.DataFrame(rows)).hist.drop_duplicates("run").set_index("run")
    assert h["T"].tolist() == [96.0, 96.0, 385.0, 385.0]
    assert h["cell"].nunique() == 2
    def wd(T: float) -> float:
        return 0.035 * np.sqrt(64 / (5000 * T)) / 1e-3

    assert h.loc["r1", "weight_decay"] == pytest.approx(wd(96))  # 0.40 at T 96, not 0.20
    assert h.loc["r3", "weight_decay"] == pytest.approx(wd(385))
    assert (h.loc[["r0", "r2"], "weight_decay"] == 0).all()
