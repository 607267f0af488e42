"""Round trip: a plain Ray Tune experiment, written by someone else's function trainable
(not the project's), analyzed from its directory."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis import cli

LR, B, BATCH, LAMBDA_NORM = 1e-3, 5000, 64, 0.04
GRID = [0.0, *(0.05 * 2.0 ** (k / 2) for k in range(12))]


def wd_star(epochs: float) -> float:
    """The optimum the trainable's formula puts in: the sqrt rule, in PyTorch units."""
    return LAMBDA_NORM * math.sqrt(BATCH / (B * epochs)) / LR


def trainable(config: dict) -> None:
    """Accuracy from a formula of the config: a broad plateau about wd_star, grokking-like
    rise over the run, a seed-dependent wobble."""
    from ray import tune

    wd, epochs, seed = config["weight_decay"], config["epochs"], config["seed"]
    u = math.log(wd / wd_star(epochs)) if wd > 0 else -30.0
    top = 0.05 + 0.9 * math.exp(-abs(u / 1.5) ** 4) + 0.005 * ((seed * 7 + 3) % 5 - 2)
    for k in range(1, 11):
        rise = k / 10
        tune.report({"test_acc": top * rise, "train_acc": min(1.0, 0.2 + rise),
                     "step": k * 100, "train_loss": 0.1 / k})


@pytest.mark.slow
def test_plain_tune_experiment_round_trip(ray_local, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from ray import tune

    space = {"weight_decay": tune.grid_search(GRID), "epochs": tune.grid_search([25, 100]),
             "seed": tune.grid_search([0, 1]), "lr": LR, "batch_size": BATCH,
             "train_size": B}
    tuner = tune.Tuner(trainable, param_space=space,
                       tune_config=tune.TuneConfig(reuse_actors=True),
                       run_config=tune.RunConfig(name="someone_elses", storage_path=str(tmp_path),
                                                 verbose=0))
    grid = tuner.fit()
    assert not grid.errors
    exp = tmp_path / "someone_elses"

    out = tmp_path / "report"
    rc = cli.main(argparse.Namespace(path=exp, out=out, last=3))
    assert rc == 0, capsys.readouterr().err
    runs = pd.read_csv(out / "summary.csv")
    assert len(runs) == len(GRID) * 2 * 2
    assert runs["n_evals"].eq(10).all() and runs["step_to_0.5"].notna().any()
    cells = pd.read_csv(out / "lambda_star.csv", keep_default_na=False).set_index("T")
    assert sorted(cells.index) == [25.0, 100.0]
    for T, c in cells.iterrows():
        assert c["edge"] == ""
        assert abs(math.log(c["lambda_center"] / wd_star(T))) < 0.15
    fit = json.loads((out / "fit.json").read_text())
    t = fit["exponents"]["T"]
    assert t["ci_low"] <= -0.5 <= t["ci_high"]
    assert fit["exponents"]["b"]["estimate"] is None
    lam = fit["lambda_norm"]
    assert lam["ci_low"] <= LAMBDA_NORM <= lam["ci_high"]
    assert (out / "report.html").exists()
