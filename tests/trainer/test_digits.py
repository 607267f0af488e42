"""The second task (issue 21): scikit-learn's digits, real data shipped inside an
installed package, through the packed user-model path with cross entropy."""

from __future__ import annotations

import pytest
import torch

from sweep.plan.code import complete, packs
from trainer import build, preset, train
from trainer.tasks import digits as dg
from trainer.user import BUILTIN_REFS


def test_the_split_is_fixed_by_the_seed_disjoint_and_covers_every_class():
    a, b, c = dg.digits(seed=0), dg.digits(seed=0), dg.digits(seed=1)
    for name in ("train", "val", "test"):
        assert torch.equal(a[name][0], b[name][0]) and torch.equal(a[name][1], b[name][1])
    assert not torch.equal(a["train"][0], c["train"][0])
    x = torch.cat([a[n][0] for n in ("train", "val", "test")])
    assert x.shape == (1797, 64) and 0 <= x.min() and x.max() <= 1
    assert len({tuple(r.tolist()) for r in x}) > 1700  # rows are distinct images, not copies
    assert set(a["train"][1].tolist()) == set(range(10))
    assert (a["loss"], a["accuracy"]) == ("cross_entropy", "argmax")
    assert len(dg.digits(seed=0, train_size=250)["train"][0]) == 250
    with pytest.raises(ValueError, match="1797"):
        dg.digits(seed=0, train_size=1500)


def test_the_preset_names_the_builtin_references():
    c = preset("digits")
    assert (c.task, c.model) == (dg.TASK, dg.MODEL) and set(BUILTIN_REFS) == {dg.TASK, dg.MODEL}
    [m] = complete([c])
    assert m.train_size == 1000 and packs(m)  # B from the task; vmap packs the MLP


def test_digits_learns_and_weight_decay_changes_it():
    base = build(preset("digits"), dict(epochs=15, threads=1, eval_every=75))
    ms = complete([base.replace(weight_decay=0.1, seed=0), base.replace(weight_decay=300.0,
                                                                       seed=0)])
    rows = train(ms)
    last = {r["member"]: r for r in rows if r["step"] == ms[0].total_steps}
    assert last[0]["test_acc"] >= 0.9, last[0]  # 10 classes: chance is 0.1
    assert last[1]["test_acc"] < last[0]["test_acc"] - 0.2, last[1]  # decay 0.3/step: collapse
