"""scripts/study_tables.py: the results tables are the analysis' own numbers, laid out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from analysis import analyze
from tests.analysis.synth import make_history, make_study, write_study

ROOT = Path(__file__).resolve().parents[1]


def test_the_tables_carry_the_analysis_numbers(tmp_path):
    cells = [(64, 4000, 50.0), (128, 4000, 50.0), (64, 8000, 50.0), (64, 4000, 100.0)]
    res = make_study((0.5, -0.5, -0.5), cells=cells, seeds=3, seed=5)
    res = res.assign(config_hash=[f"h{i:04d}" for i in range(len(res))])
    study = write_study(tmp_path / "study", res, make_history(res, n_evals=12, every=60))
    analyze(study, tmp_path / "out", figures=False, sensitivity=False)
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "study_tables.py"),
                        str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| b=")]
    assert len(rows) == len(cells)
    ls = pd.read_csv(tmp_path / "out" / "lambda_star.csv")
    for _, c in ls.iterrows():
        star = f"{c.lambda_star:.3g} [{c.lambda_star_ci_low:.3g}, {c.lambda_star_ci_high:.3g}]"
        assert any(star in row for row in rows), (star, rows)
    fit = json.loads((tmp_path / "out" / "fit.json").read_text())
    b = fit["exponents"]["b"]
    assert f"b {b['estimate']:.2g} [{b['ci_low']:.2g}, {b['ci_high']:.2g}]" in r.stdout
    assert f"residual dof {fit['dof']}" in r.stdout


def test_wrong_usage_is_exit_2():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "study_tables.py")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
