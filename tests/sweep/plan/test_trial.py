"""The contracts between planning, running and the store (sweep.plan.trial): a Trial's JSON
form and its hashes, the refusal of records that are not trials, Resources' defaults,
and the words study.json and results.csv record (ExpState, MemberState)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from sweep.plan.packs import make_plan
from sweep.plan.spec import parse
from sweep.plan.trial import TRIAL_KEY, ExpState, MemberState, Resources, Trial
from tests.sweep._helpers import spec_text

TRIALS = make_plan(parse(spec_text())).trials  # two packs of two members, no Ray


def _through_text(d: dict) -> dict:
    """What a plan record or Tune's params.json gives back: JSON text, parsed."""
    return json.loads(json.dumps(d))


@pytest.mark.parametrize("t", TRIALS, ids=lambda t: t.key)
def test_a_trial_round_trips_through_json_text(t: Trial) -> None:
    d = t.to_json()
    assert set(d) == {"key", "members"}  # no init unless resumed; the hashes are not data
    back = Trial.from_json(_through_text(d))
    assert back == t and back.members == t.members  # lists back to tuples, every field
    assert back.hashes == t.hashes == tuple(m.config_hash() for m in t.members)
    assert _through_text(back.to_json()) == _through_text(d)


def test_a_resumed_trial_carries_its_init_through_json_and_keeps_its_identity() -> None:
    t = TRIALS[0]
    uris = ["/store/exp-000/trial-x/checkpoint_000003", "s3://bucket/exp-001/checkpoint_2"]
    r = t.resumed(uris)
    assert r.init == tuple(uris) and t.init == ()  # a new trial; the planned one unchanged
    assert (r.key, r.members, r.hashes) == (t.key, t.members, t.hashes)
    assert r != t  # init is part of what a trial is
    d = r.to_json()
    assert d["init"] == uris
    assert Trial.from_json(_through_text(d)) == r


def test_the_key_names_the_members_hashes_and_the_hashes_are_computed_not_read() -> None:
    for t in TRIALS:
        want = hashlib.sha256("".join(t.hashes).encode()).hexdigest()[:12]
        assert t.key == want == Trial.pack(t.members).key and TRIAL_KEY.match(t.key)
        assert t.member_steps == sum(m.total_steps for m in t.members) > 0
        assert "hashes" not in repr(t)
    a, b = TRIALS
    assert a.key != b.key and not set(a.hashes) & set(b.hashes)
    # A record that claims other hashes gets its members' real ones (never trusted).
    d = dict(_through_text(a.to_json()), hashes=list(b.hashes))
    assert Trial.from_json(d).hashes == a.hashes
    assert not next(f for f in dataclasses.fields(Trial) if f.name == "hashes").init


def _record(**edit) -> dict:
    d = _through_text(TRIALS[0].to_json())
    for k, v in edit.items():
        if v is KeyError:
            del d[k]
        else:
            d[k] = v
    return d


def _member(**edit) -> list[dict]:
    return [dict(_record()["members"][0], **edit)]


@pytest.mark.parametrize("record, kind", [
    (None, TypeError), ([], TypeError), ("a trial", TypeError), (7, TypeError),
    (_record(members=KeyError), TypeError),
    (_record(members={"m00": _record()["members"][0]}), TypeError),
    (_record(members=["not a config"]), TypeError),
    (_record(members=[]), TypeError),
    (_record(init="/one/uri"), TypeError),
    (_record(init=[1, 2]), TypeError),
    (_record(key=KeyError), ValueError),
    (_record(key="../../../etc"), ValueError),  # it becomes a directory name
    (_record(key="ABCDEF012345"), ValueError),
    (_record(key="0123456789abc"), ValueError),
    (_record(key=123456789012), ValueError),
    (_record(members=_member(no_such_key=1)), TypeError),
    (_record(members=_member(weight_decay=-1.0)), ValueError),  # ConfigError: a ValueError
    (_record(members=_member(task="nope")), ValueError),
], ids=["none", "list", "str", "int", "no-members", "members-dict", "member-str",
        "no-member", "init-str", "init-ints", "no-key", "key-path", "key-upper", "key-13",
        "key-int", "member-unknown-key", "member-bad-decay", "member-bad-task"])
def test_from_json_refuses_what_is_not_a_trial_record(record, kind) -> None:
    with pytest.raises(kind):
        Trial.from_json(record)


def test_a_trial_is_built_only_from_configs() -> None:
    t = TRIALS[0]
    with pytest.raises(TypeError):
        Trial(t.key, (t.members[0], dataclasses.asdict(t.members[1])))
    with pytest.raises(TypeError):
        Trial(t.key, t.members, init=(None,))
    with pytest.raises(ValueError, match="12 hex digits"):
        Trial("x" * 12, t.members)


def test_resources_default_where_a_record_is_silent_and_ignore_other_keys() -> None:
    assert Resources.of({}) == Resources() == Resources(1, 0, 2)
    exp = {"name": "exp-000", "uri": "/s", "status": "finished", "members": [],
           "cpus_per_trial": 2, "gpus_per_trial": 0.5}  # an experiment's record
    r = Resources.of(exp)
    assert (r.cpus_per_trial, r.gpus_per_trial, r.max_failures) == (2, 0.5, 2) and r.on_gpu
    assert Resources.of(r.as_dict()) == r
    assert r.as_dict() == {"cpus_per_trial": 2, "gpus_per_trial": 0.5, "max_failures": 2}
    assert not Resources.of({"max_failures": 0}).on_gpu
    assert parse(spec_text()).resources == Resources.of({"max_failures": 0})  # its [run]


def test_the_recorded_words_are_plain_strings() -> None:
    assert [s.value for s in ExpState] == ["running", "finished", "errored", "continued",
                                           "imported"]
    assert [s.value for s in MemberState] == ["completed", "errored"]
    assert json.dumps([ExpState.CONTINUED, MemberState.COMPLETED]) == '["continued", "completed"]'
    assert ExpState.IMPORTED == "imported" and f"{MemberState.ERRORED}" == "errored"
    assert ExpState("finished") is ExpState.FINISHED
    with pytest.raises(ValueError):
        ExpState("done")
