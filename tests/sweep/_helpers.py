"""Plain helpers the sweep tests share (fixtures are in conftest.py): the tiny specs, the
one-member-once check, a CLI driver in a subprocess, waiting for a condition, and the
directory of a study's experiment. Asserts here are rewritten by pytest (tests/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from sweep.plan.packs import make_plan
from sweep.plan.spec import Spec, parse

# The sweep tests' tiny spec: 2 λ × 2 seeds in packs of 2, an evaluation and a checkpoint
# every 8 steps (runner/test_sweep.py, test_live.py, store/test_publish.py, ...).
SPEC = """
name = "{name}"
preset = "tiny"
[fixed]
epochs = {epochs}
train_size = 256
eval_every = 8
[grid]
weight_decay = {wds}
seed = [0, 1]
[run]
pack = 2
checkpoint_every = {ckpt}
max_failures = 0
{run}
"""


def spec(wds=(0.0, 0.1), epochs=4, ckpt=8, name="t", run="") -> Spec:
    """`run`: more lines for [run] (storage, callbacks)."""
    return parse(SPEC.format(wds=list(wds), epochs=epochs, ckpt=ckpt, name=name, run=run))


def assert_each_member_once(study: Path, s: Spec) -> pd.DataFrame:
    """Every member of `s` completed with exactly one results.csv row, and its history
    once, in step order; returns results.csv."""
    res = pd.read_csv(study / "results.csv")
    want = {m.config_hash() for m in make_plan(s).members}
    assert set(res.config_hash) == want and len(res) == len(want)
    assert (res.status == "completed").all()
    hist = pd.read_csv(study / "history.csv")
    per = hist.groupby("config_hash").step.apply(list)
    steps = make_plan(s).members[0].total_steps
    expected = list(range(8, steps + 1, 8)) + ([] if steps % 8 == 0 else [steps])
    assert all(v == expected for v in per), "each member's history appears once, in order"
    return res


# The hardening tests' tiny study (cli/test_hardening.py; the session's `finished_study`
# and the security suite's TINY): 2 λ × 2 seeds, two packs, 2 epochs.
TINY = """
name = "h"
preset = "tiny"
[fixed]
epochs = {epochs}
train_size = 256
eval_every = 8
{fixed}
[grid]
{grid}
[run]
pack = 2
checkpoint_every = 8
max_failures = 0
"""


def spec_text(grid="weight_decay = [0.0, 0.1]\nseed = [0, 1]", fixed="", epochs=2) -> str:
    return TINY.format(grid=grid, fixed=fixed, epochs=epochs)


def driver(args, env: dict[str, str]) -> subprocess.Popen:
    """`python -m sweep.cli ARGS` running in the background, stdout and stderr together."""
    return subprocess.Popen([sys.executable, "-m", "sweep.cli", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(pred: Callable[[], bool], timeout: float = 180) -> bool:
    """Poll `pred` every 0.2 s until it holds (True) or `timeout` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def exp_dir(study: Path, name: str = "exp-000") -> Path:
    """The storage directory of the study's experiment `name`, as study.json records it."""
    (e,) = [e for e in json.loads((study / "study.json").read_text())["experiments"]
            if e["name"] == name]
    return Path(e["uri"])


def one_line_error(r, *needles) -> str:
    """The CLI's error: one stderr line holding every needle, no traceback."""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def assert_run_refused(wdsweep, tmp_path: Path, text: str, needle: str,
                       timeout: float = 600) -> None:
    """`wdsweep run` of a bad spec: exit 2, one line naming `needle`, no study written."""
    spec_file, study = tmp_path / "s.toml", tmp_path / "study"
    spec_file.write_text(text)
    r = wdsweep("run", spec_file, "--study", study, timeout=timeout)
    assert r.returncode == 2, r.stderr
    one_line_error(r, needle)
    assert not study.exists()
