"""`wdsweep analyze`: bad input gives one line and exit 2, writing nothing; partial input
writes what it can and warns."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import cli
from tests.analysis.synth import grid, make_study, write_study


def _run(path: Path, out: Path, capsys: pytest.CaptureFixture[str], last: int | None = None
         ) -> tuple[int, str]:
    rc = cli.main(argparse.Namespace(path=path, out=out, last=last))
    return rc, capsys.readouterr().err


def _table(tmp_path: Path, df: pd.DataFrame) -> Path:
    df.to_csv(tmp_path / "t.csv", index=False)
    return tmp_path / "t.csv"


def _base() -> pd.DataFrame:
    return make_study((0.5, -0.5, -0.5), cells=[(64, 4000, 50.0)], seeds=2,
                      lams=grid(3e-3, 3.0, 2.0))


BAD = {
    "missing decay": (lambda d: d.drop(columns="weight_decay"), "missing a weight-decay column"),
    "missing accuracy": (lambda d: d.drop(columns="last_test_acc"), "missing column test_acc"),
    "all NaN": (lambda d: d.assign(last_test_acc=np.nan), "test_acc is NaN in all"),
    "all errored": (lambda d: d.assign(status="errored"), "runs errored: nothing to analyze"),
    "empty": (lambda d: d.iloc[:0], "no rows"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_table_exits_2_with_one_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    change, message = BAD[case]
    rc, err = _run(_table(tmp_path, change(_base())), tmp_path / "out", capsys)
    assert rc == 2
    assert err.startswith("wdsweep analyze: error: ") and err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "out").exists()


def test_all_errored_study_and_bad_paths_exit_2(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    study = write_study(tmp_path / "s", _base().assign(status="errored", config_hash="h"), None)
    for path, msg in ((study, "errored"), (tmp_path / "nope", "no such file"),
                      (study / "spec.toml", "unsupported file type")):
        rc, err = _run(path, tmp_path / "out", capsys)
        assert rc == 2 and msg in err, err
    rc, err = _run(study, tmp_path / "out", capsys, last=0)
    assert rc == 2 and "--last" in err
    assert not (tmp_path / "out").exists()


def test_single_lambda_still_reports_with_a_warning(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    df = _base()
    df = df[df["weight_decay"] == df["weight_decay"].max()]
    rc, err = _run(_table(tmp_path, df), tmp_path / "out", capsys)
    assert rc == 0
    assert "warning: a single λ > 0" in err
    assert "a single λ &gt; 0" in (tmp_path / "out" / "report.html").read_text()
    fit = json.loads((tmp_path / "out" / "fit.json").read_text())
    assert fit["preferred_rule"] is None and fit["n_cells"] == 0


def test_some_nan_runs_and_missing_axes_are_warnings(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    df = _base().drop(columns=["train_size"])
    df.loc[df.index[:3], "last_test_acc"] = np.nan
    rc, err = _run(_table(tmp_path, df), tmp_path / "out", capsys)
    assert rc == 0
    assert "3 of" in err and "NaN test_acc" in err
    assert "missing train_size" in err
    cells = pd.read_csv(tmp_path / "out" / "lambda_star.csv")
    assert len(cells) == 1 and np.isfinite(cells["lambda_star"]).all()


def test_wdsweep_cli_dispatches_and_returns_2(tmp_path: Path, wdsweep) -> None:
    r = wdsweep("analyze", _table(tmp_path, _base().drop(columns="weight_decay")),
                "--out", tmp_path / "out", timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().startswith("wdsweep analyze: error: missing a weight-decay column")
    assert "Traceback" not in r.stderr


def test_unwritable_out_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a directory")
    rc, err = _run(_table(tmp_path, _base()), tmp_path / "file", capsys)
    assert rc == 2 and err.startswith("wdsweep analyze: error: cannot write")


def test_wdsweep_cli_takes_run_col_ignore_and_no_figures(tmp_path: Path, wdsweep) -> None:
    df = _base().assign(wandb_path=lambda d: [f"ent/proj/{i:04x}" for i in range(len(d))],
                        runtime_s=lambda d: np.arange(len(d)) * 1.5)
    t = _table(tmp_path, df)
    r = wdsweep("analyze", t, "--out", tmp_path / "o1", timeout=120)
    assert r.returncode == 2 and "--run-col wandb_path" in r.stderr, r.stderr
    r = wdsweep("analyze", t, "--out", tmp_path / "o2", "--run-col", "wandb_path", "--ignore",
                "runtime_s", "--no-figures", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "figures not drawn" in r.stderr
    assert not list((tmp_path / "o2").glob("*.png"))
    cells = pd.read_csv(tmp_path / "o2" / "lambda_star.csv")
    assert len(cells) == 1 and np.isfinite(cells["lambda_star"]).all()
