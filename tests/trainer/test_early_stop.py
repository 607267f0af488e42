"""Early stopping inside a pack: who stops, and that nobody else's numbers move."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest

import trainer
from trainer.config import ConfigError
from trainer.early_stop import stop_reason
from trainer.loop import train
from trainer.presets import preset
from trainer.rundir import finished_at

VALUES = ["train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc",
          "bit_acc", "weight_norm", "weight_norm_sq", "step"]
# 30 epochs of 16 steps, an evaluation per epoch; λ = 100 collapses within a few
# evaluations, λ = 30 after ~15, λ <= 0.3 never.
WDS = [0.0, 0.3, 30.0, 100.0]


def pack(wds=WDS, **kw) -> list[trainer.TrainConfig]:
    base = dataclasses.replace(preset("tiny"), epochs=30, threads=1, checkpoint_every=32)
    return [dataclasses.replace(base, weight_decay=w, seed=i, **kw) for i, w in enumerate(wds)]


def of(h, k):
    return [tuple(r[c] for c in VALUES) for r in h if r["member"] == k]


@pytest.mark.parametrize("name", ["tiny", "digits"])
def test_a_members_numbers_do_not_depend_on_the_pack_it_trains_in(name):
    base = dataclasses.replace(preset(name), epochs=2, threads=2, shuffle=True)
    ms = [dataclasses.replace(base, weight_decay=w, seed=i)
          for i, w in enumerate([0.0, 0.1, 0.3, 1.0, 3.0])]
    whole, part = train(ms), train([ms[k] for k in (0, 2, 4)])
    for j, k in enumerate((0, 2, 4)):
        assert of(whole, k) == of(part, j)  # bit for bit


def test_collapsed_members_stop_and_the_others_are_bit_identical_to_a_run_without():
    plain = train(pack())
    early = train(pack(stop_train_acc=0.02, stop_evals=3))
    stops = {r["member"]: r for r in early if r.get("stop")}
    assert sorted(stops) == [2, 3]  # the two collapsed members, nobody else
    for k in range(4):
        mine = of(early, k)
        assert mine == of(plain, k)[:len(mine)]  # the same numbers up to the stop
        if k in stops:
            assert mine[-1][-1] == stops[k]["step"] < 480 and "3 evaluations" in stops[k]["stop"]
        else:
            assert len(mine) == 30
    member_steps = sum(r["step"] for r in stops.values()) + 2 * 480
    assert member_steps < 0.75 * 4 * 480


def test_the_stop_rule_is_part_of_the_hash_only_when_it_is_on():
    off, on = pack()[0], pack(stop_train_acc=0.02)[0]
    assert "stop_train_acc" not in off.canonical() and "stop_evals" not in off.canonical()
    assert off.config_hash() == dataclasses.replace(off, stop_evals=9).config_hash()
    assert on.config_hash() != off.config_hash()
    assert on.config_hash() != dataclasses.replace(on, stop_evals=9).config_hash()


@pytest.mark.parametrize("crash", [32, 64, 256])
def test_a_run_killed_before_or_after_a_stop_resumes_bit_identical(tmp_path, crash):
    ms = pack(stop_train_acc=0.02, stop_evals=3)
    ref = pd.read_csv(trainer.run(ms, tmp_path / "ref"), dtype={"config_hash": str})

    class Crash(Exception):
        pass

    def at(path: Path, step: int) -> None:
        if step == crash:
            raise Crash

    with pytest.raises(Crash):
        trainer.run(ms, tmp_path / "cut", on_checkpoint=at)
    got = pd.read_csv(trainer.run(ms, tmp_path / "cut"), dtype={"config_hash": str})
    cols = VALUES + ["member", "stop"]
    pd.testing.assert_frame_equal(got[cols], ref[cols])
    assert json.loads((tmp_path / "cut" / "config.json").read_text())["status"] == "done"


def test_a_pack_whose_members_all_stop_ends_early_and_counts_as_finished(tmp_path):
    ms = pack(wds=[100.0, 300.0], stop_train_acc=0.02, stop_evals=3)
    out = tmp_path / "run"
    h = pd.read_csv(trainer.run(ms, out))
    last = int(h.step.max())
    assert last < 480 and h.stop.notna().sum() == 2
    assert finished_at(ms, out, last) and not finished_at(pack()[:2], out, last)
    assert json.loads((out / "config.json").read_text())["status"] == "done"
    assert trainer.run(ms, out) == out / "metrics.csv"  # done: nothing to redo


def _rows(acc, loss):
    return [dict(train_acc=a, train_loss=x) for a, x in zip(acc, loss)]


def test_stop_reason_wants_collapse_and_a_flat_loss_for_the_whole_window():
    flat = _rows([0.0] * 4, [0.25, 0.2499, 0.2501, 0.25])
    assert stop_reason(flat, 0.02, 4, 0.01) is not None
    assert stop_reason(flat[:3], 0.02, 4, 0.01) is None  # not yet 4 evaluations
    learning = _rows([0.0] * 4, [0.25, 0.24, 0.23, 0.22])  # at chance, but improving
    assert stop_reason(learning, 0.02, 4, 0.01) is None
    one_hit = _rows([0.0, 0.05, 0.0, 0.0], [0.25] * 4)
    assert stop_reason(one_hit, 0.02, 4, 0.01) is None
    diverged = _rows([0.0] * 4, [math.nan] * 4)
    assert stop_reason(diverged, 0.02, 4, 0.01) is not None


@pytest.mark.parametrize(("key", "value"), [("stop_train_acc", 1.0), ("stop_train_acc", -0.1),
                                            ("stop_train_acc", math.nan), ("stop_evals", 1),
                                            ("stop_tol", 1.0)])
def test_bad_stop_settings_name_the_key(key, value):
    with pytest.raises(ConfigError) as e:
        dataclasses.replace(preset("tiny"), **{key: value})
    assert e.value.key == key


def test_a_user_models_pack_shrinks_the_same_way():
    """The digits task (the stacked user-model path, trainer.vmapped): a collapsed member
    (at chance, 0.1, for 10 classes) stops; the others match a run without the stop."""
    base = dataclasses.replace(preset("digits"), epochs=12, threads=1)
    ms = [dataclasses.replace(base, weight_decay=w, seed=i)
          for i, w in enumerate([0.0, 0.1, 300.0])]
    plain = train(ms)
    early = train([dataclasses.replace(m, stop_train_acc=0.15, stop_evals=3) for m in ms])
    assert [r["member"] for r in early if r.get("stop")] == [2]
    for k in range(3):
        mine = of(early, k)
        assert mine == of(plain, k)[:len(mine)]
    assert len(of(early, 2)) < 12 and len(of(early, 0)) == 12
