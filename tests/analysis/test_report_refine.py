"""The report's "Refinement" section: a refined study (rows of more than one experiment,
and the caller handing in the study's refine record) gets it; any other study does not."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import _refine_report as rr
from analysis import analyze
from tests._required import missing
from tests.analysis.synth import grid, make_history, make_study, write_study

CELLS = [(64, 4000, 50.0), (256, 4000, 50.0)]
COARSE = grid(3e-3, 3.0, 3.0)  # the round-0 grid: ×3 steps
FINE = grid(3e-3 * 3**0.5, 3.0, 3.0)[:4]  # round 1: midpoints (in ln λ) below the top
RECORD = {"settings": {"target": 0.15, "budget": 1e6, "rounds": 3},
          "rounds": [{"experiment": "exp-001", "points": 24, "member_steps": 0.0,
                      "reason": "24 members", "cells": []}],
          "stop": "budget", "stop_reason": "budget: <b>the cheapest</b> step & more",
          "spent": 0.0}


def refined_results() -> pd.DataFrame:
    """Two cells, 3 seeds: the coarse grid as exp-000, midpoints as exp-001 (one study's
    curves: the same seed shifts for both rounds)."""
    lams = np.sort(np.concatenate([COARSE, FINE]))
    df = make_study((0.5, -0.5, -0.5), cells=CELLS, seeds=3, lams=lams, seed=3)
    fine = df["weight_decay"].isin(FINE)
    df = df.assign(experiment=np.where(fine, "exp-001", "exp-000"),
                   epochs=df["epochs"].astype(int),
                   total_steps=(df["train_size"] / df["batch_size"] * df["epochs"]).round()
                   .astype(int))
    return df.assign(config_hash=[f"h{i:04d}" for i in range(len(df))]).reset_index(drop=True)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    res = refined_results()
    return write_study(tmp_path_factory.mktemp("refined") / "study", res,
                       make_history(res, n_evals=12, every=60))


@pytest.fixture(scope="module")
def page(study: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("report")
    analyze(study, out, refine=RECORD, figures=False, sensitivity=False)
    return (out / "report.html").read_text(), out


class _Text(HTMLParser):
    """The text under each h2, and each table's cells by id."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._h2 = self._table = None
        self._in_h2 = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2":
            self._in_h2, self._h2 = True, ""
        elif tag == "table":
            self._table = dict(attrs).get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False
            self.sections.setdefault(self._h2.strip(), [])
        elif tag == "table":
            self._table = None
        elif tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self._h2 += data
            return
        if self._skip or not data.strip():
            return
        if self._h2:
            self.sections.setdefault(self._h2.strip(), []).append(data.strip())
        if self._table and self.tables[self._table]:
            self.tables[self._table][-1].append(data.strip())


def _parse(html: str) -> _Text:
    p = _Text()
    p.feed(html)
    return p


def test_a_refined_study_has_the_section_with_rounds_cells_and_no_missing_leaks(page):
    html, _ = page
    p = _parse(html)
    assert "Refinement" in p.sections
    text = " ".join(p.sections["Refinement"])
    for leak in ("None", "nan", "NaN", "inf", "undefined"):
        assert not re.search(rf"\b{leak}\b", text), (leak, text[:400])
    res = refined_results()
    spent = int(res["total_steps"].sum())
    assert f"{spent:,}" in text and "budget was spent" in text
    rounds = p.tables["refine-rounds"]
    assert rounds[0][:2] == ["round", "experiment"]
    by = {r[1]: r for r in rounds[1:]}
    assert by["exp-000"][0] == "grid" and by["exp-001"][0] == "round 1"
    for e in ("exp-000", "exp-001"):
        mine = res[res["experiment"] == e]
        assert by[e][2] == str(len(mine)) and by[e][4] == f"{int(mine['total_steps'].sum()):,}"
    cells = p.tables["refine-cells"]
    head = cells[0]
    assert {"λ* [95%]", "onset half-width", "collapse half-width", "full grid member-steps",
            "spent / full grid", "target met"} <= set(head)
    assert [r[0] for r in cells[1:]] == ["b=64", "b=256"]
    per = p.tables["refine-by-round"]
    assert per[0] == ["cell", "grid (exp-000)", "round 1 (exp-001)"] and len(per) == 3


def test_the_section_shows_what_the_pure_module_computes(page, study):
    html, _ = page
    a = analyze(study, refine=RECORD, figures=False, sensitivity=False)
    s = rr.summarize(rr.members(a.hist), a.cells, RECORD)
    cells = _parse(html).tables["refine-cells"]
    col = {h: i for i, h in enumerate(cells[0])}
    for row in cells[1:]:
        want = s.cells.set_index("cell").loc[row[0]]
        assert row[col["full grid member-steps"]] == f"{want.dense_member_steps:,.0f}"
        assert row[col["member-steps"]] == f"{want.member_steps:,.0f}"
        assert row[col["full grid: λ × seeds"]] == f"{want.dense_lambdas} × 3"
        hw = want.hw_opt
        assert row[col["λ* half-width"]] == (f"{hw:.3g}" if np.isfinite(hw) else "—")
    # Round 1 halved the gaps below the top: the spacing reached is ln 3 / 2.
    assert s.cells["spacing_ln"].tolist() == pytest.approx([np.log(3) / 2] * 2)
    assert f"{s.dense:,.0f}" in html


def test_the_record_is_text_escaped(page):
    html, _ = page
    assert "<b>the cheapest</b>" not in html
    assert "&lt;b&gt;the cheapest&lt;/b&gt; step &amp; more" in html


@pytest.mark.parametrize("how", ["no record", "one experiment"])
def test_an_ordinary_study_has_no_refinement_section(study, tmp_path, how):
    if how == "no record":
        src, refine = study, None
    else:  # the record says refined, but only the grid ran
        res = refined_results()
        res = res[res["experiment"] == "exp-000"]
        src, refine = write_study(tmp_path / "grid", res, make_history(res, n_evals=12,
                                                                        every=60)), RECORD
    analyze(src, tmp_path / "out", refine=refine, figures=False, sensitivity=False)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Refinement" not in _parse(html).sections and 'id="refinement"' not in html


def test_a_refine_record_that_is_not_a_dict_is_refused(study):
    from analysis import AnalysisError

    with pytest.raises(AnalysisError, match="refine"):
        analyze(study, refine=["exp-001"], figures=False, sensitivity=False)


@pytest.mark.slow
def test_the_section_renders_in_headless_chromium(page, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        missing("Chromium", "apt-get install chromium")
    _, out = page
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", (out / "report.html").resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    p = _parse(dom.stdout)
    assert "Refinement" in p.sections
    assert len(p.tables["refine-cells"]) == 3 and len(p.tables["refine-rounds"]) == 3
    assert 'data-images-ok="true"' in dom.stdout  # the page's own script ran


def test_earlier_refinements_are_listed_as_their_records_say(study, tmp_path):
    """An extended or imported study keeps other specs' records in `earlier`: the section
    lists them (rounds, experiments, spent, stop), escaped; without any, no such table."""
    rec = dict(RECORD, earlier=[
        {"settings": {"target": 0.2}, "stop": "rounds", "stop_reason": "3 rounds done",
         "spent": 158920.0, "rounds": [{"experiment": f"exp-00{i}", "points": 4,
                                        "member_steps": 10.0, "reason": "r", "cells": []}
                                       for i in (1, 2, 3)]},
        {"rounds": [], "stop": "budget", "stop_reason": "<i>planted</i>", "spent": "x"}])
    analyze(study, tmp_path, refine=rec, figures=False, sensitivity=False)
    html = (tmp_path / "report.html").read_text()
    rows = _parse(html).tables["refine-earlier"]
    assert rows[0] == ["record", "rounds", "experiments", "member-steps spent",
                       "target (ln λ)", "stopped", "reason"]
    assert rows[1] == ["1", "3", "exp-001, exp-002, exp-003", "158,920", "0.2",
                       "the rounds were used up", "3 rounds done"]
    assert rows[2][:2] == ["2", "0"] and rows[2][3] == "—"  # a spent that is not a number
    assert "<i>planted</i>" not in html and "&lt;i&gt;planted&lt;/i&gt;" in html
    assert rr.earlier(RECORD).empty and rr.earlier(None).empty


def test_no_earlier_table_without_earlier_records(page):
    html, _ = page
    assert "refine-earlier" not in html and "Earlier refinements" not in html
