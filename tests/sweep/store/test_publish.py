"""Published tables: export a study, import it on "another machine", extend it there."""

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

import sweep
from sweep.plan.spec import SpecError
from sweep.store.publish import export, import_
from tests.sweep._helpers import assert_each_member_once, spec


@pytest.fixture(scope="module")
def published(ray_local, tmp_path_factory) -> tuple[Path, Path]:
    """A real study of 4 members, exported."""
    root = tmp_path_factory.mktemp("pub")
    sweep.run(spec(wds=(0.0, 0.1)), root / "study")
    export(root / "study", root / "pub")
    return root / "study", root / "pub"


def test_export_writes_gzipped_tables_equal_to_the_studys(published) -> None:
    study, pub = published
    for name in ("results.csv", "history.csv"):
        assert gzip.decompress((pub / f"{name}.gz").read_bytes()) == (study / name).read_bytes()
    m = json.loads((pub / "published.json").read_text())
    assert m["tables"]["results.csv"]["rows"] == 4
    assert (pub / "specs").is_dir()
    assert not list(pub.rglob("*.pt")) and not list(pub.rglob("*.pkl"))  # no checkpoints


def test_an_imported_study_extends_without_rerunning(published, tmp_path) -> None:
    _, pub = published
    new = tmp_path / "elsewhere"
    out = import_(pub, new)
    assert out == {"members": 4, "completed": 4, "history_rows": out["history_rows"]}
    s = spec(wds=(0.0, 0.1, 0.3))  # one more λ: 2 new members
    ran = sweep.run(s, new)
    assert ran["completed"] == 2
    res = assert_each_member_once(new, s)
    old = pd.read_csv(pub / "results.csv.gz").set_index("config_hash")
    kept = res.set_index("config_hash").loc[old.index]
    pd.testing.assert_series_equal(kept["last_test_acc"], old["last_test_acc"])
    assert sweep.status(new)["completed"] == 6


def test_import_refuses_edited_tables_a_used_directory_and_duplicates(published,
                                                                      tmp_path) -> None:
    _, pub = published
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("results.csv.gz", "history.csv.gz", "published.json"):
        (bad / f).write_bytes((pub / f).read_bytes())
    lines = gzip.decompress((bad / "results.csv.gz").read_bytes()).splitlines(keepends=True)
    (bad / "results.csv.gz").write_bytes(gzip.compress(b"".join(lines[:-1])))
    with pytest.raises(SpecError, match="truncated or edited"):
        import_(bad, tmp_path / "s1")
    assert not (tmp_path / "s1").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(SpecError, match="not empty"):
        import_(pub, tmp_path / "used")
    dup = tmp_path / "dup"
    dup.mkdir()
    res = pd.read_csv(pub / "results.csv.gz", dtype={"config_hash": str})
    pd.concat([res, res.iloc[:1]]).to_csv(dup / "results.csv", index=False)
    with pytest.raises(SpecError, match="appears twice"):
        import_(dup, tmp_path / "s2")


def test_cli_import_of_the_committed_seed_study_plans_nothing_to_run(wdsweep, tmp_path) -> None:
    """docs/data/seed_lambda (run on a GPU) imports here and its spec has nothing left."""
    root = Path(__file__).resolve().parents[3]
    r = wdsweep("import", root / "docs/data/seed_lambda", "--study", tmp_path / "s", timeout=120)
    assert r.returncode == 0, r.stderr
    r = wdsweep("run", root / "studies/seed_lambda.toml", "--study", tmp_path / "s",
                "--dry-run", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "42 already done" in r.stdout + r.stderr and "0 trials to run" in r.stdout + r.stderr
