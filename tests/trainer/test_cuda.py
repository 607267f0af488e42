"""The CUDA path, through the public entry points (`trainer.train` / `trainer.run` with
device="cuda"): packed members against plain PyTorch on the GPU, the graph-captured
step against the eager one, and exact resume. Skipped, with the reason, without a GPU."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

import trainer
from tests.trainer.reference import METRICS, reference_history
from trainer import TrainConfig, build, members, preset
from trainer.config import FIELDS

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason="no CUDA device (torch.cuda.is_available() is False): "
                              "the gpu tests did NOT run"),
]
GRAPH = ([pytest.param(True, id="graph"), pytest.param(False, id="eager")]
         if "cuda_graph" in FIELDS else [pytest.param(None, id="default")])
BASE = dict(width=32, depth=2, train_size=640, val_size=64, test_size=64, batch_size=32,
            steps=300, eval_every=25, checkpoint_every=10_000, device="cuda")
EXACT = lambda df: df.drop(columns=["wall_time"])  # noqa: E731


class Crash(RuntimeError):
    """Raised from a checkpoint callback: the run stops right after that checkpoint."""


def _graph(graph: bool | None) -> dict[str, object]:
    return {} if graph is None else {"cuda_graph": graph}


def _pack(optimizer: str, shuffle: bool, graph: bool | None) -> list[TrainConfig]:
    lr = 3e-2 if optimizer == "sgdw" else 1e-3
    base = build(preset("seed"), {**BASE, "optimizer": optimizer, "lr": lr, "shuffle": shuffle,
                                  **_graph(graph)})
    return [base.replace(weight_decay=0.1, seed=0), base.replace(weight_decay=1.0, seed=1)]


@pytest.mark.parametrize("graph", GRAPH)
@pytest.mark.parametrize("optimizer, shuffle", [("adamw", False), ("adam_l2", True),
                                                ("sgdw", True)])
def test_packed_cuda_equals_plain_pytorch_on_cuda_in_float64(float64, optimizer: str,
                                                            shuffle: bool,
                                                            graph: bool | None) -> None:
    ms = _pack(optimizer, shuffle, graph)
    got = pd.DataFrame(trainer.train(ms, log=lambda s: None))
    for k, cfg in enumerate(ms):
        mine = got[got.member == k].reset_index(drop=True)
        want = pd.DataFrame(reference_history(cfg, device="cuda"))
        assert list(mine.step) == list(want.step)
        for col in METRICS:
            torch.testing.assert_close(torch.tensor(mine[col].to_numpy()),
                                       torch.tensor(want[col].to_numpy()), rtol=1e-8,
                                       atol=1e-11, msg=lambda m, c=col, k=k: f"member {k} {c}: {m}")


@pytest.mark.skipif("cuda_graph" not in FIELDS, reason="this trainer has no cuda_graph option")
def test_graph_captured_and_eager_steps_agree_in_float32() -> None:
    """Same kernels, replayed or launched: the first evaluations agree to float32
    rounding (later ones may drift apart the way any rounding change does)."""
    rows = {g: pd.DataFrame(trainer.train(_pack("adamw", True, g), log=lambda s: None))
            for g in (True, False)}
    a, b = (rows[g][rows[g].step <= 50] for g in (True, False))
    for col in METRICS:
        torch.testing.assert_close(torch.tensor(a[col].to_numpy()),
                                   torch.tensor(b[col].to_numpy()), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("graph", GRAPH)
@pytest.mark.parametrize("shuffle", [False, True], ids=["fixed-order", "shuffle"])
def test_resume_on_cuda_is_bit_identical(tmp_path: Path, shuffle: bool,
                                         graph: bool | None) -> None:
    g = [] if graph is None else [f"cuda_graph={graph}"]
    ms = members(preset("tiny"), ["weight_decay=0.1,1.0", "seed=0,1", f"shuffle={shuffle}",
                                  "steps=150", "checkpoint_every=20", "eval_every=15",
                                  "device=cuda", *g])
    trainer.run(ms, tmp_path / "ref", log=lambda s: None)
    out = tmp_path / "run"

    def crash_at(step: int) -> Callable[[Path, int], None]:
        def hook(path: Path, at: int) -> None:
            if at == step:
                raise Crash(f"stopped at step {at}")
        return hook

    for stop in (40, 100):
        with pytest.raises(Crash):
            trainer.run(ms, out, log=lambda s: None, on_checkpoint=crash_at(stop))
    trainer.run(ms, out, log=lambda s: None)
    assert json.loads((out / "config.json").read_text())["resumed_from"] == [40, 100]
    got, want = (pd.read_csv(d / "metrics.csv") for d in (out, tmp_path / "ref"))
    pd.testing.assert_frame_equal(EXACT(got), EXACT(want), check_exact=True)


def test_bf16_graph_captured_step_agrees_with_eager_bf16_and_learns() -> None:
    """precision = "bf16" on CUDA: autocast inside the captured graph (cast cache off)
    computes what the eager bf16 step does, and the run still learns."""
    rows = {g: pd.DataFrame(trainer.train([c.replace(precision="bf16")
                                           for c in _pack("adamw", True, g)],
                                          log=lambda s: None)) for g in (True, False)}
    a, b = (rows[g][rows[g].step <= 50] for g in (True, False))
    for col in METRICS:
        torch.testing.assert_close(torch.tensor(a[col].to_numpy()),
                                   torch.tensor(b[col].to_numpy()), rtol=1e-2, atol=1e-3)
    r = rows[True]
    assert r.train_loss.iloc[-1] < r.train_loss.iloc[0] / 2


@pytest.mark.skipif("cuda_graph" not in FIELDS, reason="this trainer has no cuda_graph option")
@pytest.mark.parametrize("optimizer", ["adamw", "sgdw"])
def test_a_scheduled_pack_in_a_cuda_graph_equals_eager_in_float64(float64, optimizer: str
                                                                  ) -> None:
    """The schedule's factor is computed on the device from the step count, so the
    captured graph replays it step by step: graph and eager agree to float64 rounding."""
    rows = {}
    for g in (True, False):
        ms = [m.replace(lr_schedule="cosine", warmup=0.1, lr_min=0.05)
              for m in _pack(optimizer, True, g)]
        rows[g] = pd.DataFrame(trainer.train(ms, log=lambda s: None))
    for col in METRICS:
        torch.testing.assert_close(torch.tensor(rows[True][col].to_numpy()),
                                   torch.tensor(rows[False][col].to_numpy()), rtol=1e-9,
                                   atol=1e-12)
