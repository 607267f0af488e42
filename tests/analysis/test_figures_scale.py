"""Figures at 400 cells: a handful of files, drawn in bounded time, that decode with content."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from analysis import analyze
from tests.analysis.foreign import foreign_table

PNG_BOUND_S = 240  # generous: a shared 2-core box; the 436 s of issue 19 is the failure


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> tuple[Path, float]:
    """400 cells (20 b × 20 T), 8 λ, 1 seed, 10 evaluations: 3,200 runs."""
    df, _ = foreign_table(bs=tuple(int(8 * 1.25 ** i) for i in range(20)),
                          Ts=tuple(10.0 * 1.3 ** i for i in range(20)),
                          lams=np.geomspace(1e-3, 4.5, 8), seeds=1, n_evals=10)
    out = tmp_path_factory.mktemp("fig400")
    t = time.perf_counter()
    a = analyze(df, out)
    assert len(a.cells) == 400
    return out, time.perf_counter() - t


def test_400_cells_give_a_handful_of_figures_in_bounded_time(many) -> None:
    out, seconds = many
    pngs = sorted(out.glob("*.png"))
    assert 3 <= len(pngs) <= 6, pngs
    assert seconds < PNG_BOUND_S, seconds
    for p in pngs:  # an SVG beside each, kept small by rasterizing the dense layers
        assert p.with_suffix(".svg").stat().st_size < 4e6, p


def test_400_cell_figures_decode_with_content(many) -> None:
    from PIL import Image

    out, _ = many
    for p in sorted(out.glob("*.png")):
        with Image.open(p) as im:
            im.load()
            w, h = im.size
            px = np.asarray(im.convert("L"), dtype=float)
        assert w <= 2400 and h <= 1200, (p.name, im.size)  # no legend of 400 entries
        # Not blank: a real share of the pixels is ink, and they vary.
        assert (px < 200).mean() > 0.01 and px.std() > 10, p.name
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(list(out.glob("*.png")))


def test_no_figures_writes_the_report_without_them(tmp_path: Path) -> None:
    df, _ = foreign_table(bs=(16, 64), Ts=(25.0, 100.0), seeds=1, n_evals=10)
    a = analyze(df, tmp_path, figures=False)
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.svg"))
    assert (tmp_path / "report.html").exists() and (tmp_path / "lambda_star.csv").exists()
    assert any("figures not drawn" in w for w in a.warnings)


def test_a_large_analysis_writes_its_per_run_tables_as_parquet_too(many) -> None:
    import pandas as pd

    out, _ = many
    for stem in ("summary", "curves"):
        pq, csv = pd.read_parquet(out / f"{stem}.parquet"), pd.read_csv(out / f"{stem}.csv")
        assert list(pq.columns) == list(csv.columns) and len(pq) == len(csv) > 0
        num = [c for c in csv.columns if pd.api.types.is_numeric_dtype(csv[c])]
        pd.testing.assert_frame_equal(pq[num].reset_index(drop=True), csv[num],
                                      check_dtype=False)
