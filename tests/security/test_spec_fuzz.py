"""A seeded fuzz of the spec parser (issue 23): valid specs mutated -- wrong types, huge
and tiny numbers, unicode, nesting, unknown keys, broken bytes -- go through everything
`wdsweep run --dry-run` checks (parse, grid size, plan, bounds, summary) in-process.
Every outcome is a plan or a one-line SpecError/ConfigError naming a key; never another
exception, never a file written. WDSWEEP_FUZZ_SEED / WDSWEEP_FUZZ_N vary the run."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any

from sweep.plan.bounds import check_grid_size, check_plan
from sweep.plan.packs import make_plan
from sweep.plan.spec import load
from trainer import ConfigError

SEED = int(os.environ.get("WDSWEEP_FUZZ_SEED", "23"))
N = int(os.environ.get("WDSWEEP_FUZZ_N", "1500"))

BASES = [
    {"name": "t", "preset": "tiny", "fixed": {"epochs": 2},
     "grid": {"weight_decay": [0.0, 0.1], "seed": [0, 1]}},
    {"name": "m", "preset": "modular", "fixed": {"steps": 10, "train_size": 100, "modulus": 11},
     "grid": {"lambda_norm": {"log": [1e-3, 1.0, 3]}}, "run": {"pack": 4}},
    {"name": "s", "preset": "seed", "fixed": {"steps": 100}, "grid": {"lr": [1e-3, 3e-3]},
     "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0},
     "run": {"pack": 2, "checkpoint_every": 50, "max_failures": 1, "storage": "runs"}},
    {"name": "u", "preset": "demo", "task": "nosuch_fuzz_mod:task", "code": ["models"],
     "task_args": {"n": 3}, "grid": {"seed": [0, 1]}},
]
KEYS = ["epochs", "steps", "train_size", "val_size", "test_size", "width", "depth", "bits",
        "modulus", "batch_size", "lr", "weight_decay", "decay_per_step", "lambda_norm",
        "seed", "data_seed", "bn_eps", "beta1", "noise", "eval_every", "train_digits",
        "task", "optimizer", "precision", "batch_norm", "shuffle", "model", "device",
        "threads", "checkpoint_every", "task_args.x", "model_args.y", "widthh", "λ", "",
        "name", "preset", "code"]
SECTION_KEYS = {"resources": ["cpus_per_trial", "gpus_per_trial", "memory"],
                "run": ["pack", "checkpoint_every", "max_failures", "storage", "callbacks",
                        "speed"]}
STRINGS = ["", "0.2", "1e-3", "none", "true", "λ", "𝔘nicode", "\u0000", "\x7f", "a" * 5000,
           "s3://", "s3://b/p", "gs://b/p", "file:///", "foo://bar", "http://127.0.0.1:9/",
           "~nosuchuser_fuzz/x", "../..", "/", "runs", "models", "loop", "missing", "afile",
           "nosuch_fuzz_mod:task", "math:sqrt", "math:pi", "a:b:c", ":", "modular_add",
           "binary_add", "bf16", "x.y", "ray.tune.Callback"]
NUMBERS = [0, 1, -1, 2, 7, 2**31, 2**63, 2**64, 10**30, 10**400, 0.0, -0.0, 0.5, 1e-3,
           1e-300, 5e-324, 1e308, -1e308, math.inf, -math.inf, math.nan, 1e6, 3.0]


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.random()
    if kind < 0.4:
        return rng.choice(NUMBERS)
    if kind < 0.6:
        return rng.choice(STRINGS)
    if kind < 0.65:
        return rng.choice([True, False])
    if kind < 0.85 and depth < 3:
        return [_value(rng, depth + 1) for _ in range(rng.choice([0, 1, 2, 3]))]
    if kind < 0.95 and depth < 3:
        return {rng.choice(["log", "lin", "x"]): [_value(rng, depth + 1) for _ in range(3)]}
    return _Raw(rng.choice(["1979-05-27T07:32:00Z", "07:32:00", "1979-05-27"]))


class _Raw(str):
    """A TOML literal written as is (dates, deep nests)."""


def _toml_value(v: Any) -> str:
    if isinstance(v, _Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) \
            else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(map(_toml_value, v)) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"


def _toml(spec: dict[str, Any]) -> str:
    top = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in spec.items()
           if not isinstance(v, dict) or k in ("task_args", "model_args") and not v]
    tables = [f"[{json.dumps(k)}]\n" + "".join(f"{json.dumps(a)} = {_toml_value(b)}\n"
                                               for a, b in v.items())
              for k, v in spec.items() if isinstance(v, dict) and v]
    return "\n".join(top) + "\n" + "\n".join(tables)


def _table(spec: dict[str, Any], name: str) -> dict[str, Any]:
    if not isinstance(spec.get(name), dict):
        spec[name] = {}  # an earlier mutation made it a scalar
    return spec[name]


def _mutate(rng: random.Random, spec: dict[str, Any]) -> None:
    op = rng.randrange(7)
    if op == 0:
        _table(spec, "fixed")[rng.choice(KEYS)] = _value(rng)
    elif op == 1:
        _table(spec, "grid")[rng.choice(KEYS)] = rng.choice(
            [[_value(rng) for _ in range(rng.randint(0, 3))], _value(rng),
             {rng.choice(["log", "lin"]): [rng.choice(NUMBERS) for _ in range(3)]}])
    elif op == 2:
        section = rng.choice(list(SECTION_KEYS))
        _table(spec, section)[rng.choice(SECTION_KEYS[section])] = _value(rng)
    elif op == 3:
        spec[rng.choice(["name", "preset", "task", "model", "code", "task_args", "extra",
                         "fixed", "grid", "run"])] = _value(rng)
    elif op == 4:
        depth = rng.choice([5, 33, 40, 200, 600])
        _table(spec, "task_args")["deep"] = _Raw("[" * depth + "]" * depth)
    elif op == 5 and isinstance(spec.get("grid"), dict) and spec["grid"]:
        spec["grid"].pop(rng.choice(list(spec["grid"])))
    else:
        _table(spec, "fixed")[rng.choice(KEYS[:20])] = rng.choice(NUMBERS)


def _bytes(rng: random.Random, text: str) -> bytes:
    data = text.encode()
    if rng.random() < 0.1 and data:  # a torn or corrupted file
        i = rng.randrange(len(data))
        data = rng.choice([data[:i], data[:i] + bytes([rng.randrange(256)]) + data[i + 1:],
                           data[:i] + "λ\u2028".encode() + data[i:]])
    return data


def _check_one(path: Path, yes: bool) -> str:
    """'ok' or the error's key; raises on anything that is not the project's one line."""
    try:
        spec = load(path)
        check_grid_size(spec, yes)
        plan = make_plan(spec)
        check_plan(plan, spec, yes)
        plan.summary(spec.cpus_per_trial)
        plan.record(spec.cpus_per_trial)
        return "ok"
    except ConfigError as e:  # SpecError included
        msg = str(e)
        assert "\n" not in msg and msg.startswith(f"{e.key}: "), msg
        return e.key


def _setup(d: Path) -> None:
    (d / "models").mkdir()
    (d / "loop").symlink_to(d / "loop")
    (d / "afile").write_text("not a directory")


def _listing(*dirs: Path) -> list[str]:
    return sorted(str(p) for d in dirs for p in d.rglob("*"))


def test_the_spec_parser_survives_mutated_specs(tmp_path, monkeypatch):
    specs, cwd = tmp_path / "specs", tmp_path / "cwd"
    specs.mkdir()
    cwd.mkdir()
    _setup(specs)
    monkeypatch.chdir(cwd)
    rng, outcomes = random.Random(SEED), {}
    path = specs / "s.toml"
    for i in range(N):
        spec = json.loads(json.dumps(rng.choice(BASES)))
        for _ in range(rng.randint(1, 3)):
            _mutate(rng, spec)
        data = _bytes(rng, _toml(spec))
        path.write_bytes(data)
        before = _listing(specs, cwd)
        try:
            key = _check_one(path, yes=rng.random() < 0.2)
        except Exception as e:  # what this test exists to find: report the spec
            raise AssertionError(f"spec {i} (seed {SEED}) raised {type(e).__name__}: {e}\n"
                                 f"{data[:2000]!r}") from e
        assert _listing(specs, cwd) == before, f"spec {i} wrote files:\n{data[:2000]!r}"
        outcomes[key] = outcomes.get(key, 0) + 1
    # The fuzz reaches both sides: plans that pass, and many different refused fields.
    assert outcomes.get("ok", 0) >= N // 50, outcomes
    assert len(outcomes) >= 25, outcomes
