from sweep.plan.packs import make_plan
from sweep.plan.spec import parse

SPEC = """
name = "p"
preset = "tiny"
[fixed]
epochs = 2
[grid]
weight_decay = [0.0, 0.01, 0.1]
seed = [0, 1]
batch_size = [32, 64]
[run]
pack = 4
"""


def test_points_differing_only_in_packable_keys_share_trials_up_to_pack():
    plan = make_plan(parse(SPEC))
    assert len(plan.members) == 12
    assert sorted(len(t.members) for t in plan.trials) == [2, 2, 4, 4]
    for t in plan.trials:
        assert len({m.batch_size for m in t.members}) == 1
    assert plan.cells == 2


def test_completed_members_are_not_planned_again():
    first = make_plan(parse(SPEC))
    done = {m.config_hash() for m in first.members[:5]}
    again = make_plan(parse(SPEC), done)
    assert again.skipped == 5
    planned = {m.config_hash() for t in again.trials for m in t.members}
    assert planned.isdisjoint(done) and len(planned) == 7


def test_a_decay_written_in_another_unit_is_the_same_member():
    a = make_plan(parse(SPEC))
    b = make_plan(parse(SPEC.replace("weight_decay = [0.0, 0.01, 0.1]",
                                     "decay_per_step = [0.0, 1e-5, 1e-4]")),
                  {m.config_hash() for m in a.members})
    assert b.trials == () and b.skipped == 12


def test_trial_keys_are_stable_across_plans():
    assert [t.key for t in make_plan(parse(SPEC)).trials] == \
        [t.key for t in make_plan(parse(SPEC)).trials]


def test_the_plan_and_the_compute_bound_share_one_estimate():
    from sweep.plan.bounds import plan_core_hours

    plan = make_plan(parse(SPEC))
    hours = plan_core_hours([t.members for t in plan.trials], 1)
    assert plan.core_minutes(1) == hours * 60 > 0
    assert plan.record(1)["core_minutes"] == round(hours * 60, 2)


def test_packing_costs_less_than_one_member_per_trial():
    """A pack step's fixed cost and a trial's start-up are paid once per pack
    (trainer.memory): the estimate sees what packing saves."""
    from trainer.memory import trial_seconds

    packed = make_plan(parse(SPEC))
    alone = make_plan(parse(SPEC.replace("pack = 4", "pack = 1")))
    assert len(alone.trials) == 12 > len(packed.trials)
    assert alone.core_minutes(1) > packed.core_minutes(1)
    seconds = [sum(trial_seconds(t.members) for t in p.trials) for p in (packed, alone)]
    assert seconds[1] > 2 * seconds[0], seconds
