"""The report answers first: a headline box with the recommended decay per cell and what
the verdict means at another b, B or T; no None/nan in the page; sorted tables; integer
design advice; checked in headless Chromium as well as by parsing the HTML."""

from __future__ import annotations

import copy
import fnmatch
import importlib.util
import io
import math
import re
import tomllib
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import Analysis, analyze
from analysis._report import render
from analysis._verdict import _design, nice_design
from tests._required import missing
from tests.analysis.synth import CENTER, grid, make_study, small_study

ROOT = Path(__file__).resolve().parents[2]
LEAK = re.compile(r"\b(None|nan|NaN|inf|Inf|Infinity|undefined)\b|\bnull\b(?! rule)")
NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?")


def _no_lambda() -> pd.DataFrame:
    df = small_study()
    return df[df["weight_decay"] == df["weight_decay"].max()]


STUDIES: dict[str, Callable[[], pd.DataFrame]] = {
    "sqrt7": lambda: make_study((0.5, -0.5, -0.5), seeds=3, seed=21),  # named, fragile
    "inconclusive": small_study,  # 3 cells, no residual dof
    "one_cell": lambda: make_study((0.5, -0.5, -0.5), cells=[CENTER], seeds=3),
    "none_fits": lambda: make_study((1, -1, 0), collapse=(0, 0, 0), seeds=3, seed=1),
    "epoch": lambda: make_study((1, -1, 0), seeds=3, seed=3),  # epoch_timescale named
    "edge_low": lambda: make_study((0.5, -0.5, -0.5), lams=grid(3e-3, 0.03, 2**0.5), seeds=2),
    "no_lambda": _no_lambda,  # one λ per cell: nothing located, nothing fitted
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Analysis, Path]]:
    """Each study analyzed once, on first use (figures and sensitivity for sqrt7 only)."""
    done: dict[str, tuple[Analysis, Path]] = {}

    def get(name: str) -> tuple[Analysis, Path]:
        if name not in done:
            out = tmp_path_factory.mktemp(name)
            full = name == "sqrt7"
            a = analyze(STUDIES[name](), out, figures=full, sensitivity=full)
            done[name] = a, out / "report.html"
        return done[name]

    return get


class _Page(HTMLParser):
    """The visible text, the tags in order, and every table by id (rows of cell texts)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.ids: dict[str, list[str]] = {}  # text under each element with an id
        self._skip, self._table, self._cell = 0, None, None
        self._open: list[tuple[str, str | None]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table or ""] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        if tag not in ("br", "img", "meta", "hr", "input"):  # void elements never close
            self._open.append((tag, a.get("id")))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append(" ".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None
        while self._open:
            t, _ = self._open.pop()
            if t == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._skip or not data.strip():
            return
        s = " ".join(data.split())
        self.text.append(s)
        if self._cell is not None:
            self._cell.append(s)
        for _, i in self._open:
            if i:
                self.ids.setdefault(i, []).append(s)


def _body_first(p: _Page) -> tuple[str, dict[str, str | None]]:
    names = [t for t, _ in p.tags]
    return p.tags[names.index("body") + 1]


def _nums(s: str) -> list[float]:
    return [float(x) for x in NUM.findall(s)]


def _close(shown: str, values: list[float]) -> bool:
    got = _nums(shown)
    return len(got) == len(values) and all(math.isclose(x, v, rel_tol=6e-3, abs_tol=0)
                                           for x, v in zip(got, values))


def _axes_order(a: Analysis) -> list[str]:
    keys = [k for k in a.keys if k in a.cells]
    return list(a.cells.sort_values(keys, kind="stable")["cell"]) if keys else list(
        a.cells["cell"])


@pytest.mark.parametrize("name", ["sqrt7", "inconclusive", "one_cell", "edge_low"])
def test_the_headline_box_is_first_and_carries_each_cells_numbers(report, name) -> None:
    a, path = report(name)
    p = _Page(path.read_text())
    tag, attrs = _body_first(p)
    assert (tag, attrs.get("id")) == ("section", "headline"), (tag, attrs)
    rows = p.tables["recommendation"][1:]
    assert [r[0] for r in rows] == _axes_order(a)  # every cell, sorted by its axes
    cells = a.cells.set_index("cell")
    for cell, wd, ln, plateau, best, *note in rows:
        c = cells.loc[cell]
        assert _close(wd, [c["wd_star"], c["wd_star_ci_low"], c["wd_star_ci_high"]]), wd
        assert _close(ln, [c["lambda_norm_star"], c["lambda_norm_star_ci_low"],
                           c["lambda_norm_star_ci_high"]]), ln
        assert _close(plateau, [c["lambda_lo"], c["lambda_hi"]]), plateau
        assert _close(best, [c["best_acc"]]), best
        ext = c["extend"] if isinstance(c["extend"], str) else ""
        want = ["never learned"] * bool(c["low_acc"]) + [ext] * bool(ext)
        assert all(w in " ".join(note) for w in want), (cell, note, want)
    head = " ".join(p.ids["headline"])
    assert "within 2% of the best" in head and "At another b, B or T" in head


def test_a_named_rule_gives_its_formula_constant_and_an_example(report) -> None:
    a, path = report("sqrt7")
    x = " ".join(_Page(path.read_text()).ids["extrapolation"])
    assert "weight_decay = λ_norm · sqrt(b/(B·T)) / lr" in x
    k = a.fit["rules"]["sqrt"]["constant"]
    const = x.split("with λ_norm = ")[1].split("(95%")[0]
    assert _close(const, [k["estimate"], k["ci_low"], k["ci_high"]]), const
    # The example (the rule's prediction) is the analysis's own conversion to PyTorch units.
    wd = a.fit["lambda_norm"]["weight_decay"]
    shown = x.split("weight_decay = ")[-1]
    assert _close(shown.rstrip(". "), [wd["estimate"], wd["ci_low"], wd["ci_high"]]), shown
    assert a.fit["verdict"]["stable"] is False and "Fragile" in x


def test_a_timescale_rule_example_is_b_over_lr_B_tau(report) -> None:
    a, path = report("epoch")
    assert a.fit["verdict"]["rule"] == "epoch_timescale"
    x = " ".join(_Page(path.read_text()).ids["extrapolation"])
    assert "weight_decay = b / (lr · B · τ_epoch)" in x
    k, at = a.fit["rules"]["epoch_timescale"]["constant"], a.fit["lambda_norm"]["weight_decay"]
    f = at["batch_size"] / (at["lr"] * at["train_size"])
    want = [f / k["estimate"], f / k["ci_high"], f / k["ci_low"]]  # a longer τ, a smaller λ
    assert _close(x.split("weight_decay = ")[-1].rstrip(". "), want), x


@pytest.mark.parametrize("name,says", [
    ("inconclusive", "cannot be extrapolated to another b, B or T"),
    ("one_cell", "cannot be extrapolated to another b, B or T"),
    ("no_lambda", "cannot be extrapolated to another b, B or T"),
    ("none_fits", "Not one of the four rules fits")])
def test_without_a_rule_the_headline_says_lambda_cannot_be_carried(report, name, says) -> None:
    a, path = report(name)
    p = _Page(path.read_text())
    x = " ".join(p.ids["extrapolation"])
    assert says in x and "formula" not in x, x
    assert all(at.get("class") != "formula" for _, at in p.tags)


@pytest.mark.parametrize("name", list(STUDIES))
def test_no_none_nan_or_inf_in_the_page_text(report, name) -> None:
    a, path = report(name)
    text = " ".join(_Page(path.read_text()).text)
    assert not LEAK.findall(text), [text[max(0, m.start() - 60):m.end() + 60]
                                    for m in LEAK.finditer(text)][:5]


@pytest.mark.parametrize("name", ["sqrt7", "inconclusive", "edge_low"])
def test_tables_are_sorted_by_cell_axes_then_lambda_then_seed(report, name) -> None:
    a, path = report(name)
    p = _Page(path.read_text())
    order = _axes_order(a)
    assert [r[0] for r in p.tables["best-lambda"][1:]] == order
    head, *rows = p.tables["runs-table"]
    ci, si, li = head.index("cell"), head.index("seed"), head.index(f"λ ({a.unit})")
    rank = {c: i for i, c in enumerate(order)}
    want = a.runs.assign(r=a.runs["cell"].map(rank)).sort_values(["r", "lam", "seed"])
    assert len(rows) == min(len(a.runs), 300)
    for row, (_, w) in zip(rows, want.iterrows()):
        assert row[ci] == w["cell"] and int(row[si]) == w["seed"]
        assert math.isclose(float(row[li]), w["lam"], rel_tol=1e-3, abs_tol=1e-12)


@pytest.mark.parametrize("name", ["inconclusive", "edge_low"])
def test_design_advice_proposes_whole_batch_data_and_epoch_counts(report, name) -> None:
    a, path = report(name)
    text = " ".join(_Page(path.read_text()).ids.get("verdict-text", []))
    assert a.fit["design"] and "To separate" in text
    advice = text[text.index("To separate"):text.index("member-steps")]
    got = [(k, float(v)) for k, v in re.findall(r"\b([bBT]) = ([-+0-9.e]+)", advice)]
    assert len(got) == 6, got
    for k, v in got:
        assert v == int(v) >= 1, (k, v)
        if k == "b":
            assert math.log2(v) == int(math.log2(v)), v  # a power of two
    assert "rounded to a power of two" in text


def test_awkward_design_cells_are_rounded_and_keep_their_factor() -> None:
    d = {"rules": ["sqrt", "constant"], "axis": "B", "exponent_difference": 0.5,
         "factor": 4.0, "cells": [{"b": 45.3, "B": 1000.2, "T": 12.5},
                                  {"b": 45.3, "B": 4000.8, "T": 12.5}],
         "seeds": 3, "lambda_ratio": 2**0.5, "n_lambdas": 20, "member_steps": 1.0,
         "assumes": "x"}
    lo, hi = nice_design(d)["cells"]
    # 45.3 is just above 45.25, the geometric midpoint of 32 and 64; 12.5 rounds half up.
    assert lo == {"b": 64, "B": 1000, "T": 13} and hi == {"b": 64, "B": 4000, "T": 13}
    assert nice_design(d)["member_steps"] == 3 * 20 * (13 * 1000 / 64 + 13 * 4000 / 64)
    text = _design(d)
    assert "b = 64, B = 1000, T = 13; b = 64, B = 4000, T = 13" in text
    assert "45.3" not in text and "e+" not in text.split("about")[0]


def test_rendering_changes_no_estimate_and_escapes_what_it_shows(report) -> None:
    a, _ = report("inconclusive")
    before = copy.deepcopy(a.fit), a.cells.copy(), a.runs.copy()
    df = small_study().assign(tag="plain & simple")
    df.loc[df.index % 2 == 1, "tag"] = "<i>evil</i>"
    evil = analyze(df, figures=False, sensitivity=False)
    page = render(a)
    assert a.fit == before[0]
    pd.testing.assert_frame_equal(a.cells, before[1])
    pd.testing.assert_frame_equal(a.runs, before[2])
    bad = render(evil)
    assert "<i>evil" not in bad and "&lt;i&gt;evil&lt;/i&gt;" in bad and "&amp; simple" in bad
    assert '"Segoe UI"' in page  # the stylesheet itself is not escaped


def test_the_template_ships_as_package_data() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pats = cfg["tool"]["setuptools"]["package-data"]["analysis"]
    files = [p.relative_to(ROOT / "analysis").as_posix()
             for p in (ROOT / "analysis" / "templates").rglob("*") if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in pats) for f in files), files
    deps = " ".join(cfg["project"]["dependencies"])
    assert "jinja2>=3.1" in deps


def _shots() -> object:
    """scripts/report_screenshot.py: the Chromium helpers (skips without Chromium)."""
    path = ROOT / "scripts" / "report_screenshot.py"
    spec = importlib.util.spec_from_file_location("report_screenshot", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if mod.chromium() is None:
        missing("Chromium", "apt-get install chromium")
    return mod


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sqrt7", "inconclusive", "one_cell", "none_fits",
                                  "no_lambda"])
def test_in_chromium_the_headline_comes_first_and_no_value_leaks(report, name,
                                                                 tmp_path: Path) -> None:
    shots = _shots()
    a, path = report(name)
    p = _Page(shots.dump_dom(path, tmp_path / "profile"))
    tag, attrs = _body_first(p)
    assert (tag, attrs.get("id")) == ("section", "headline")
    text = " ".join(p.text)
    assert not LEAK.findall(text), LEAK.findall(text)
    assert len(p.tables["recommendation"]) == 1 + len(a.cells)


@pytest.mark.slow
def test_a_screenshot_shows_the_headline_box_at_the_top(report, tmp_path: Path) -> None:
    shots = _shots()
    _, path = report("sqrt7")
    png = shots.screenshot(path, tmp_path / "report.png", tmp_path / "profile")
    img = Image.open(io.BytesIO(png.read_bytes()))
    img.load()
    px = np.asarray(img.convert("RGB"), dtype=int)
    assert px.shape[1] == shots.SIZE[0] and len(np.unique(px.reshape(-1, 3), axis=0)) >= 16
    top = px[:250].reshape(-1, 3)
    box = (np.abs(top - np.array([0xF3, 0xF7, 0xFF])) <= 2).all(axis=1).mean()
    assert box > 0.3, f"the headline's background fills {box:.0%} of the top 250 rows"
