"""Issue 12: bad input, damaged studies and faults get one line and the right exit
status; nothing is launched, written or lost."""

import os
import time
from pathlib import Path

import pandas as pd
import pytest

import sweep
from sweep.cli import main as cli
from sweep.plan.spec import SpecError, parse
from tests.sweep._helpers import one_line_error, spec_text


@pytest.mark.parametrize("edit,field", [
    (dict(fixed="lambda_norm = 0.1"), "grid.weight_decay"),  # two decay units
    (dict(grid="weight_decay = {log = [1.0, 1e-4, 5]}"), "grid.weight_decay"),  # hi, lo
    (dict(grid="weight_decay = [0.1, 0.10000000000001]"), "grid.weight_decay"),  # one run
    (dict(grid="weight_decay = [1e308]"), "grid.weight_decay"),  # absurd decay
    (dict(grid="seed = [0, 1e30]"), "grid.seed"),
])
def test_bad_specs_are_refused_with_the_field_named(tmp_path, wdsweep, edit, field):
    f = tmp_path / "s.toml"
    f.write_text(spec_text(**edit))
    r = wdsweep("run", f, "--study", tmp_path / "study", "--dry-run", timeout=120)
    assert r.returncode == 2
    one_line_error(r, field)
    assert not (tmp_path / "study").exists()


def test_compute_and_grid_size_bounds_need_yes_and_a_huge_grid_is_answered_at_once(
        tmp_path, wdsweep):
    f = tmp_path / "s.toml"
    f.write_text(spec_text(fixed="steps = 1000000000000").replace("epochs = 2\n", ""))
    r = wdsweep("run", f, "--study", tmp_path / "study", "--dry-run", timeout=120)
    assert r.returncode == 2 and "--yes" in one_line_error(r, "core-hours")
    r = wdsweep("run", f, "--study", tmp_path / "study", "--dry-run", "--yes", timeout=120)
    assert r.returncode == 0, r.stderr
    big = "weight_decay = {log = [1e-6, 1.0, 1000]}\nseed = {lin = [0, 999, 1000]}"
    f.write_text(spec_text(grid=big))
    t = time.monotonic()
    r = wdsweep("run", f, "--study", tmp_path / "study", "--dry-run", "--yes", timeout=120)
    assert r.returncode == 2 and time.monotonic() - t < 30
    one_line_error(r, "grid", "1,000,000 members")
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("sets,field", [
    (["width=100000"], "--set width"), (["seed=1e30"], "seed"), (["seed=0,0"], "--set"),
    (["weight_decay=1e308"], "--set weight_decay"), (["steps=1000000000000"], "--set steps"),
])
def test_bad_train_sets_exit_2_and_leave_no_out(tmp_path, wdsweep, sets, field):
    out = tmp_path / "out"
    args = [a for s in sets for a in ("--set", s)]
    r = wdsweep("train", "--preset", "tiny", *args, "--out", out, timeout=120)
    assert r.returncode == 2
    one_line_error(r, field)
    assert not out.exists()


@pytest.fixture
def done_study(ray_local, tmp_path):
    s = parse(spec_text())
    study = tmp_path / "study"
    sweep.run(s, study)
    return study


def _tables(study: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    res = pd.read_csv(study / "results.csv", dtype={"config_hash": str})
    hist = pd.read_csv(study / "history.csv", dtype={"config_hash": str})
    return (res.set_index("config_hash").sort_index(),
            hist.sort_values(["config_hash", "step"]).reset_index(drop=True))


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage-state", "history"])
def test_a_damaged_study_stops_every_command_and_repair_rebuilds_it(done_study, tmp_path,
                                                                    wdsweep, damage):
    study = done_study
    res0, hist0 = _tables(study)
    name = {"truncate": "results.csv", "empty": "results.csv", "garbage-state": "study.json",
            "history": "history.csv"}[damage]
    p = study / name
    if damage == "truncate":
        p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    elif damage == "empty":
        p.write_bytes(b"")
    elif damage == "garbage-state":
        p.write_bytes(b"{not json")
    else:
        lines = p.read_text().splitlines(keepends=True)
        p.write_text("".join(lines[:-3]))  # whole rows cut: still a valid CSV
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(spec_text())
    for args in (["status", study], ["run", spec_file, "--study", study, "--dry-run"],
                 ["analyze", study, "--out", tmp_path / "rep"], ["resume", study]):
        r = wdsweep(*args, timeout=300)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        one_line_error(r, name, "wdsweep repair")
    assert not (tmp_path / "rep").exists()

    r = wdsweep("repair", study, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    st = sweep.status(study)
    assert (st["total"], st["completed"], st["pending"]) == (4, 4, 0)
    res, hist = _tables(study)
    last = [c for c in res0.columns if c.startswith("last_")]
    pd.testing.assert_frame_equal(res[last], res0[last])  # the same numbers, bit for bit
    pd.testing.assert_frame_equal(hist, hist0)
    r = wdsweep("repair", study, timeout=120)
    assert r.returncode == 0 and "nothing to repair" in r.stdout


@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MiB file system (tmpfs) at tmp_path/study; needs root and mount."""
    import subprocess

    d = tmp_path / "study"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0 or not os.path.ismount(d):
        pytest.skip(f"cannot mount a small file system here: {r.stderr.strip()}")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def _fill_when(path: Path, full: Path, holding: bytes = b"", timeout: float = 120) -> None:
    """Once `path` exists (and holds `holding`), fill its file system (the disk runs
    full mid-sweep)."""
    import threading

    def there() -> bool:
        try:
            return path.is_dir() or holding in path.read_bytes()
        except OSError:  # not yet written
            return False

    def fill():
        t = time.monotonic()
        while not there() and time.monotonic() - t < timeout:
            time.sleep(0.02)
        if not os.path.ismount(full.parent):  # never fill a real disk
            return
        with open(full, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass  # ENOSPC: full

    threading.Thread(target=fill, daemon=True).start()


@pytest.mark.parametrize("storage", ["elsewhere", "in the study"])
def test_a_full_disk_mid_sweep_is_a_one_line_fault_and_resume_finishes(
        ray_local, small_disk, tmp_path, capsys, storage):
    study = small_disk
    full = study / "filler"
    spec_file = tmp_path / "s.toml"
    store = tmp_path / "store"  # elsewhere: the study's own writes hit the limit first
    text = spec_text(epochs=6)
    if storage == "elsewhere":
        text = text.replace("[run]", f"[run]\nstorage = '{store}'")
    spec_file.write_text(text)
    # Full once the experiment is recorded: mid-sweep (a disk full before it is recorded
    # is the next test's)
    _fill_when(study / "study.json", full, holding=b'"exp-000"')
    rc = cli.main(["run", str(spec_file), "--study", str(study), "--no-report"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    # Progress and messages are on stderr too; the fault is one line, the last.
    assert [ln for ln in err if "fault:" in ln] == err[-1:], err
    assert "No space left" in err[-1] and "wdsweep resume" in err[-1]
    assert "Traceback" not in "\n".join(err) and len(err) < 30, err  # Ray's: one line each
    assert not [p for p in study.iterdir() if ".tmp-" in p.name]  # no torn temporary file
    full.unlink()
    out = sweep.resume(study)
    assert out["unfinished_trials"] == 0
    st = sweep.status(study)
    assert (st["completed"], st["pending"], st["errored"]) == (4, 0, 0)


@pytest.mark.parametrize(("when", "storage"), [("before the run", "in the study"),
                                               ("once planned", "in the study"),
                                               ("once planned", "elsewhere")])
def test_a_disk_full_at_the_start_says_the_command_that_then_finishes_the_study(
        ray_local, small_disk, tmp_path, capsys, storage, when):
    """Whenever the disk fills, the one line names the next command: the same one if
    the experiment was not recorded (and nothing of it is left), else `wdsweep resume`."""
    study = small_disk
    full = study / "filler"
    spec_file = tmp_path / "s.toml"
    text = spec_text(epochs=2)
    if storage == "elsewhere":
        text = text.replace("[run]", f"[run]\nstorage = '{tmp_path / 'store'}'")
    spec_file.write_text(text)
    if when == "before the run":
        _fill_when(study, full)
        time.sleep(1)
    else:  # between the plan and its entry in study.json, or just after
        _fill_when(study / "plans" / "exp-000.json", full)
    args = ["run", str(spec_file), "--study", str(study), "--no-report"]
    rc = cli.main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert [ln for ln in err if "fault:" in ln] == err[-1:], err
    assert "No space left" in err[-1] and "Traceback" not in "\n".join(err), err
    assert not [p for p in study.rglob("*") if ".tmp-" in p.name]
    recorded = (study / "study.json").exists() and b'"exp-000"' in (
        study / "study.json").read_bytes()
    if recorded:
        assert f"`wdsweep resume {study}`" in err[-1], err
    else:
        assert "nothing was started or recorded" in err[-1], err
        assert "run the same command again" in err[-1], err
        assert not list(study.glob("plans/*")) and not list(study.glob("specs/*"))
    full.unlink()
    if recorded:
        assert sweep.resume(study)["unfinished_trials"] == 0
    else:
        assert cli.main(args) == 0
    st = sweep.status(study)
    assert (st["completed"], st["pending"], st["errored"]) == (4, 0, 0)


@pytest.mark.parametrize("cmd", ["run", "resume"])
def test_a_full_disk_before_an_extension_or_resume_leaves_the_study_as_it_was(
        ray_local, small_disk, tmp_path, capsys, cmd):
    study = small_disk
    one, two = tmp_path / "one.toml", tmp_path / "two.toml"
    one.write_text(spec_text(grid="weight_decay = [0.0]\nseed = [0, 1]"))
    two.write_text(spec_text())
    assert cli.main(["run", str(one), "--study", str(study), "--no-report"]) == 0
    if cmd == "resume":  # an interrupted experiment to resume: its entry says running
        state = sweep.store.study.read_state(study)
        state["experiments"][0]["status"] = "running"
        sweep.store.study.write_state(study, state)
    before = {p.relative_to(study): p.read_bytes() for p in study.rglob("*") if p.is_file()}
    full = study / "filler"
    _fill_when(study, full)
    time.sleep(1)
    args = (["run", str(two), "--study", str(study), "--no-report"] if cmd == "run"
            else ["resume", str(study), "--no-report"])
    capsys.readouterr()
    assert cli.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert [ln for ln in err if "fault:" in ln] == err[-1:], err
    assert "No space left" in err[-1] and "run the same command again" in err[-1], err
    after = {p.relative_to(study): p.read_bytes() for p in study.rglob("*")
             if p.is_file() and p != full}
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert changed <= {Path(".lock")}, changed  # nothing written, nothing lost
    full.unlink()
    assert cli.main(args) == 0
    st = sweep.status(study)
    assert st["completed"] == (4 if cmd == "run" else 2) and st["pending"] == 0


def test_extending_with_a_member_equal_to_a_done_one_is_refused(ray_local, tmp_path):
    with pytest.raises(SpecError) as e:
        sweep.run(parse(spec_text(grid="seed = [0, 0]")), tmp_path / "s", dry_run=True)
    assert e.value.key in ("grid.seed", "grid")


@pytest.mark.slow
def test_ctrl_c_before_any_trial_starts_exits_130_and_resume_finishes(ray_address, tmp_path,
                                                                      cli_env, wdsweep):
    import signal
    import subprocess
    import sys

    spec_file, study = tmp_path / "s.toml", tmp_path / "study"
    spec_file.write_text(spec_text(epochs=30))
    p = subprocess.Popen([sys.executable, "-m", "sweep.cli", "run", spec_file, "--study", study,
                          "--address", ray_address, "--no-report"], env=cli_env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t = time.monotonic()
    while not (study / "study.json").exists() and time.monotonic() - t < 120:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)  # Tune has trials pending that never started
    out = p.communicate(timeout=300)[0]
    assert p.returncode == 130 and "Traceback" not in out, out
    r = wdsweep("resume", study, "--address", ray_address, "--no-report", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    st = sweep.status(study)
    assert (st["total"], st["completed"], st["pending"]) == (4, 4, 0)


def test_resume_rebuilds_a_missing_or_stale_report(done_study, wdsweep):
    study = done_study  # sweep.run in-process writes no report: as if killed during it
    assert not (study / "report" / "report.html").exists()
    r = wdsweep("resume", study, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    html = study / "report" / "report.html"
    assert html.exists() and "nothing to resume" in r.stderr
    os.utime(study / "results.csv")  # results newer than the report: stale
    os.utime(html, (1, 1))
    r = wdsweep("resume", study, timeout=600)
    assert r.returncode == 0 and html.stat().st_mtime > 1
