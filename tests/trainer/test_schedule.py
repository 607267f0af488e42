"""Learning-rate schedules (issue 21): T is the schedule's length. Packed members under a
schedule equal plain torch.optim runs under `LambdaLR` (float64), on both optimizer
implementations and for user models; a schedule resumes exactly; the default keeps
every config hash."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from tests.trainer.test_equivalence import TINY, assert_member_matches, packed_run
from trainer import ConfigError, build, preset, run
from trainer.loop import load_data
from trainer.model import reference_model
from trainer.optim import schedule_factor
from trainer.schedule import Schedule

KINDS = ("cosine", "linear", "wsd", "constant")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("warmup", [0, 7])
def test_the_device_factor_is_the_host_factor(kind, warmup):
    s = Schedule(kind, 100, warmup, 0.1 if kind != "constant" else 0.0)
    got = [schedule_factor(torch.tensor(float(k), dtype=torch.float64), s).item()
           for k in range(100)]
    want = [s.factor(k) for k in range(100)]
    assert got == pytest.approx(want, rel=1e-15, abs=1e-15)
    assert max(want) == 1.0 and min(want) >= 0.0
    if warmup:
        assert want[0] == pytest.approx(1 / warmup) and want[warmup - 1] == 1.0
    if kind == "cosine":
        assert want[warmup] == 1.0 and want[-1] == pytest.approx(0.1, abs=1e-3)
    assert s.integral() == pytest.approx(math.fsum(want))


def test_the_default_changes_no_hash_and_a_schedule_does():
    base = build(preset("tiny"), {})
    assert base.replace(lr_schedule="constant", warmup=0).config_hash() == base.config_hash()
    assert "lr_schedule" not in base.resolved()
    assert base.replace(lr_min=0.3).config_hash() == base.config_hash()  # no effect there
    hashes = {base.replace(lr_schedule=k).config_hash() for k in KINDS}
    hashes.add(base.replace(warmup=10).config_hash())
    assert len(hashes) == len(KINDS) + 1


@pytest.mark.parametrize("kw, key", [(dict(lr_schedule="step"), "lr_schedule"),
                                     (dict(warmup=-1), "warmup"), (dict(warmup=2.5), "warmup"),
                                     (dict(warmup=10**6), "warmup"),
                                     (dict(lr_min=1.5, lr_schedule="cosine"), "lr_min"),
                                     (dict(lr_min=-0.1), "lr_min")])
def test_bad_schedules_are_one_line_naming_the_key(kw, key):
    with pytest.raises(ConfigError) as e:
        build(preset("tiny"), kw)
    assert e.value.key == key and "\n" not in str(e.value)


def _reference(cfg, kind, steps):
    """One member the plain PyTorch way, under LambdaLR(f) stepped once per step."""
    data = load_data([cfg], torch.device("cpu"))
    x, y = data["train"].x[:, 0], data["train"].y[:, 0]
    m = reference_model(x.shape[1], y.shape[1], cfg.width, cfg.depth, cfg.batch_norm,
                        cfg.bn_eps, cfg.seed)
    params, wd = list(m.parameters()), cfg.decay.weight_decay
    if kind == "adamw":
        opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                eps=cfg.adam_eps, weight_decay=wd)
    elif kind == "adam_l2":
        opt = torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                               eps=cfg.adam_eps, weight_decay=wd)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cfg.schedule.factor)
    b, spe = cfg.batch_size, cfg.steps_per_epoch
    for step in range(steps):
        i = step % spe
        loss = ((m(x[i * b:(i + 1) * b]) - y[i * b:(i + 1) * b]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        if kind == "sgdw":  # decoupled, at the scheduled lr
            with torch.no_grad():
                for p in params:
                    p.mul_(1 - opt.param_groups[0]["lr"] * wd)
        opt.step()
        sched.step()
    return m


def _packed(cfgs, impl, steps):
    return packed_run(cfgs, steps, impl=impl)[0]


@pytest.mark.parametrize("impl", ["flat", "fused"])
@pytest.mark.parametrize("kind, opt", [("cosine", "adamw"), ("linear", "adamw"),
                                       ("wsd", "adamw"), ("cosine", "sgdw"),
                                       ("cosine", "adam_l2"), ("constant", "adamw")])
def test_packed_members_under_a_schedule_match_torch_lambdalr(float64, impl, kind, opt):
    steps = 120
    base = build(preset("seed"), {**TINY, "steps": steps, "optimizer": opt,
                                  "lr": 1e-2 if opt == "sgdw" else 3e-3, "lr_schedule": kind,
                                  "warmup": 10, "lr_min": 0.0 if kind == "constant" else 0.05})
    cfgs = [base.replace(weight_decay=w, seed=s, lr=lr)
            for w, s, lr in ((0.3, 0, base.lr), (1.0, 1, base.lr / 2))]
    model = _packed(cfgs, impl, steps)
    for k, c in enumerate(cfgs):
        assert_member_matches(model, k, _reference(c, opt, steps), rtol=1e-9, atol=1e-11)


def test_a_schedule_changes_the_run(float64):
    base = build(preset("seed"), {**TINY, "steps": 60, "weight_decay": 0.3})
    a = _packed([base], "flat", 60)
    b = _packed([base.replace(lr_schedule="cosine")], "flat", 60)
    assert not torch.equal(a.flat, b.flat)


class _Stop(Exception):
    pass


def test_a_scheduled_run_interrupted_and_resumed_is_bit_identical(tmp_path):
    base = build(preset("tiny"), dict(steps=240, checkpoint_every=40, eval_every=20,
                                      threads=1, lr_schedule="cosine", warmup=0.1,
                                      lr_min=0.1))
    members = [base.replace(weight_decay=w, seed=s) for w, s in ((0.1, 0), (1.0, 1))]
    ref = pd.read_csv(run(members, tmp_path / "ref"))

    def stop(path, step):
        if step == 120:
            raise _Stop

    with pytest.raises(_Stop):
        run(members, tmp_path / "cut", on_checkpoint=stop)
    resumed = []
    got = pd.read_csv(run(members, tmp_path / "cut", on_resume=resumed.append))
    assert resumed == [120]
    pd.testing.assert_frame_equal(got.drop(columns=["wall_time"]),
                                  ref.drop(columns=["wall_time"]), check_exact=True)


USER_MOD = "wds_user_schedule"


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    import sys

    from tests.user_module import write

    write(tmp_path, USER_MOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop(USER_MOD, None)


def test_a_user_model_under_a_schedule_matches_torch_lambdalr(user_module, float64):
    import importlib

    import torch.nn.functional as F

    from trainer import train

    base = build(preset("tiny"), dict(task=f"{USER_MOD}:blobs", model=f"{USER_MOD}:net",
                                      train_size=48, batch_size=16, steps=30, eval_every=10,
                                      threads=1, device="cpu", lr=1e-2, lr_schedule="cosine",
                                      warmup=5, lr_min=0.1))
    ms = [base.replace(weight_decay=0.1, seed=0), base.replace(weight_decay=1.0, seed=1)]
    packed = train(ms)
    mod = importlib.import_module(USER_MOD)
    for k, c in enumerate(ms):
        task = mod.blobs(seed=c.effective_data_seed)
        x, y = task["train"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            m = mod.net(n_in=x.shape[1], n_out=2)
        opt = torch.optim.AdamW(m.parameters(), lr=c.lr, betas=(c.beta1, c.beta2),
                                eps=c.adam_eps, weight_decay=c.decay.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, c.schedule.factor)
        b = c.batch_size
        for step in range(c.total_steps):
            i = step % c.steps_per_epoch
            loss = F.cross_entropy(m(x[i * b:(i + 1) * b]), y[i * b:(i + 1) * b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        want = sum(p.norm() for p in m.parameters()).item()
        got = [r for r in packed if r["member"] == k][-1]["weight_norm"]
        assert got == pytest.approx(want, rel=1e-10)


def test_the_integrated_decay_is_the_sum_of_the_scheduled_per_step_decays():
    from trainer.units import integrated_decay

    c = build(preset("tiny"), dict(steps=200, weight_decay=0.5, lr_schedule="wsd",
                                   warmup=20, lr_min=0.1))
    want = math.fsum(c.lr * c.schedule.factor(k) * 0.5 for k in range(200))
    assert integrated_decay(c.decay.decay_per_step, c.schedule.integral()) == \
        pytest.approx(want, rel=1e-12)
    flat = c.replace(lr_schedule="constant", warmup=0, lr_min=0)
    assert integrated_decay(flat.decay.decay_per_step, flat.schedule.integral()) == \
        pytest.approx(flat.decay.decay_per_step * 200)
