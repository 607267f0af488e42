"""The outputs: CSVs, fit.json, figures, and a self-contained report.html."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import Analysis, analyze
from tests._required import missing
from tests.analysis.synth import make_history, make_study, small_study, write_study

FIGURES = {"acc_vs_lambda", "training_curves", "dstar_fit", "collapse_view", "bn_collapses",
           "delay"}


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Analysis, Path]:
    """A study with curves and periodic batch-norm collapses, analyzed once."""
    root = tmp_path_factory.mktemp("report")
    res = small_study()
    study = write_study(root / "study", res, make_history(res, n_evals=30, period=400))
    out = root / "out"
    return analyze(study, out), out


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_writes_every_output_with_the_documented_columns(done: tuple[Analysis, Path]) -> None:
    a, out = done
    runs = pd.read_csv(out / "summary.csv")
    assert len(runs) == len(a.runs) and {"final_test_acc", "step_to_0.9", "n_collapses",
                                         "collapse_period"} <= set(runs.columns)
    cells = pd.read_csv(out / "lambda_star.csv", keep_default_na=False)
    for c in ("lambda_star", "lambda_onset", "lambda_collapse", "d_star"):
        assert {c, f"{c}_ci_low", f"{c}_ci_high"} <= set(cells.columns)
    assert {"batch_size", "T", "n_seeds", "edge", "extend", "lambda_lo", "lambda_hi",
            "low_acc", "star_over_collapse"} <= set(cells.columns)
    seeds = pd.read_csv(out / "seeds.csv")
    assert {"cell", "seed", "ln_lambda_star", "ln_onset", "ln_collapse"} <= set(seeds.columns)
    fit = json.loads((out / "fit.json").read_text())
    assert {"estimate", "ci_low", "ci_high", "units"} <= set(fit["lambda_norm"])
    for axis in ("b", "B", "T"):
        assert {"estimate", "ci_low", "ci_high"} <= set(fit["exponents"][axis])
    assert fit["exponents"]["B"]["estimate"] is None  # B is fixed in this study
    assert set(fit["rules"]) == {"sqrt", "epoch_timescale", "fraction_of_run", "constant"}
    assert "preferred_rule" in fit and fit["window"] == 0.1
    assert set(fit["verdict"]) >= {"rule", "strength", "compatible"}
    assert fit["verdict"]["strength"] in ("decisive", "strong", "weak", "inconclusive")
    for edge in ("onset", "collapse"):
        assert set(fit["edges"][edge]["exponents"]) == {"b", "B", "T"}
        assert len(fit["edges"][edge]["per_cell"]) == len(cells)
    assert set(a.figures) == FIGURES
    for name in FIGURES:
        assert (out / f"{name}.svg").read_text().lstrip().startswith("<?xml")
        w, h = _png_size((out / f"{name}.png").read_bytes())
        assert 500 <= w <= 2500 and 250 <= h <= 2500, (name, w, h)


def test_collapses_are_counted_with_their_period(done: tuple[Analysis, Path]) -> None:
    a, _ = done
    assert (a.runs["n_collapses"] >= 3).all()
    assert (a.runs["collapse_period"] == 400).all()


def test_report_is_one_self_contained_page(done: tuple[Analysis, Path]) -> None:
    a, out = done
    page = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "<link" not in page and "<script src" not in page and "@import" not in page
    imgs = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) == len(FIGURES) == page.count("<img")
    for b64 in imgs:
        _png_size(base64.b64decode(b64))
    for text in ("Verdict", "Best λ per cell", "Scaling-rule fit", "λ_norm", "figcaption"):
        assert text in page
    assert "not identified" in page  # B does not vary: said, not hidden


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_report_renders_in_headless_chromium(done: tuple[Analysis, Path],
                                             tmp_path: Path) -> None:
    exe = _chromium()
    if exe is None:
        missing("Chromium", "apt-get install chromium")
    _, out = done
    flags = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=5000"]
    url = (out / "report.html").resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # What the browser shows: every image decoded (the page's own check), the verdict
    # rendered with text, and a screenshot that is a page of content, not a blank window.
    assert 'data-images-ok="true"' in dom.stdout
    n_imgs = (out / "report.html").read_text().count("<img")
    assert n_imgs and f'data-images-count="{n_imgs}"' in dom.stdout
    assert _verdict_text(dom.stdout), "the rendered page shows no verdict text"
    shot = tmp_path / "shot.png"
    r = subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,3000", url],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    _assert_has_content(shot.read_bytes(), "screenshot", min_ink=0.02)


class _Page(HTMLParser):
    """Text under each h2 heading, and every <img> with its src."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.imgs: list[str] = []
        self._h2: str | None = None
        self._in_h2 = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "h2":
            self._in_h2, self._h2 = True, ""
        elif tag in ("script", "style"):
            self._skip += 1
        elif tag == "img":
            self.imgs.append(dict(attrs).get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2" and self._h2 is not None:
            self._in_h2 = False
            self.sections.setdefault(self._h2.strip(), [])
        elif tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if self._in_h2 and self._h2 is not None:
            self._h2 += data
        elif self._h2 and not self._skip and data.strip():
            self.sections.setdefault(self._h2.strip(), []).append(data.strip())


def _parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    return p


def _verdict_text(page: str) -> str:
    """The text of the section headed 'Verdict' (wording of the verdict itself is the
    analysis's business; that it is there and says something is the report's)."""
    sections = _parse(page).sections
    heads = [h for h in sections if "verdict" in h.lower()]
    return " ".join(" ".join(sections[h]) for h in heads)


def _assert_has_content(png: bytes, name: str, min_ink: float = 0.01) -> None:
    """Decodes fully, and is a picture: many colours, and more than `min_ink` of the
    pixels differ from the background (the most common colour)."""
    img = Image.open(io.BytesIO(png))
    img.load()  # decodes every pixel: a truncated or corrupt PNG raises here
    px = np.asarray(img.convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(px, axis=0, return_counts=True)
    assert len(colours) >= 16, f"{name}: {len(colours)} colours: blank or flat"
    ink = 1 - counts.max() / len(px)
    assert ink >= min_ink, f"{name}: only {ink:.2%} of the pixels differ from the background"


def test_the_page_shows_a_verdict_and_figures_with_content(done: tuple[Analysis, Path]) -> None:
    _, out = done
    page = (out / "report.html").read_text()
    assert len(_verdict_text(page)) >= 40, "the verdict section is missing or empty"
    imgs = _parse(page).imgs
    assert imgs and len(imgs) == page.count("<img"), "no figures, or an <img> not parsed"
    for i, src in enumerate(imgs):
        assert src.startswith("data:image/png;base64,"), f"image {i}: not inline ({src[:40]})"
        _assert_has_content(base64.b64decode(src.split(",", 1)[1], validate=True), f"img {i}")


@pytest.mark.parametrize("which", ["three cells", "seven cells"])
def test_the_dstar_legend_covers_no_plotted_point(done: tuple[Analysis, Path],
                                                  which: str) -> None:
    """The legend's box, in display coordinates, lies outside the axes and contains no
    marker, line vertex or error-bar end of the d* plot."""
    from analysis._panels import plt_
    from analysis._plots import dstar_figure

    a = done[0] if which == "three cells" else analyze(
        make_study((0.5, -0.5, -0.5), seeds=3, seed=21), sensitivity=False)
    fig = dstar_figure(a)
    try:
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        (ax,) = fig.axes
        legends = [*fig.legends, *([ax.get_legend()] if ax.get_legend() else [])]
        assert len(legends) == 1
        box = legends[0].get_window_extent(r)
        assert not box.overlaps(ax.get_window_extent(r)), (box, ax.get_window_extent(r))
        pts = [ax.transData.transform(ln.get_xydata()) for ln in ax.lines
               if len(ln.get_xydata())]
        pts += [ax.transData.transform(seg) for c in ax.collections
                for seg in getattr(c, "get_segments", lambda: [])() if len(seg)]
        xy = np.vstack(pts)
        xy = xy[np.isfinite(xy).all(axis=1)]
        assert len(xy) >= 2 * len(a.cells)
        inside = ((xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1) &
                  (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1))
        assert not inside.any(), xy[inside][:5]
    finally:
        plt_().close(fig)
