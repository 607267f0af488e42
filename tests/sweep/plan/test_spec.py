"""Spec validation: one clear line naming the field, exit 2, nothing written."""

import pytest

from sweep.plan.packs import make_plan
from sweep.plan.spec import SpecError, parse
from tests.sweep._helpers import assert_run_refused

GOOD = """
name = "t"
preset = "tiny"
[fixed]
epochs = 2
[grid]
weight_decay = [0.0, 0.1]
seed = [0, 1]
"""


def test_a_good_spec_parses_with_defaults():
    s = parse(GOOD)
    assert s.grid == {"weight_decay": [0.0, 0.1], "seed": [0, 1]}
    assert (s.pack, s.cpus_per_trial, s.gpus_per_trial, s.max_failures) == (8, 1, 0, 2)


def test_log_axes_expand_to_geometric_grids():
    s = parse(GOOD.replace("weight_decay = [0.0, 0.1]", "lambda_norm = {log = [1e-3, 1.0, 4]}"))
    assert s.grid["lambda_norm"] == [0.001, 0.01, 0.1, 1.0]


@pytest.mark.parametrize("edit, field", [
    (("name = \"t\"", "name = \"t\"\nname2 = 3"), "name2"),
    (("[grid]", "[grid]\nwidthh = [1, 2]"), "grid.widthh"),
    (("seed = [0, 1]", "seed = []"), "grid.seed"),
    (("seed = [0, 1]", "seed = [\"a\", 1]"), "grid.seed"),
    (("weight_decay = [0.0, 0.1]", "weight_decay = [-0.1, 0.1]"), "grid.weight_decay"),
    (("weight_decay = [0.0, 0.1]", "weight_decay = {log = [0, 1, 3]}"), "grid.weight_decay"),
    (("[fixed]", "[fixed]\nbatch_size = 4096"), "fixed.batch_size"),
    (("[fixed]", "[run]\npack = 0\n[fixed]"), "run.pack"),
    (("[fixed]", "[run]\nspeed = 1\n[fixed]"), "run.speed"),
    (("[fixed]", "[resources]\ngpus_per_trial = -1\n[fixed]"), "resources.gpus_per_trial"),
    (("preset = \"tiny\"", "preset = \"huge\""), "preset"),
    (("[fixed]", "[fixed]\ndevice = \"cuda\""), "fixed.device"),
    (("[grid]", "[grid]\ncheckpoint_every = [5, 10]"), "grid.checkpoint_every"),
    (("seed = [0, 1]", "seed = [0, 1]\nbatch_size = [32, 4096]"), "grid.batch_size"),
])
def test_bad_specs_name_the_field(edit, field):
    with pytest.raises(SpecError) as e:
        make_plan(parse(GOOD.replace(*edit)))
    assert e.value.key == field, str(e.value)
    assert "\n" not in str(e.value)


def test_toml_syntax_errors_give_the_line():
    with pytest.raises(SpecError) as e:
        parse(GOOD.replace("seed = [0, 1]", "seed = [0, 1"))
    assert "line" in str(e.value)


def test_an_unreachable_address_is_bad_input_before_anything_is_written(tmp_path, wdsweep):
    spec = tmp_path / "s.toml"
    spec.write_text(GOOD)
    r = wdsweep("run", spec, "--study", tmp_path / "study", "--address", "127.0.0.1:1",
                timeout=120)
    assert r.returncode == 2 and "--address: cannot reach Ray" in r.stderr, r.stderr
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("spec_text, needle", [
    ("name = \"t\"\n[grid]\nseed = []\n", "grid.seed"),
    ("name = \"t\"\n[run]\npack = 0\n", "run.pack"),
    ("name = \"t\"\n[grid\n", "line"),
])
def test_cli_rejects_bad_specs_with_exit_2_and_writes_nothing(tmp_path, wdsweep, spec_text,
                                                              needle):
    assert_run_refused(wdsweep, tmp_path, spec_text, needle, timeout=120)
