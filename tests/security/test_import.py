"""A published directory is someone else's data: `wdsweep import` copies regular files
only, with limits, and nothing it names becomes a path (issue 23)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from sweep.plan.spec import SpecError
from sweep.store import study as st
from sweep.store.publish import import_, safe_name
from tests.security.conftest import one_line


@pytest.fixture
def published(study, tmp_path, wdsweep) -> Path:
    pub = tmp_path / "pub"
    r = wdsweep("export", study, pub, timeout=120)
    assert r.returncode == 0, r.stderr
    return pub


def _manifest(pub: Path, edit) -> None:
    m = json.loads((pub / "published.json").read_text())
    m = edit(m)
    (pub / "published.json").write_text(json.dumps(m))


@pytest.mark.parametrize("name", ["../../evil", "/etc", "..", ".hidden", "a/b", "", None, 7])
def test_a_manifest_name_never_becomes_a_path(published, tmp_path, name):
    _manifest(published, lambda m: {**m, "name": name})
    study = tmp_path / "new"
    import_(published, study)
    state = st.read_state(study)
    for k in ("id", "name"):
        assert "/" not in state[k] and not state[k].startswith(".")
    assert state["name"] == safe_name(name or published.name)


def test_an_imported_study_extends_inside_its_storage(published, tmp_path, ray_local):
    import sweep
    from tests.security.conftest import TINY

    _manifest(published, lambda m: {**m, "name": "../../outside"})
    study = tmp_path / "new"
    import_(published, study)
    out = sweep.run(sweep.parse(TINY.replace("seed = [0, 1]", "seed = [0, 1, 2]")), study)
    assert out["completed"] == 2
    for e in st.read_state(study)["experiments"][1:]:
        assert Path(e["uri"]).resolve().is_relative_to(study.resolve())
    assert not (tmp_path / "outside").exists()


def test_symlinked_tables_are_refused(published, tmp_path, wdsweep):
    secret = tmp_path / "secret.csv"
    secret.write_text("config_hash,status\nabc,completed\n")
    (published / "results.csv.gz").unlink()
    os.symlink(secret, published / "results.csv")
    r = wdsweep("import", published, "--study", tmp_path / "new", timeout=120)
    one_line(r, "results.csv", "not a regular file")
    assert not (tmp_path / "new").exists()


def test_symlinked_specs_are_not_copied(published, tmp_path):
    secret = tmp_path / "secret.toml"
    secret.write_text("password = 'hunter2'")
    os.symlink(secret, published / "specs" / "x.toml")
    os.symlink("..", published / "specs" / "up.toml")
    study = tmp_path / "new"
    import_(published, study)
    assert sorted(p.name for p in (study / "specs").iterdir()) == ["exp-000.toml"]
    assert all(not p.is_symlink() for p in study.rglob("*"))


def test_a_specs_directory_that_is_a_link_is_not_followed(published, tmp_path):
    import shutil

    shutil.rmtree(published / "specs")
    os.symlink("..", published / "specs")
    study = tmp_path / "new"
    import_(published, study)
    assert not (study / "specs").exists()


def test_a_gzip_bomb_stops_at_the_cap(published, tmp_path):
    raw = b"config_hash,status\n" + b"0" * (64 << 20)  # 64 MiB of one line, ~64 KiB gzipped
    (published / "results.csv.gz").write_bytes(gzip.compress(raw, 9))
    _manifest(published, lambda m: {**m, "tables": {}})
    with pytest.raises(SpecError, match="inflates beyond"):
        import_(published, tmp_path / "new", max_bytes=8 << 20)
    assert not (tmp_path / "new").exists()


def test_too_many_rows_are_refused(published, tmp_path):
    with pytest.raises(SpecError, match="more than 2 rows"):
        import_(published, tmp_path / "new", max_rows=2)


@pytest.mark.parametrize("manifest", [[], "x", {"tables": []},
                                      {"tables": {"results.csv": {"rows": 4}}},
                                      {"tables": {"results.csv": {"sha256": 5, "rows": 4}}}])
def test_a_malformed_manifest_is_one_line(published, tmp_path, wdsweep, manifest):
    (published / "published.json").write_text(json.dumps(manifest))
    r = wdsweep("import", published, "--study", tmp_path / "new", timeout=120)
    one_line(r, "published.json")
    assert not (tmp_path / "new").exists()


def test_export_never_republishes_a_planted_link(study, tmp_path, wdsweep):
    secret = tmp_path / "secret.toml"
    secret.write_text("password = 'hunter2'")
    os.symlink(secret, study / "specs" / "x.toml")
    r = wdsweep("export", study, tmp_path / "pub", timeout=120)
    one_line(r, "specs/x.toml", "not a regular file")
    assert not (tmp_path / "pub").exists()


@pytest.mark.parametrize("refine", [
    {"rounds": [], "spec": "name = 'x'"},  # a spec to plan from: never imported
    {"rounds": [], "earlier": [{"rounds": [], "spec": "name = 'x'"}]},  # nor an earlier one
    {"rounds": [], "earlier": [{"rounds": [], "earlier": []}]},  # records nest one deep
    {"rounds": [], "earlier": {"rounds": []}},
    {"rounds": [{"experiment": "../../x"}]},
])
def test_a_planted_refine_record_is_refused_and_makes_no_study(published, tmp_path, refine):
    _manifest(published, lambda m: {**m, "refine": refine})
    with pytest.raises(SpecError) as e:
        import_(published, tmp_path / "new")
    assert "refine record" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "new").exists()
