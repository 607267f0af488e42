"""`wdsweep analyze` on a wdsweep Ray Tune experiment directory: one run per member."""

from pathlib import Path

import pandas as pd

import sweep
from analysis import analyze
from tests.sweep._helpers import spec


def test_a_tune_experiment_of_packs_analyzes_per_member(ray_local, tmp_path: Path) -> None:
    s = spec(wds=(0.0, 0.1, 0.3))
    sweep.run(s, tmp_path / "study")
    exp = next((tmp_path / "study").rglob("exp-000"))
    a = analyze(exp, window=1.0)  # read with pandas and json only: no Ray, no pickle
    res = pd.read_csv(tmp_path / "study" / "results.csv", dtype={"config_hash": str})
    hist = pd.read_csv(tmp_path / "study" / "history.csv", dtype={"config_hash": str})
    assert sorted(a.runs["run"]) == sorted(res["config_hash"])  # members, not packs
    assert sorted(a.runs["lam"].unique()) == [0.0, 0.1, 0.3]
    # Every evaluation Tune saw is the study's history, member by member.
    got = a.hist.assign(step=a.hist["step"].astype(int)).set_index(["run", "step"])
    want = hist.rename(columns={"config_hash": "run"}).set_index(["run", "step"])
    for m in ("test_acc", "train_loss", "weight_norm"):  # the tiny task's acc may be all 0
        pd.testing.assert_series_equal(got[m].sort_index(), want[m].sort_index(),
                                       check_names=False, check_dtype=False)
    assert want["train_loss"].nunique() > 10
