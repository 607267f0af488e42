"""Published tables: export a study, import it on "another machine", extend it there; at
unit level, what export writes and what import refuses."""

import gzip
import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

import sweep
from sweep.plan.spec import SpecError
from sweep.store import study as st
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


# Unit level: what export writes and what import refuses, on copies of the published files.


def test_export_is_the_same_bytes_twice_and_its_manifest_checks_the_plain_tables(
        published, tmp_path) -> None:
    study, pub = published
    m = export(study, tmp_path / "again")
    for name in ("results.csv", "history.csv"):
        assert (tmp_path / "again" / f"{name}.gz").read_bytes() == \
            (pub / f"{name}.gz").read_bytes()  # gzip mtime 0: reproducible
        data = (study / name).read_bytes()
        assert m["tables"][name] == {"rows": len(pd.read_csv(study / name)),
                                     "sha256": hashlib.sha256(data).hexdigest()}
    assert m["experiments"] == [{"name": "exp-000", "status": "finished"}]
    assert sorted(p.name for p in (tmp_path / "again" / "specs").iterdir()) == \
        sorted(p.name for p in (study / "specs").glob("*.toml"))


def test_export_refuses_a_study_without_results_and_a_destination_it_cannot_use(
        published, tmp_path) -> None:
    study, _ = published
    with pytest.raises(SpecError, match="nothing to export"):
        export(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpecError, match="is not a directory") as e:
        export(study, tmp_path / "file")
    assert e.value.key == "dest"
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "specs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SpecError, match="symbolic link"):
        export(study, tmp_path / "linked")
    assert not (tmp_path / "out").exists() and not (tmp_path / "elsewhere").exists()


def test_plain_tables_without_a_manifest_import_as_one_imported_experiment(published,
                                                                           tmp_path) -> None:
    study, _ = published
    src = tmp_path / "plain-tables"
    src.mkdir()
    for name in ("results.csv", "history.csv"):
        (src / name).write_bytes((study / name).read_bytes())
    new = tmp_path / "new"
    out = import_(src, new)
    res = pd.read_csv(study / "results.csv", dtype={"config_hash": str})
    assert out == {"members": 4, "completed": 4,
                   "history_rows": len(pd.read_csv(study / "history.csv"))}
    state = st.check(new)  # sealed, its tables recorded
    (e,) = state["experiments"]
    assert (e["name"], e["status"], e["trials"]) == ("imported", "imported", [])
    assert e["members"] == res.config_hash.tolist() and e["uri"] == str(src.resolve())
    assert state["name"] == "plain-tables"
    assert sweep.status(new)["completed"] == 4


@pytest.mark.parametrize("results, match", [
    (None, "has no results.csv"),
    (b"", "unreadable CSV"),
    (b"config_hash,status\n\xff\xfe,completed\n", "unreadable CSV"),
    (b"config_hash,step\nabc123,8\n", r"missing \['config_hash', 'status'\] columns"),
    (b"config_hash,status\n../../x,completed\n", "not a hex id"),
    (b"config_hash,status\n,completed\n", "not a hex id"),
], ids=["none", "empty", "not-utf8", "no-status", "path-hash", "no-hash"])
def test_import_refuses_tables_that_are_not_a_studys_and_writes_nothing(
        tmp_path, results, match) -> None:
    src = tmp_path / "src"
    src.mkdir()
    if results is not None:
        (src / "results.csv").write_bytes(results)
    with pytest.raises(SpecError, match=match):
        import_(src, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    with pytest.raises(SpecError, match="not a directory of published tables"):
        import_(src / "results.csv", tmp_path / "new")


def test_a_new_experiment_never_takes_an_imported_name(published, tmp_path) -> None:
    """An import of a study with several experiments, extended: the new experiment is
    named past the source's (before, exp-001 after an import overwrote the imported
    specs/exp-001.toml and gave 'exp-001' two meanings in one table)."""
    _, pub = published
    one = tmp_path / "one"
    import_(pub, one)
    sweep.run(spec(wds=(0.0, 0.1, 0.3)), one)  # the source's exp-000, then exp-001 here
    assert [e["name"] for e in st.read_state(one)["experiments"]] == ["imported", "exp-001"]
    export(one, tmp_path / "pub2")
    two = tmp_path / "two"
    import_(tmp_path / "pub2", two)
    assert st.read_state(two)["experiments"][0]["last"] == "exp-001"
    before = {p.name: p.read_bytes() for p in (two / "specs").iterdir()}
    s = spec(wds=(0.0, 0.1, 0.3, 1.0))
    sweep.run(s, two)
    assert [e["name"] for e in st.read_state(two)["experiments"]] == ["imported", "exp-002"]
    for name, data in before.items():  # the imported records are as they came
        assert (two / "specs" / name).read_bytes() == data
    res = assert_each_member_once(two, s)
    assert res["experiment"].value_counts().to_dict() == {"exp-000": 4, "exp-001": 2,
                                                          "exp-002": 2}


def _plain_tables(pub: Path, tmp_path: Path, experiment) -> Path:
    """The published results as a plain results.csv whose experiment column is given."""
    src = tmp_path / "plain"
    src.mkdir()
    res = pd.read_csv(pub / "results.csv.gz", dtype={"config_hash": str})
    res["experiment"] = experiment
    res.to_csv(src / "results.csv", index=False)
    return src


def test_plain_tables_name_their_experiments_from_the_column(published, tmp_path) -> None:
    """Without a manifest or specs, the tables' experiment column is what the source used."""
    src = _plain_tables(published[1], tmp_path, ["exp-000", "exp-007", "exp-007", "not-a-name"])
    import_(src, tmp_path / "new")
    state = st.read_state(tmp_path / "new")
    assert state["experiments"][0]["last"] == "exp-007"
    from sweep.store.names import next_experiment
    assert next_experiment(tmp_path / "new", state) == "exp-008"


@pytest.mark.parametrize("last", ["../exp-001", "exp-1", "exp-001\n", "exp-\u0661\u0662\u0663",
                                  7, None])
def test_a_planted_last_name_is_a_damaged_record(published, tmp_path, last) -> None:
    _, pub = published
    new = tmp_path / "new"
    import_(pub, new)
    state = json.loads((new / "study.json").read_text())
    state["experiments"][0]["last"] = last
    st.write_state(new, state)
    with pytest.raises(st.StudyDamaged, match="last name"):
        st.check(new)


def test_no_name_left_is_one_line(published, tmp_path) -> None:
    from sweep.store.names import next_experiment
    _, pub = published
    new = tmp_path / "new"
    import_(pub, new)
    state = st.read_state(new)
    state["experiments"][0]["last"] = "exp-999999"
    with pytest.raises(SpecError, match="no name is left"):
        next_experiment(new, state)


def test_an_import_without_room_for_a_new_name_is_refused(published, tmp_path) -> None:
    src = _plain_tables(published[1], tmp_path, "exp-999999")
    with pytest.raises(SpecError, match="exp-999999.*allowed: exp-000 ... exp-999998"):
        import_(src, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_study_imported_before_last_was_recorded_reads_the_column(published,
                                                                    tmp_path) -> None:
    """An older import has no `last`: the tables' experiment column stands in."""
    src = _plain_tables(published[1], tmp_path, "exp-004")
    new = tmp_path / "new"
    import_(src, new)
    state = st.read_state(new)
    del state["experiments"][0]["last"]
    from sweep.store.names import next_experiment
    assert next_experiment(new, state) == "exp-005"
    state["refine"] = {"rounds": [{"experiment": "exp-011", "points": 1}]}  # an imported record
    assert next_experiment(new, state) == "exp-012"
