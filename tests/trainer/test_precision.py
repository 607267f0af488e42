"""`precision = "bf16"`: autocast matmuls, fp32 everything else, its own hash, exact resume.

The expectation for a bf16 step is plain PyTorch under the same public mechanism
(torch.autocast on the reference model); the packed model must agree with it to bf16's
rounding, differ from fp32 by more than that, and keep its state in fp32.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import trainer
from tests.trainer.reference import METRICS
from tests.trainer.test_resume_record import EXACT, Crash, crash_at, metrics, sets
from trainer import ConfigError, build, members, preset
from trainer.loop import load_data
from trainer.model import PackedResMLP, reference_model

BF16 = torch.bfloat16


def test_fp32_is_the_default_and_keeps_every_existing_hash() -> None:
    c = preset("seed")
    assert c.precision == "fp32"
    assert c.replace(precision="fp32").config_hash() == c.config_hash()
    assert "precision" not in c.resolved()  # tables of fp32 studies keep their columns
    b = c.replace(precision="bf16")
    assert b.config_hash() != c.config_hash()
    assert b.resolved()["precision"] == "bf16"


def test_an_unknown_precision_names_the_key_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"^precision: got 'fp16'; allowed: fp32, bf16$"):
        build(preset("tiny"), {"precision": "fp16"})


def test_members_of_different_precision_never_share_a_pack() -> None:
    a = build(preset("tiny"), {})
    with pytest.raises(ConfigError, match="precision"):
        trainer.train([a, a.replace(precision="bf16")], log=lambda s: None)


def _one_step(cfg, amp: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]:
    """Forward + backward of member 0 of a 2-member pack, and of the plain reference model,
    on one batch; (packed out, reference out, packed grads, reference grads)."""
    cfgs = [cfg, cfg.replace(seed=cfg.seed + 1)]
    data = load_data(cfgs, torch.device("cpu"))
    x, y = data["train"].x[:64], data["train"].y[:64]
    refs = [reference_model(64, 32, cfg.width, cfg.depth, True, cfg.bn_eps, c.seed)
            for c in cfgs]
    pack = PackedResMLP(refs, [c.bn_eps for c in cfgs], torch.device("cpu"))
    ref = reference_model(64, 32, cfg.width, cfg.depth, True, cfg.bn_eps, cfg.seed)
    with torch.autocast("cpu", dtype=BF16, enabled=amp):
        out = pack(x)
        want = ref(x[:, 0])
    ((out.float() - y) ** 2).mean(dim=(0, 2)).sum().backward()
    ((want.float() - y[:, 0]) ** 2).mean().backward()
    grads = [pack.p[n].grad[0].reshape(-1) for n, _ in ref.named_parameters()]
    ref_grads = [p.grad.t().reshape(-1) if p.dim() == 2 else p.grad.reshape(-1)
                 for p in ref.parameters()]
    return out[:, 0], want, torch.cat(grads), torch.cat(ref_grads)


def test_a_bf16_step_is_plain_pytorch_under_autocast() -> None:
    cfg = build(preset("seed"), dict(width=64, steps=10))
    out, want, g, gw = _one_step(cfg, amp=True)
    assert out.dtype == want.dtype == BF16  # the matmuls really ran in bf16
    # bf16 keeps 8 bits of mantissa: outputs agree to its rounding, not to fp32's
    torch.testing.assert_close(out.float(), want.float(), rtol=2e-2, atol=2e-2)
    assert torch.nn.functional.cosine_similarity(g, gw, dim=0) > 0.999
    out32, _, g32, _ = _one_step(cfg, amp=False)
    assert out32.dtype == torch.float32
    assert (out.float() - out32).abs().max() > 1e-4, "bf16 changed nothing: not in effect"


def test_bf16_training_keeps_state_in_fp32_and_tracks_fp32(tmp_path: Path) -> None:
    base = build(preset("tiny"), dict(steps=300, eval_every=50, threads=1,
                                      checkpoint_every=300))
    rows = {}
    for p in ("fp32", "bf16"):
        out = tmp_path / p
        trainer.run([base.replace(precision=p)], out, log=lambda s: None)
        st = torch.load(next((out / "checkpoints").glob("*.pt")), weights_only=True)
        assert st["model"]["flat"].dtype == torch.float32  # master weights
        assert st["opt"]["m"].dtype == st["opt"]["v"].dtype == torch.float32
        rows[p] = metrics(out)
        recorded = json.loads((out / "config.json").read_text())["members"][0]
        assert recorded.get("precision", "fp32") == p
    a, b = rows["fp32"], rows["bf16"]
    assert (b.config_hash != a.config_hash).all()
    assert not a[list(METRICS)].equals(b[list(METRICS)]), "bf16 computed the same numbers"
    # the same run to bf16's rounding: the training loss falls alike
    assert b.train_loss.iloc[-1] < b.train_loss.iloc[0] / 2
    assert abs(b.train_loss.iloc[-1] - a.train_loss.iloc[-1]) < 0.25 * a.train_loss.iloc[-1]


def test_the_demo_preset_generalizes_in_bf16() -> None:
    """As test_train_reference's fp32 check (measured in bf16: ~0.6-0.8 at the end)."""
    cfg = build(preset("demo"), dict(threads=1, precision="bf16"))
    rows = pd.DataFrame(trainer.train([cfg], log=lambda s: None))
    assert rows.test_acc.iloc[-5:].mean() > 0.2, rows.test_acc.tail(5).tolist()


def test_a_bf16_run_interrupted_and_resumed_is_bit_identical(tmp_path: Path) -> None:
    ms = members(preset("tiny"), sets("adamw", True, steps=150, ckpt=20, precision="bf16"))
    ref = tmp_path / "ref"
    trainer.run(ms, ref, log=lambda s: None)
    out = tmp_path / "run"
    for stop in (40, 100):
        with pytest.raises(Crash):
            trainer.run(ms, out, log=lambda s: None, on_checkpoint=crash_at(stop))
    trainer.run(ms, out, log=lambda s: None)
    assert json.loads((out / "config.json").read_text())["resumed_from"] == [40, 100]
    pd.testing.assert_frame_equal(EXACT(metrics(out)), EXACT(metrics(ref)), check_exact=True)
