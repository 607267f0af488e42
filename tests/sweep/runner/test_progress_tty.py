"""Issue 22 (7): progress in place on a terminal, plain and sparse elsewhere, and an ETA
only from measured step rates. Tune's callback hooks driven with stand-in trials and a
clock the test sets (no Ray started)."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from sweep.runner import progress as pg
from sweep.runner import statusline
from sweep.store.study import STATUS


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def __init__(self, tty: bool = True) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class FakeTrial:
    """What Progress reads of a Tune trial."""

    def __init__(self, n: int, key: str, members: int = 2, total: int = 1000) -> None:
        self.trial_id, self.status, self.last_result = f"abcde_{n:05d}", "PENDING", {}
        self.total = total
        table = {f"m{k:02d}": {"weight_decay": 0.1 * k, "seed": k, "batch_size": 32,
                               "config_hash": f"{n:02d}{k:014x}"} for k in range(members)}
        self.config = {"trial": {"key": key, "members": [{}] * members, "table": table}}
        self.path = f"/storage/exp-000/trial-{key}"
        self.error_file = None


def report(p: pg.Progress, trials, trial: FakeTrial, step: int, secs: float) -> None:
    trial.status = "RUNNING"
    trial.last_result = {"step": step, "total_steps": trial.total, "train_seconds": secs}
    p.on_trial_result(0, trials, trial, trial.last_result)


@pytest.fixture
def info_logs(caplog):
    caplog.set_level(logging.INFO, logger="sweep")
    return caplog


def make(tmp_path, trials, stream, clock=None):
    clock = clock or Clock()
    members = sum(len(t.config["trial"]["members"]) * t.total for t in trials)
    return pg.Progress(tmp_path, "exp-000", members, clock=clock, stream=stream), clock


def test_no_eta_until_a_rate_is_measured_then_steps_left_over_the_measured_rate(
        tmp_path, info_logs):
    trials = [FakeTrial(0, "a" * 12), FakeTrial(1, "b" * 12)]
    p, clock = make(tmp_path, trials, Tty(False))
    clock.t += 40  # Ray and the trials start (40 s); the old ETA counted this as training
    for n, secs in enumerate((30.0, 31.0)):  # two evaluations: not yet a rate
        for t in trials:
            report(p, trials, t, 10 * (n + 1), secs)
        assert p.eta_s(trials) is None and "ETA" not in p.line(trials)
    for t in trials:  # the third: 10 steps/s each, 2 members each -> 40 member-steps/s
        report(p, trials, t, 30, 32.0)
    left = 4000 - 2 * 2 * 30
    assert p.eta_s(trials) == pytest.approx(left / 40)
    assert re.search(r"\| ETA 1:37$", p.line(trials)), p.line(trials)
    assert "40/s" in p.line(trials) and "3% of 4,000 member-steps" in p.line(trials)
    # a running trial not measured yet counts at the measured ones' mean
    third = FakeTrial(2, "c" * 12)
    trials.append(third)
    third.status = "RUNNING"
    p.member_steps += 2000
    assert p.eta_s(trials) == pytest.approx((left + 2000) / 60)
    # a retried trial (its step falls back) is measured again from its restart
    report(p, trials, trials[0], 10, 1.0)
    assert p.rates[trials[0].trial_id].evals == 1


def test_a_terminal_gets_one_line_rewritten_in_place_and_messages_clear_it(tmp_path, info_logs):
    tty = Tty()
    handler = logging.StreamHandler(tty)  # as the CLI's handler on stderr
    logging.getLogger().addHandler(handler)
    try:
        trials = [FakeTrial(0, "a" * 12)]
        p, clock = make(tmp_path, trials, tty)
        for step in range(10, 60, 10):
            clock.t += 1.0
            report(p, trials, trials[0], step, step / 10)
            p.on_step_end(0, trials)
        drawn = tty.getvalue()
        assert drawn.count("\r") >= 5 and "\n" not in drawn and drawn.endswith("\x1b[K")
        assert not [r for r in info_logs.records if r.name == "sweep.runner.progress"]
        logging.getLogger("sweep.test").warning("a message while the line is shown")
        out = tty.getvalue()[len(drawn):]
        assert out.startswith("\r\x1b[K") and "a message while the line is shown\n" in out
        p.on_step_end(0, trials)  # drawn again at once
        assert tty.getvalue().endswith("\x1b[K") and "[0:0" in tty.getvalue().splitlines()[-1]
        trials[0].status, trials[0].last_result["finished"] = "TERMINATED", True
        p.on_experiment_end(trials)  # the last line is a record: it stays on the screen
        last = [r.getMessage() for r in info_logs.records if r.name == "sweep.runner.progress"]
        assert last == [p.line(trials)] and "trials 1/1 done" in last[0]
        assert not statusline.LINE.filters  # the handlers are as they were
    finally:
        logging.getLogger().removeHandler(handler)
        statusline.LINE.release()


def test_elsewhere_a_plain_line_every_30_s_or_each_tenth_of_the_work(tmp_path, info_logs):
    trials = [FakeTrial(0, "a" * 12, members=1, total=1000)]
    stream = Tty(False)
    p, clock = make(tmp_path, trials, stream)

    def lines() -> list[str]:
        return [r.getMessage() for r in info_logs.records if r.name == "sweep.runner.progress"]

    for _ in range(95):  # 95 s without progress: a line at 30, 60 and 90 s
        clock.t += 1.0
        p.on_step_end(0, trials)
    assert len(lines()) == 3 and stream.getvalue() == ""
    info_logs.clear()
    for k in range(1, 11):  # 10% every 6 s: a line each time
        clock.t += 6.0
        report(p, trials, trials[0], 100 * k, 6.0 * k)
        p.on_step_end(0, trials)
    assert len(lines()) == 10, lines()
    info_logs.clear()
    fast = [FakeTrial(1, "b" * 12, members=1, total=1000)]
    p, clock = make(tmp_path, fast, stream)
    for k in range(1, 21):  # 5% every 0.5 s: a line at most every 5 s
        clock.t += 0.5
        report(p, fast, fast[0], 50 * k, 0.5 * k)
        p.on_step_end(0, fast)
    assert len(lines()) == 2, lines()


def test_status_json_names_trials_by_their_key_and_a_member_eta_only_once_measured(tmp_path):
    trials = [FakeTrial(0, "a" * 12)]
    p, clock = make(tmp_path, trials, Tty(False))

    def row() -> dict:
        p._tick(trials, status=True)
        return json.loads((tmp_path / STATUS).read_text())["per_trial"][0]

    report(p, trials, trials[0], 10, 20.0)
    r = row()
    assert r["trial_id"] == r["key"] == "a" * 12 and r["tune_trial_id"] == "abcde_00000"
    assert {m["eta_s"] for m in r["member_rows"]} == {None}
    for step, secs in ((20, 21.0), (30, 22.0)):
        report(p, trials, trials[0], step, secs)
    assert [m["eta_s"] for m in row()["member_rows"]] == pytest.approx([97.0, 97.0])


def test_a_failed_trial_is_one_line_naming_its_key_members_error_and_traceback(tmp_path):
    t = FakeTrial(0, "36c3a18dc9f1", members=6)
    err = tmp_path / "error.txt"
    err.write_text("Failure # 1 (occurred at 2026-01-01_00-00-00)\n"
                   "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1, ip=1.2.3.4)\n"
                   "  File \"x.py\", line 1, in f\n"
                   "trainer.errors.BadInput: model_args.width: must be > 0, got -1\n\n")
    t.error_file = str(err)
    t.last_result = {"step": 16, "total_steps": 32}
    line = pg.failure_line(t, tmp_path / "study")
    assert "\n" not in line
    assert line.startswith("trial 36c3a18dc9f1 failed at step 16/32 (6 members: λ=0 seed=0 b=32 "
                           "0000000000000000, λ=0.1 seed=1 b=32 0000000000000001, ")
    assert "and 2 more" in line and "0000000000000004" not in line
    assert "): BadInput: model_args.width: must be > 0, got -1; traceback: " \
        "/storage/exp-000/trial-36c3a18dc9f1/error.txt" in line
    assert "results.csv, column error" in line and "abcde_00000" not in line
    t.error_file, t.last_result = None, {}
    line = pg.failure_line(t)
    assert "before its first evaluation" in line and "see the trial's error.txt" in line
