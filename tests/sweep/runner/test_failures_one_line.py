"""Issue 22 (5): a failing trial is one line on the terminal -- its 12-hex key, its members
(λ, seed, b, config hash), the error's last line and where its traceback is -- with Ray's
own page about it and its `Tuner.restore` advice dropped; the BadInput the user's code
raised inside the trial reaches results.csv whole; a callback that stops Tune is one line."""

from __future__ import annotations

import argparse
import io
import logging
import re
import traceback
from pathlib import Path

import pandas as pd
import pytest
from ray.tune import Callback

from sweep.cli import main as cli
from sweep.runner import raylogs

FAILING = '''
import torch
from torch import nn


def _in_trial() -> bool:
    import ray
    from ray._private.worker import global_worker

    return ray.is_initialized() and global_worker.mode == ray.WORKER_MODE


def task(seed: int, n: int = 64):
    if _in_trial():  # the driver's probe passes; the trial fails
        from trainer.errors import BadInput

        raise BadInput("task_args.n", "the user task refuses to run inside a trial")
    g = torch.Generator().manual_seed(seed)

    def split():
        x = torch.randn(n, 4, generator=g)
        return x, (x.sum(1) > 0).long()

    return {"train": split(), "val": split(), "test": split(), "loss": "cross_entropy",
            "accuracy": "argmax"}


def mlp(n_in: int, n_out: int, width: int = 8):
    return nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, n_out))
'''

SPEC = """
name = "fail"
preset = "tiny"
task = "failing:task"
model = "failing:mlp"
code = ["models"]
[fixed]
batch_size = 16
epochs = 2
[grid]
weight_decay = [0.0, 0.1]
seed = [0]
[run]
pack = 2
max_failures = 0
"""

CALLBACK_SPEC = """
name = "cb"
preset = "tiny"
[fixed]
epochs = 2
train_size = 128
eval_every = 8
[grid]
weight_decay = [0.0]
[run]
max_failures = 0
callbacks = ["tests.sweep.runner.test_failures_one_line.Boom"]
"""

TUNE_TRIAL_ID = re.compile(r"\b[0-9a-f]{5}_[0-9]{5}\b")  # Tune's own id, e.g. 5421c_00000


class Boom(Callback):
    """A tracker that fails once results arrive."""

    def on_trial_result(self, iteration, trials, trial, result, **info):
        raise RuntimeError("tracker down: cannot reach http://mlflow.invalid:5000")


def test_a_failing_user_task_is_one_line_and_its_bad_input_reaches_results_whole(
        ray_address, tmp_path, wdsweep):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "failing.py").write_text(FAILING)
    (tmp_path / "fail.toml").write_text(SPEC)
    study = tmp_path / "study"
    r = wdsweep("run", tmp_path / "fail.toml", "--study", study, "--address", ray_address,
                "--no-report", timeout=600)
    assert r.returncode == 1, r.stderr
    res = pd.read_csv(study / "results.csv", dtype={"config_hash": str})
    assert (res.status == "errored").all() and len(res) == 2
    key = res.trial_id.iloc[0]
    assert re.fullmatch(r"[0-9a-f]{12}", key)

    lines = r.stderr.strip().splitlines()
    failed = [ln for ln in lines if "failed" in ln]
    assert len(failed) == 1, r.stderr
    line = failed[0]
    assert line.startswith(f"wdsweep run: error: trial {key} failed "), line
    for m in res.itertuples():
        assert f"λ={m.weight_decay:.4g} seed={m.seed} b={m.batch_size} {m.config_hash}" in line
    said = "BadInput: task: failing:task(seed=0) raised BadInput: task_args.n: the user " \
        "task refuses to run inside a trial"
    assert f"): {said}; traceback: " in line
    err_txt = Path(re.search(r"traceback: (\S+/error\.txt)", line).group(1))
    assert err_txt.is_file() and err_txt.parent.name == f"trial-{key}"
    assert "results.csv, column error" in line
    # Nothing else of it: no traceback, no Tune trial id, no Tune restore advice.
    assert "Traceback" not in r.stderr and "Tuner.restore" not in r.stderr, r.stderr
    assert not TUNE_TRIAL_ID.search(r.stderr), r.stderr
    assert len(lines) < 12, r.stderr
    # results.csv keeps the whole traceback; the error unpickled as itself (no TypeError
    # rebuilding it), its last line the one the terminal showed.
    tb = res.error.iloc[0]
    assert "Traceback" in tb or "File " in tb
    assert f"trainer.errors.{said}" in tb and "TypeError" not in tb
    assert tb.strip().splitlines()[-1].endswith("refuses to run inside a trial")


def test_a_callback_that_stops_tune_is_one_line_saying_how_to_continue(
        ray_address, tmp_path, wdsweep):
    (tmp_path / "cb.toml").write_text(CALLBACK_SPEC)
    study = tmp_path / "study"
    r = wdsweep("run", tmp_path / "cb.toml", "--study", study, "--address", ray_address,
                "--no-report", timeout=600)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert [ln for ln in lines if "fault:" in ln] == lines[-1:], r.stderr
    assert "Ray Tune stopped: RuntimeError: tracker down: cannot reach " \
        "http://mlflow.invalid:5000 (in on_trial_result, " in lines[-1]
    assert f"`wdsweep resume {study}`" in lines[-1]
    assert "Traceback" not in r.stderr and "Tuner.restore" not in r.stderr, r.stderr


def test_ray_errors_from_inside_tune_are_one_line():
    from ray.tune.error import TuneError

    args = argparse.Namespace(study=Path("studies/x"))
    try:
        try:
            raise ConnectionError("tracker refused the connection")
        except ConnectionError:
            raise TuneError(traceback.format_exc())  # noqa: B904 -- as Tune raises it
    except TuneError as e:
        line = cli._ray_failure(e, args)
    assert line.startswith("Ray Tune stopped: ConnectionError: tracker refused the connection "
                           "(in test_ray_errors_from_inside_tune_are_one_line, ")
    assert line.endswith("then `wdsweep resume studies/x` (-v shows the traceback)")
    text = "Traceback (most recent call last):\n  File \"x\", line 1\nValueError: bad\n"
    line = cli._ray_failure(TuneError(text), args)  # no cause: the last line of Tune's text
    assert "\n" not in line and line.startswith("Ray Tune stopped: TuneError: ValueError: bad;")


@pytest.fixture
def ray_handler():
    """A handler on Ray's logger, as Ray's own one writes to stderr."""
    out = io.StringIO()
    h = logging.StreamHandler(out)
    lg = logging.getLogger("ray.tune")
    lg.addHandler(h)
    yield lg, out
    lg.removeHandler(h)
    raylogs.show_ray_logs(False)


def _emit(lg: logging.Logger) -> None:
    lg.error("Trial task failed for trial trial-36c3a18dc9f1\nTraceback (most recent call "
             "last):\n  File \"x\", line 1\nRuntimeError: boom")
    lg.warning("Experiment has been interrupted, but the most recent state was saved.\n"
               "Resume experiment with: Tuner.restore(path=\"/x\", trainable=...)")
    lg.error("Trials did not complete: [trial-36c3a18dc9f1]")
    lg.warning("Something else\nwith a second line")


def test_ray_records_are_one_line_and_the_restore_hint_is_dropped(ray_handler):
    lg, out = ray_handler
    with raylogs.quiet_ray_records():
        _emit(lg)
    assert out.getvalue().splitlines() == ["Something else [... --ray-logs shows the rest]"]
    out.seek(0)
    out.truncate()
    _emit(lg)  # taken off again after the sweep: Ray's records as Ray writes them
    assert "Tuner.restore" in out.getvalue() and "Traceback" in out.getvalue()


def test_ray_logs_shows_ray_whole_but_never_its_restore_advice(ray_handler):
    lg, out = ray_handler
    raylogs.show_ray_logs(True)
    with raylogs.quiet_ray_records():
        _emit(lg)
    text = out.getvalue()
    assert "Tuner.restore" not in text and "Resume experiment" not in text
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom" in text
    assert "Something else\nwith a second line" in text
