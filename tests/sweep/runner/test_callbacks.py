"""User Ray Tune callbacks (sweep.runner.callbacks): one whose own `setup` fails when Tune
starts the experiment is bad input naming run.callbacks, and leaves the study exactly
as it was -- no interrupted experiment, no plan, no Tune directory -- on a real local Ray
(a new study and an extension), on the Python API and from a spec's dotted name."""

from __future__ import annotations

from pathlib import Path

import pytest
from ray.tune import Callback

import sweep
from sweep.plan.spec import SpecError
from sweep.store import study as st
from tests.sweep._helpers import assert_each_member_once
from tests.sweep._helpers import spec as tiny_spec


class FailingSetup(Callback):
    """A third-party tracker that cannot reach its server (its error, raised in setup)."""

    def setup(self, **info):
        raise ConnectionError("tracker.example:443 refused the connection\nsecond line")


class Counting(Callback):
    """A callback that works, to show the guard leaves it as it was."""

    def __init__(self):
        self.setups = self.results = 0

    def setup(self, **info):
        self.setups += 1

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results += 1


class LegacySetup(Callback):
    """The old `setup(self)`: Tune's first call raises TypeError, and Tune calls it again
    without arguments -- a callback that works, whose sweep must not be undone."""

    def setup(self):
        self.was_set_up = True


def _tree(study: Path) -> dict[str, bytes]:
    return {str(p.relative_to(study)): p.read_bytes() for p in sorted(study.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_a_failing_setup_leaves_no_new_study(ray_local, tmp_path):
    study = tmp_path / "study"
    with pytest.raises(SpecError) as e:
        sweep.run(tiny_spec(name="cb1"), study, callbacks=[FailingSetup()])
    assert e.value.key == "run.callbacks"
    msg = str(e.value)
    assert "FailingSetup.setup() failed (ConnectionError: tracker.example:443" in msg
    assert "\n" not in msg and "nothing ran" in msg
    assert not study.exists()


def test_a_failing_setup_leaves_nothing_in_storage_outside_a_new_study(ray_local, tmp_path):
    study, outside = tmp_path / "study", tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(SpecError, match="run.callbacks: FailingSetup.setup"):
        sweep.run(tiny_spec(name="cb4", run=f'storage = "{outside}"'), study,
                  callbacks=[FailingSetup()])
    assert not study.exists() and list(outside.iterdir()) == []  # no empty <id>/ left


def test_a_failing_setup_leaves_an_extended_study_as_it_was_and_a_rerun_works(ray_local,
                                                                             tmp_path):
    study = tmp_path / "study"
    first = tiny_spec(wds=(0.1,), name="cb2")
    ok = Counting()
    sweep.run(first, study, callbacks=[ok])
    assert ok.setups == 1 and ok.results > 0 and "setup" not in vars(ok)  # untouched
    before = _tree(study)
    more = tiny_spec(wds=(0.1, 0.3), name="cb2")
    with pytest.raises(SpecError, match="run.callbacks: FailingSetup.setup"):
        sweep.run(more, study, callbacks=[Counting(), FailingSetup()])
    assert _tree(study) == before  # study.json (its seal), spec.toml, no plan, no Tune dir
    assert [e["name"] for e in st.read_state(study)["experiments"]] == ["exp-000"]
    out = sweep.run(more, study)  # the same extension, without the broken tracker
    assert out["ran"] == 1 and out["completed"] == 2
    assert [e["status"] for e in st.read_state(study)["experiments"]] == ["finished"] * 2
    assert_each_member_once(study, more)


def test_a_dotted_callback_failing_setup_is_one_line_exit_2(tmp_path, wdsweep):
    spec = tmp_path / "s.toml"
    spec.write_text(tiny_spec(name="cb3", run='callbacks = '
                              '["tests.sweep.runner.test_callbacks.FailingSetup"]').text)
    r = wdsweep("run", spec, "--study", tmp_path / "study", "--no-report")
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]  # after the plan's line (and Ray's own)
    assert last.startswith("wdsweep run: error: run.callbacks: FailingSetup.setup() "
                           "failed"), r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "study").exists()


def test_a_legacy_setup_that_tune_retries_is_not_a_failure(ray_local, tmp_path):
    study, cb = tmp_path / "study", LegacySetup()
    s = tiny_spec(wds=(0.1,), name="cb4")
    with pytest.warns(FutureWarning, match="update `setup` method"):
        out = sweep.run(s, study, callbacks=[cb])
    assert out["completed"] == 2 and cb.was_set_up
    assert [e["status"] for e in st.read_state(study)["experiments"]] == ["finished"]
    assert_each_member_once(study, s)
