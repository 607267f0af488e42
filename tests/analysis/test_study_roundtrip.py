"""A real small study from `wdsweep run`, analyzed from disk."""

import json

import pandas as pd
import pytest

import analysis
import sweep
from sweep.plan.spec import parse

SPEC = """
name = "rt"
preset = "tiny"
[fixed]
epochs = 6
train_size = 256
eval_every = 8
[grid]
weight_decay = [0.0, 0.01, 0.1, 1.0]
seed = [0, 1]
batch_size = [16, 32]
[run]
pack = 4
checkpoint_every = 16
"""


@pytest.mark.slow
def test_a_real_study_round_trips_into_the_analysis(ray_local, tmp_path, wdsweep):
    study = tmp_path / "study"
    sweep.run(parse(SPEC), study)
    a = analysis.analyze(study, last=3)
    assert len(a.runs) == 16 and a.runs.run.is_unique  # every member once
    assert set(a.runs.run) == set(pd.read_csv(study / "results.csv").config_hash)
    assert set(a.runs["weight_decay"].round(12)) == {0.0, 0.01, 0.1, 1.0}
    assert len(a.cells) == 2  # batch 16 and 32; lambda and seed are not cell keys
    hist = pd.read_csv(study / "history.csv")
    one = hist[hist.config_hash == hist.config_hash.iloc[0]]
    want = one.sort_values("step").test_acc.tail(3).mean()
    got = a.runs.set_index("run").loc[one.config_hash.iloc[0], "final_test_acc"]
    assert got == pytest.approx(want)  # the seed's "mean of the last N evaluations"

    r = wdsweep("analyze", study, "--out", tmp_path / "rep", "--last", "3", timeout=300)
    assert r.returncode == 0, r.stderr
    fit = json.loads((tmp_path / "rep" / "fit.json").read_text())
    assert {"lambda_norm", "exponents", "rules", "preferred_rule"} <= set(fit)
    assert (tmp_path / "rep" / "report.html").stat().st_size > 10_000
    assert len(pd.read_csv(tmp_path / "rep" / "lambda_star.csv")) == 2
