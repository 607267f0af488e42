"""trainer.schema's codec of a packed trial's per-member Tune keys (`mKK/<metric>`)."""

from __future__ import annotations

import pytest

from trainer.schema import (
    TABLE_KEY,
    TRIAL_KEY,
    member_id,
    member_key,
    parse_member_id,
    split_member_key,
    trial_table,
)


@pytest.mark.parametrize("k, name", [(0, "m00"), (3, "m03"), (42, "m42"), (100, "m100"),
                                     (12345, "m12345")])
def test_member_keys_round_trip_at_any_pack_size(k: int, name: str) -> None:
    assert member_id(k) == name and parse_member_id(name) == k
    assert member_key(k, "test_acc") == f"{name}/test_acc"
    assert split_member_key(member_key(k, "test_acc")) == (k, "test_acc")


@pytest.mark.parametrize("key", [
    "m3/test_acc", "m003/test_acc", "m0100/test_acc", "M03/test_acc", "x03/test_acc",
    "m03", "m03/", "/test_acc", "m03/test/acc", "m03/test-acc", "m03/1acc", "m-1/test_acc",
    "m٠٣/test_acc", "m03/test_acc\n", " m03/test_acc", "test_acc_mean", "",
])
def test_split_member_key_reads_only_what_member_key_writes(key: str) -> None:
    assert split_member_key(key) is None


def test_parse_member_id_is_strict() -> None:
    for name in ("m3", "m003", "m", "03", "m03/test_acc", "m+3"):
        assert parse_member_id(name) is None
    assert parse_member_id(3) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("k, metric", [(-1, "test_acc"), (True, "test_acc"), (1.0, "test_acc"),
                                       (1, ""), (1, "a/b"), (1, "test-acc"), (1, None)])
def test_member_key_refuses_what_it_could_not_read_back(k: object, metric: object) -> None:
    with pytest.raises(ValueError):
        member_key(k, metric)  # type: ignore[arg-type]


def test_trial_table_is_the_configs_member_table() -> None:
    table = {member_id(0): {"seed": 0}}
    assert trial_table({TRIAL_KEY: {"key": "p", TABLE_KEY: table}}) is table
    for config in ({}, {"trial": 3}, {"trial": {"table": [1]}}, {"lr": 1e-3}):
        assert trial_table(config) is None
