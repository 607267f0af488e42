"""Issue 9: your own task and model. A user module in a temporary directory outside the
repository; packed members equal the same members trained alone and plain PyTorch
(float64, CPU); SIGKILL + resume is bit-identical; bad input is one line naming the key."""

from __future__ import annotations

import csv
import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sweep.plan.code import complete, notes, packs
from sweep.plan.packs import make_plan
from sweep.plan.spec import SpecError, parse
from tests.user_module import write
from trainer import ConfigError, build, preset, train

MOD = "wds_user_trainer"  # a name no other test file imports


@pytest.fixture(scope="module")
def code_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("user_code")
    assert not str(d).startswith(str(Path(__file__).parents[2]))  # outside the repository
    write(d, MOD)
    return d


@pytest.fixture
def on_path(code_dir, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(code_dir))
    yield code_dir
    sys.modules.pop(MOD, None)


def config(**kw):
    base = dict(task=f"{MOD}:blobs", model=f"{MOD}:net", train_size=48, batch_size=16,
                steps=30, eval_every=10, threads=1, device="cpu", lr=1e-2)
    return build(preset("tiny"), {**base, **kw})


def members(bn: bool, task: str = "blobs"):
    c = config(model_args={"bn": bn}, task=f"{MOD}:{task}")
    return [c.replace(weight_decay=0.1, seed=0), c.replace(weight_decay=1.0, seed=1),
            c.replace(weight_decay=0.3, seed=2, lr=3e-3)]


def plain_run(cfg) -> dict[str, float]:
    """The member the plain way: its module, torch.optim.AdamW, the same batches."""
    mod = importlib.import_module(MOD)
    task = getattr(mod, cfg.task.split(":")[1])(seed=cfg.effective_data_seed, **cfg.task_args)
    (x, y), (xt, yt) = task["train"], task["test"]
    ce = task.get("loss") == "cross_entropy"
    n_out = 2 if ce else y.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        m = mod.net(n_in=x.shape[1], n_out=n_out, **cfg.model_args)
    opt = torch.optim.AdamW(m.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            eps=cfg.adam_eps, weight_decay=cfg.decay.weight_decay)
    b = cfg.batch_size
    for step in range(cfg.total_steps):
        i = step % cfg.steps_per_epoch
        out = m(x[i * b : (i + 1) * b])
        yb = y[i * b : (i + 1) * b]
        loss = F.cross_entropy(out, yb) if ce else ((out - yb) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        out = m(xt)
        test_loss = F.cross_entropy(out, yt) if ce else ((out - yt) ** 2).mean()
        return dict(test_loss=test_loss.item(),
                    weight_norm=sum(p.norm() for p in m.parameters()).item())


@pytest.mark.parametrize("bn", [False, True], ids=["plain", "batchnorm"])
@pytest.mark.parametrize("task", ["blobs", "regress"])
def test_packed_members_equal_members_alone_and_plain_pytorch(on_path, float64, bn, task):
    ms = members(bn, task)
    if task == "regress":
        ms = [m.replace(train_size=48) for m in ms]
    packed = train(ms)
    assert {r["member"] for r in packed} == {0, 1, 2}
    for k, m in enumerate(ms):
        alone = train([m])
        mine = [r for r in packed if r["member"] == k]
        assert len(mine) == len(alone) == 3
        for a, p in zip(alone, mine):
            for col in ("train_loss", "test_loss", "val_loss", "test_acc", "weight_norm"):
                assert p[col] == pytest.approx(a[col], rel=1e-10, abs=1e-12), (k, col)
        ref = plain_run(m)
        assert mine[-1]["weight_norm"] == pytest.approx(ref["weight_norm"], rel=1e-10)
        assert mine[-1]["test_loss"] == pytest.approx(ref["test_loss"], rel=1e-9)
    # the members differ (their own λ, seed and lr)
    assert len({round(r["weight_norm"], 9) for r in packed if r["step"] == 30}) == 3


def test_bf16_packs_a_user_model_like_bf16_alone(on_path):
    """precision = "bf16" reaches your own model too (torch.autocast around the vmapped
    forward): packed bf16 members equal bf16 members alone, and differ from fp32."""
    ms = [m.replace(precision="bf16") for m in members(True)]
    packed = train(ms, log=lambda s: None)
    fp32 = train([members(True)[0]], log=lambda s: None)
    for k, m in enumerate(ms):
        alone = train([m], log=lambda s: None)
        mine = [r for r in packed if r["member"] == k]
        for a, p in zip(alone, mine):
            for col in ("train_loss", "test_loss", "weight_norm"):
                assert p[col] == pytest.approx(a[col], rel=2e-2, abs=1e-3), (k, col)
    assert [r["test_loss"] for r in fp32] != [r["test_loss"] for r in packed if r["member"] == 0]


def test_batch_norm_running_stats_are_per_member(on_path, float64):
    """Eval mode uses each member's own running statistics: a member packed with
    others evaluates exactly as alone (checked above); here the buffers differ."""
    from trainer.user import load

    _, model, _ = load(members(True), torch.device("cpu"))
    x = torch.randn(16, 3, 3)
    model(x)
    rm = model.buffers["1.running_mean"]
    assert rm.shape[0] == 3 and not torch.equal(rm[0], rm[1])
    assert model.buffers["1.num_batches_tracked"].tolist() == [1, 1, 1]


def test_hash_covers_the_callables_and_their_arguments(on_path):
    a = config(model_args={"bn": True})
    assert a.config_hash() != config(model_args={"bn": False}).config_hash()
    assert a.config_hash() != config(model_args={"bn": True}, model=f"{MOD}:dropnet"
                                     ).config_hash()
    assert a.config_hash() != config(model_args={"bn": True}, task_args={"dims": 4}
                                     ).config_hash()
    assert a.config_hash() == config(model_args={"bn": True}).config_hash()
    assert "model" not in preset("tiny").resolved()  # built-in tables keep their columns


def test_probe_fills_B_and_packs_or_falls_back(on_path):
    [m] = complete([config(train_size=512, task_args={"n": 40}, batch_size=8)])
    assert m.train_size == 40
    assert packs(m) and packs(m.replace(model_args={"bn": True}))
    drop = config(model=f"{MOD}:dropnet")
    assert not packs(drop)
    assert "cannot be packed" in notes([drop])[0] and "vmap" in notes([drop])[0]


SPEC = """
name = "bad"
preset = "tiny"
task = "{task}"
model = "{model}"
code = ["{code}"]
[fixed]
batch_size = 8
steps = 4
[grid]
weight_decay = [0.0, 0.1]
"""


@pytest.mark.parametrize("task, model, key, said", [
    ("no_such_module_xyz:f", f"{MOD}:net", "task", "cannot import module 'no_such_module_xyz'"),
    (f"{MOD}:nope", f"{MOD}:net", "task", f"module '{MOD}' has no function 'nope'"),
    (f"{MOD}:blobs", f"{MOD}:nope", "model", f"module '{MOD}' has no function 'nope'"),
    (f"{MOD}:a_list", f"{MOD}:net", "task", "returned a list"),
    (f"{MOD}:flat_y", f"{MOD}:net", "task", "y (N, n_out) float"),
    (f"{MOD}:blobs", f"{MOD}:one_logit", "model", "outputs (8,) do not match y (8,)"),
    (f"{MOD}:regress", f"{MOD}:too_wide", "model", "outputs (8, 5) do not match y (8, 2)"),
    (f"{MOD}:blobs", f"{MOD}:not_a_module", "model", "returned a int"),
    ("mod-with-dash:f", f"{MOD}:net", "task", "allowed: 'package.module:function'"),
])
def test_bad_user_code_is_one_line_naming_the_key(code_dir, task, model, key, said):
    with pytest.raises(SpecError) as e:
        make_plan(parse(SPEC.format(task=task, model=model, code=code_dir)))
    msg = str(e.value)
    assert e.value.key == key and msg.startswith(f"{key}: ") and said in msg, msg
    assert "\n" not in msg
    assert MOD not in sys.modules  # the driver forgets modules it imported from `code`


def test_bad_arguments_name_their_table(code_dir):
    text = SPEC.format(task=f"{MOD}:blobs", model=f"{MOD}:net", code=code_dir)
    with pytest.raises(SpecError) as e:
        make_plan(parse(text + "\n[task_args]\nwidth = 3\n"))
    assert e.value.key == "task_args" and "width" in str(e.value)
    with pytest.raises(SpecError) as e:
        make_plan(parse(text.replace("[grid]", "[model_args]\nbn = 'x'\ndepth = 2\n[grid]")))
    assert e.value.key == "model_args"
    with pytest.raises(SpecError) as e:
        parse(text.replace('code = ["', 'code = ["/no/such/dir", "'))
    assert e.value.key == "code"
    with pytest.raises(SpecError) as e:
        parse(text.replace("batch_size = 8", "batch_size = 8\ntrain_size = 100"))
    assert e.value.key == "fixed.train_size"
    plan = make_plan(parse(text.replace(":net", ":dropnet")))  # vmap refuses dropout
    assert [len(t.members) for t in plan.trials] == [1, 1]
    assert "cannot be packed" in plan.summary(1) and "one member per trial" in plan.summary(1)
    with pytest.raises(ConfigError):  # not importable without `code`
        make_plan(parse(text.replace(f'code = ["{code_dir}"]', "")))


def test_cli_train_resumes_after_sigkill_bit_identical(code_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    sets = [f"task={MOD}:blobs", f"model={MOD}:net", "model_args.bn=true", f"code={code_dir}",
            "task_args.n=64", "batch_size=16", "steps=600", "eval_every=40", "lr=0.01",
            "checkpoint_every=50", "threads=1", "weight_decay=0.1,1.0", "seed=0,1"]
    cmd = [sys.executable, "-m", "sweep.cli", "train", "--preset", "tiny",
           *[a for s in sets for a in ("--set", s)]]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    r = subprocess.run([*cmd, "--out", str(straight)], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    p = subprocess.Popen([*cmd, "--out", str(killed)], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list((killed / "checkpoints").glob("*.pt")) and time.time() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert '"running"' in (killed / "config.json").read_text()  # killed mid-run
    r = subprocess.run([*cmd, "--out", str(killed)], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and "resumed at step" in r.stderr, r.stderr[-2000:]

    def rows(d: Path) -> list[dict[str, str]]:
        with open(d / "metrics.csv") as f:
            return [{k: v for k, v in row.items() if k != "wall_time"} for row in csv.DictReader(f)]

    assert rows(killed) == rows(straight) and len(rows(straight)) == 4 * 15
