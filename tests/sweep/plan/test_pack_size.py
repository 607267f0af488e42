"""GPU pack size from the card's memory (sweep.plan.packs.pack_size)."""

from sweep.plan.packs import make_plan, pack_size
from sweep.plan.spec import parse
from trainer import build, preset
from trainer.memory import fit_members, member_bytes

GRID = """
name = "p"
preset = "seed"
[grid]
weight_decay = [0.0, 0.001, 0.01, 0.1, 0.3, 1.0]
seed = [0, 1, 2, 3]
[resources]
gpus_per_trial = {gpus}
"""
GIB = 1 << 30


def test_cpu_keeps_the_spec_pack():
    spec = parse(GRID.format(gpus=0))
    assert pack_size(spec, build(preset("seed"), {}), gpu_memory=140 * GIB) == spec.pack == 8


def test_gpu_packs_as_many_as_fit_unless_the_spec_caps_it():
    cfg = build(preset("seed"), {})
    spec = parse(GRID.format(gpus=1))
    fit = fit_members(cfg, 80 * GIB)
    assert 1000 < fit < 80 * GIB / member_bytes(cfg)  # the seed model: thousands per card
    assert pack_size(spec, cfg, gpu_memory=80 * GIB) == fit
    assert pack_size(parse(GRID.format(gpus=0.5)), cfg, gpu_memory=80 * GIB) \
        == fit_members(cfg, 40 * GIB)
    capped = parse(GRID.format(gpus=1) + "[run]\npack = 6\n")
    assert pack_size(capped, cfg, gpu_memory=80 * GIB) == 6
    small = GIB + (80 << 20)  # room for 3 seed members beyond the fixed 1 GiB
    assert pack_size(capped, cfg, gpu_memory=small) == fit_members(cfg, small) == 3


def test_gpu_plan_without_a_visible_gpu_keeps_the_spec_pack(monkeypatch):
    monkeypatch.setenv("WDSWEEP_GPU_MEMORY_GB", "80")
    assert [len(t.members) for t in make_plan(parse(GRID.format(gpus=1))).trials] == [24]
    monkeypatch.delenv("WDSWEEP_GPU_MEMORY_GB")
    monkeypatch.setattr("trainer.memory.shutil.which", lambda _: None)
    assert [len(t.members) for t in make_plan(parse(GRID.format(gpus=1))).trials] == [8] * 3
