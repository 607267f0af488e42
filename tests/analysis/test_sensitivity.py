"""The sensitivity report: the verdict under other windows, estimators, sub-grids and with
each cell left out; a verdict that changes is fragile in the headline, never decisive."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis import Analysis, analyze
from analysis._report import _headline
from analysis._verdict import verdict
from tests.analysis.synth import make_history, make_study, small_study, write_study


@pytest.fixture(scope="module")
def with_history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Analysis, Path]:
    root = tmp_path_factory.mktemp("sens")
    res = small_study()
    study = write_study(root / "study", res, make_history(res, n_evals=30))
    return analyze(study, root / "out"), root / "out"


def test_every_choice_is_rerun_and_written_to_fit_json(
        with_history: tuple[Analysis, Path]) -> None:
    a, out = with_history
    fit = json.loads((out / "fit.json").read_text())
    rows = fit["sensitivity"]
    assert all({"choice", "rule", "strength"} <= set(r) for r in rows)
    choices = [r["choice"] for r in rows]
    assert choices[0] == "as reported"
    for c in ("window 0.05", "window 0.2", "last evaluation", "estimator smoothed",
              "every other λ (1st, 3rd, ...)", "every other λ (2nd, 4th, ...)"):
        assert c in choices, choices
    assert "window 0.1" not in choices  # the analysis's own window is the first row
    assert sum(c.startswith("without cell") for c in choices) == fit["n_cells"]
    assert isinstance(fit["verdict"]["stable"], bool)
    same = all((r["rule"], r["strength"]) == (rows[0]["rule"], rows[0]["strength"])
               for r in rows)
    assert fit["verdict"]["stable"] == same


def test_report_shows_the_sensitivity_table(with_history: tuple[Analysis, Path]) -> None:
    a, out = with_history
    page = (out / "report.html").read_text()
    assert "Sensitivity of the verdict" in page and 'id="sensitivity"' in page.replace(
        "id='sensitivity'", 'id="sensitivity"')
    for r in a.fit["sensitivity"]:
        assert r["choice"].replace("<", "&lt;") in page


@pytest.fixture(scope="module")
def knife_edge() -> dict:
    """Seven cells one axis at a time, sqrt truth: strong as analyzed, but leaving out one
    cell leaves two residual dof (and fewer cells on an axis)."""
    return analyze(make_study((0.5, -0.5, -0.5), seeds=3, seed=21)).fit


def test_a_verdict_that_changes_is_fragile_in_its_headline(knife_edge: dict) -> None:
    v = knife_edge["verdict"]
    assert v["rule"] == "sqrt" and v["stable"] is False and v["changes_under"]
    head = _headline(knife_edge)
    assert "fragile" in head and "decisive" not in head.split("fragile")[0]
    text = " ".join(verdict(knife_edge, pd.DataFrame()))
    assert "fragile" in text
    assert any("fragile" in n for n in knife_edge["notes"])


def test_a_verdict_the_data_cannot_move_is_stable() -> None:
    """b, B, T constant: inconclusive under every choice, so stable, and the headline
    says the data cannot tell."""
    df = make_study((0.5, -0.5, -0.5), cells=[(64, 4000, 50.0)] * 3, seeds=3, seed=2)
    df = df.assign(bn_eps=1e-5)  # two cells that differ in something else
    df.loc[df.index[len(df) // 3:], "bn_eps"] = 1e-2
    fit = analyze(df).fit
    assert fit["verdict"]["stable"] is True
    assert _headline(fit).startswith("the data cannot tell")
