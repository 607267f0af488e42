"""A gzipped table inflates only so far (a gzip bomb in a published directory)."""

import gzip

import pandas as pd
import pytest

from analysis._capped import open_inflated
from analysis._schema import AnalysisError


def test_a_table_within_the_cap_reads_as_pandas_reads_it(tmp_path):
    p = tmp_path / "t.csv.gz"
    df = pd.DataFrame({"a": range(1000), "b": [0.5] * 1000})
    df.to_csv(p, index=False)
    with open_inflated(p) as f:
        pd.testing.assert_frame_equal(pd.read_csv(f), pd.read_csv(p))


def test_a_gzip_bomb_stops_at_the_cap(tmp_path):
    p = tmp_path / "bomb.csv.gz"
    with gzip.open(p, "wb", compresslevel=9) as f:
        f.write(b"a,b\n")
        for _ in range(64):
            f.write(b"0" * (1 << 20))  # 64 MiB of one field, ~64 KiB compressed
    assert p.stat().st_size < 1 << 20
    with pytest.raises(AnalysisError, match="inflates beyond"), \
            open_inflated(p, limit=8 << 20) as f:
        pd.read_csv(f)


def test_the_analysis_reads_a_published_gzip_bomb_as_one_line(tmp_path, monkeypatch):
    import analysis._capped as capped
    from analysis import analyze

    monkeypatch.setattr(capped, "MAX_INFLATED", 8 << 20)  # the cap, lowered for speed
    p = tmp_path / "results.csv.gz"
    with gzip.open(p, "wb", compresslevel=9) as f:
        f.write(b"config_hash,status\n")
        for _ in range(64):
            f.write(b"0" * (1 << 20))
    with pytest.raises(AnalysisError, match="inflates beyond"):
        analyze(tmp_path)
