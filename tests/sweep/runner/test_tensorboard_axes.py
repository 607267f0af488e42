"""Issue 22: a task_args.* / model_args.* axis reaches the member table and TensorBoard's
hparams, and a member of your own model carries none of the built-in model's keys."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import sweep
from sweep.plan.members import BUILTIN_MODEL, member_table
from sweep.plan.packs import make_plan
from sweep.plan.spec import parse

# The digits preset: a model reference (trainer.tasks.digits:mlp) that every Ray worker
# imports as installed code; its width is a model argument, the axis here.
SPEC = """
name = "tb-axes"
preset = "digits"
[task_args]
train_size = 128
[fixed]
epochs = 2
batch_size = 32
eval_every = 4
[grid]
weight_decay = [0.1]
"model_args.width" = [8, 16]
[run]
checkpoint_every = 8
max_failures = 0
"""


def hparams(run_dir: Path) -> dict[str, object]:
    """A TensorBoard run's hparams (session start info), read with the raw TFRecord framing
    and tensorboardX's own protobufs (no TensorFlow, no tensorboard needed)."""
    from google.protobuf.json_format import MessageToDict
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData

    hp: dict[str, object] = {}
    for f in sorted(run_dir.glob("events.out.tfevents.*")):
        data, i = f.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            e = Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4  # length, its crc, the record, its crc
            for v in e.summary.value:
                if v.metadata.plugin_data.plugin_name == "hparams":
                    d = HParamsPluginData.FromString(v.metadata.plugin_data.content)
                    if d.HasField("session_start_info"):
                        hp = MessageToDict(d.session_start_info)["hparams"]
    return hp


def test_the_member_table_names_the_axes_and_only_the_model_that_runs():
    plan = make_plan(parse(SPEC))
    rows = [r for t in plan.trials for r in member_table(t.members).values()]
    assert sorted(r["model_args.width"] for r in rows) == [8, 16]
    assert {r["task_args.train_size"] for r in rows} == {128}
    assert {r["model"] for r in rows} == {"trainer.tasks.digits:mlp"}
    assert not any(k in r for r in rows for k in BUILTIN_MODEL)  # not width 256, bn_eps ...
    builtin = make_plan(parse(SPEC.replace('preset = "digits"', 'preset = "tiny"')
                              .replace("[task_args]\ntrain_size = 128\n", "")
                              .replace('"model_args.width"', "width"))).trials[0]
    row = member_table(builtin.members)["m00"]
    assert (row["width"], row["depth"], row["batch_norm"]) == (8, 1, True)
    assert "model" not in row and not any(k.startswith(("task_args.", "model_args."))
                                          for k in row)


def test_a_model_args_axis_is_an_hparam_of_each_members_tensorboard_run(ray_local, tmp_path):
    study = tmp_path / "study"
    out = sweep.run(parse(SPEC), study)
    assert out["completed"] == 2
    runs = sorted((study / "tensorboard").iterdir())
    assert len(runs) == 2
    hps = [hparams(r) for r in runs]
    assert sorted(hp["model_args.width"] for hp in hps) == [8, 16]
    for hp in hps:
        assert hp["task_args.train_size"] == 128 and hp["train_size"] == 128
        assert hp["model"] == "trainer.tasks.digits:mlp"
        assert hp["weight_decay"] == pytest.approx(0.1)
        assert not set(BUILTIN_MODEL) & set(hp), hp  # the built-in width 256 does not apply
