"""Run identity: a column naming runs is the run key, never a cell axis; an unknown
per-run column is refused with one line naming it and the options."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import AnalysisError, analyze, cli, load
from tests.analysis.foreign import foreign_table

SPELLINGS = ["run_id", "run", "run_name", "trial_id", "trial_name", "name", "id",
             "config_hash", "Run ID"]


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, dict[tuple[float, float], float]]:
    return foreign_table()  # 16 cells b × T, 20 λ, 2 seeds, 40 evaluations: 640 runs


@pytest.mark.parametrize("col", SPELLINGS)
def test_each_run_key_spelling_gives_the_design_cells(table, col: str) -> None:
    df = table[0].rename(columns={"run_id": col})
    f = load(df)
    assert f.keys == ["batch_size", "T"]
    runs = f.hist.drop_duplicates("run")
    assert len(runs) == 640 and runs["cell"].nunique() == 16
    assert (runs.groupby("cell").size() == 40).all()  # 20 λ × 2 seeds in every cell
    assert set(runs["run"]) == set(df[col].astype(str))


def test_lambda_star_near_the_truth_from_a_foreign_table(table) -> None:
    df, truth = table
    a = analyze(df.rename(columns={"run_id": "trial_name"}))
    c = a.cells
    assert len(c) == 16 and (c["edge"] == "").all()
    err = [math.log(r["lambda_star"] / truth[(r["batch_size"], r["T"])])
           for _, r in c.iterrows()]
    # Within a grid step (0.44 in ln λ) of the truth. The per-cell estimator's own bias on
    # these asymmetric curves is test_best's business (a smoothed argmax sits ~0.3 high);
    # what wrong cells would do -- merge T's 2x apart, or leave one run per cell -- shows
    # as a spread about that offset, or as no λ* at all.
    assert abs(np.mean(err)) < 0.45 and np.ptp(err) < 0.35, err
    assert a.fit["n_cells"] == 16
    b, t = a.fit["exponents"]["b"], a.fit["exponents"]["T"]
    assert abs(b["estimate"] - 0.5) < 0.1 and abs(t["estimate"] + 0.5) < 0.1


def test_a_second_run_label_is_dropped_not_a_cell_key(table) -> None:
    df = table[0]
    df = df.assign(run_name="nice-" + df["run_id"].str[-8:])
    f = load(df)
    assert f.keys == ["batch_size", "T"] and "run_name" not in f.hist


def test_a_name_column_naming_cells_stays_a_cell_key(table) -> None:
    """`name` constant over many λ is not a run key: here it names the cell."""
    df = table[0].drop(columns="run_id")
    df["name"] = "b" + df["batch_size"].astype(str) + "-T" + df["epochs"].astype(str)
    f = load(df)
    assert f.hist["run"].nunique() == 640 and f.hist["cell"].nunique() == 16


def test_unknown_per_run_column_is_refused_naming_it_and_the_options(table) -> None:
    df = table[0].rename(columns={"run_id": "wandb_path"})
    with pytest.raises(AnalysisError) as e:
        load(df)
    msg = str(e.value)
    assert "\n" not in msg and "'wandb_path'" in msg
    assert "--run-col wandb_path" in msg and "--ignore wandb_path" in msg
    assert "run_col=" in msg and "ignore=" in msg
    by_key = load(df, run_col="wandb_path")
    assert by_key.hist["cell"].nunique() == 16
    ignored = load(df, ignore=["wandb_path"])  # runs are then the distinct configs
    assert ignored.hist["run"].nunique() == 640 and ignored.hist["cell"].nunique() == 16


def test_run_col_that_is_not_a_run_key_and_unknown_ignore_are_one_line(table) -> None:
    df = table[0]
    with pytest.raises(AnalysisError, match="--run-col batch_size: not a run key "
                                            r"\(weight_decay varies"):
        load(df, run_col="batch_size")
    with pytest.raises(AnalysisError, match="--ignore: no column named nope"):
        load(df, ignore=["nope"])
    with pytest.raises(AnalysisError, match="--run-col: no column named nope"):
        load(df, run_col="nope")


def test_cells_of_one_lambda_each_are_refused(table) -> None:
    """A label of the decay (shared by the seeds, so not per run) splits every cell into
    one λ: an error naming it, never an empty report."""
    df = table[0]
    df = df.assign(tag="wd" + df["weight_decay"].map("{:.3g}".format))
    with pytest.raises(AnalysisError) as e:
        analyze(df)
    assert "single λ > 0" in str(e.value) and "tag" in str(e.value)
    assert "\n" not in str(e.value)


def test_known_axes_with_one_lambda_per_cell_warn_loudly() -> None:
    """λ_norm fixed, T varied: one weight_decay per cell is a design, not a mistake --
    reported with a warning, not refused."""
    rows = [dict(run=f"r{T}-{s}", lambda_norm=0.04, lr=1e-3, batch_size=64, train_size=5000,
                 epochs=T, seed=s, test_acc=0.9) for T in (50, 200) for s in range(2)]
    a = analyze(pd.DataFrame(rows))
    assert any("each cell holds a single λ > 0 (2 over the table)" in w for w in a.warnings)


def test_cli_refuses_with_exit_2_and_takes_run_col(table, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    df = table[0].rename(columns={"run_id": "wandb_path"})
    df = df[df["batch_size"].isin([16, 128]) & df["epochs"].isin([25, 200])]
    df.to_parquet(tmp_path / "t.parquet")
    ns = dict(path=tmp_path / "t.parquet", out=tmp_path / "out", window=None, last=None,
              figures=False)
    rc = cli.main(argparse.Namespace(**ns))
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--run-col wandb_path" in err
    assert not (tmp_path / "out").exists()
    rc = cli.main(argparse.Namespace(**ns, run_col="wandb_path"))
    assert rc == 0, capsys.readouterr().err
    cells = pd.read_csv(tmp_path / "out" / "lambda_star.csv")
    assert len(cells) == 4 and np.isfinite(cells["lambda_star"]).all()
    rc = cli.main(argparse.Namespace(**ns, ignore=["wandb_path"]))
    assert rc == 0, capsys.readouterr().err


def test_named_runs_of_one_config_without_seed_are_replicates(table) -> None:
    """No seed column: two named runs of the same config are two seeds, not one averaged."""
    df = table[0].drop(columns="seed")
    f = load(df)
    runs = f.hist.drop_duplicates("run")
    assert sorted(runs["seed"].unique()) == [0, 1]
    assert (runs.groupby(["cell", "lam"])["seed"].nunique() == 2).all()
    assert any("taken as seeds" in w for w in f.warnings)
