"""Adaptive refinement on a synthetic oracle whose edges are known (`synth_refine`): the loop
stops by itself on each of its conditions, never re-runs a member nor overspends, says "the
data cannot tell" when λ has no effect, and lands where it lands whatever the first grid."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis._refine import propose, refine
from tests.analysis.synth_refine import Oracle, log_grid
from trainer.errors import BadInput

TARGETS = ("opt", "onset", "collapse")
BOUNDS = (1e-3, 3.0)
COARSE = log_grid(1e-3, 3.0, 3.0)  # 8 λ, ×3 apart
ONE = Oracle(cells=(50.0,))


def _kw(o: Oracle, **kw):
    return dict(cell_keys=["T"], seeds=list(range(32)), target=0.15, steps=o.steps,
                bounds=BOUNDS) | kw


def _run(o: Oracle, lams=COARSE, budget=1e9, rounds=8, **kw):
    return refine(o.evaluate, o.grid(lams, [0, 1, 2]), budget=budget, rounds=rounds,
                  **_kw(o, **kw))


def _keys(df: pd.DataFrame) -> list[tuple]:
    return [(r["T"], round(math.log(r["weight_decay"]), 6) if r["weight_decay"] > 0 else -99,
             r["seed"]) for r in df.to_dict("records")]


def test_stops_when_every_cell_meets_the_target():
    r = _run(ONE, target=0.3)
    assert r.stop == "target"
    last = r.proposals[-1]
    assert last.stop == "target" and not last.points
    assert all(c.met and max(c.halfwidths.values()) <= 0.3 for c in last.cells)
    truth = ONE.truth(50.0)
    c = last.cells[0]
    for t in TARGETS:  # the intervals it stopped on hold the truth
        assert abs(c.estimates[t] - truth[t]) <= c.halfwidths[t], t


def test_stops_when_the_budget_is_spent_and_never_overspends():
    budget = 2.5e5
    r = _run(ONE, budget=budget)
    assert r.stop == "budget"
    assert "budget" in r.proposals[-1].reason
    assert r.spent <= budget
    left = budget
    for p in r.proposals:
        assert p.cost <= left + 1e-6
        assert p.cost == pytest.approx(sum(ONE.steps(q) for q in p.points))
        left -= p.cost


def test_stops_with_no_gain_when_only_seeds_would_help_and_none_are_left():
    r = _run(ONE, seeds=[0, 1, 2], target=0.02)
    assert r.stop == "no_gain"
    assert "seed pool used up" in r.proposals[-1].reason
    assert len(r.proposals) < 8  # by itself, not by running out of rounds


def test_no_effect_ends_not_identified_rather_than_inventing_intervals():
    o = Oracle(cells=(12.5, 50.0), flat=True)
    r = _run(o, bounds=None)
    assert r.stop == "no_gain" and r.spent == 0 and len(r.proposals) == 1
    p = r.proposals[-1]
    assert not p.points and "cannot tell" in p.reason
    for c in p.cells:
        assert not c.met
        assert all(math.isinf(v) for v in c.halfwidths.values())
        assert set(c.why) == set(TARGETS)
    # With room above the grid it looks there for a collapse, and only there, then stops.
    r = _run(o)
    assert r.stop == "no_gain"
    new = r.results.iloc[len(o.grid(COARSE, [0, 1, 2])):]
    assert len(new) and (new["weight_decay"] > COARSE[-1]).all()
    assert all(math.isinf(v) for c in r.proposals[-1].cells for v in c.halfwidths.values())


def test_never_duplicates_a_member_never_proposes_zero_and_stays_in_bounds():
    o = Oracle(cells=(12.5, 200.0))
    init = o.grid(COARSE, [0, 1, 2])
    r = refine(o.evaluate, init, budget=1e9, rounds=3, **_kw(o))
    keys = _keys(r.results)
    assert len(keys) == len(set(keys))
    new = r.results.iloc[len(init):]
    assert len(new) and (new["weight_decay"] > 0).all()
    assert new["weight_decay"].between(*BOUNDS).all()
    u = np.log(new["weight_decay"].to_numpy()) * 128  # one ln λ lattice, not the grid's
    assert np.allclose(u, np.round(u), atol=1e-3)
    # Asked again on the final results, nothing proposed exists already.
    p = propose(r.results, budget_left=1e9, **_kw(o, target=0.05))
    have = set(keys)
    assert not {k for k in _keys(pd.DataFrame(p.points)) if k in have}


def test_two_initial_grids_converge_to_the_same_answer():
    a = _run(ONE, lams=COARSE).proposals[-1].cells[0]
    b = _run(ONE, lams=log_grid(1.6e-3, 3.0, 2.5)).proposals[-1].cells[0]
    truth = ONE.truth(50.0)
    for t in TARGETS:
        ha, hb = a.halfwidths[t], b.halfwidths[t]
        assert math.isfinite(ha) and math.isfinite(hb), t
        assert abs(a.estimates[t] - b.estimates[t]) <= math.hypot(ha, hb), t
        assert abs(a.estimates[t] - truth[t]) <= ha and abs(b.estimates[t] - truth[t]) <= hb, t


def test_an_edge_past_the_range_is_searched_within_bounds_only():
    high = log_grid(0.03, 3.0, 2.0)  # the onset (λ ≈ 0.02) lies below the grid
    r = _run(ONE, lams=high, bounds=None, rounds=3)
    assert r.stop == "no_gain"
    c = r.proposals[-1].cells[0]
    assert math.isinf(c.halfwidths["onset"]) and "below the smallest" in c.why["onset"]
    assert "no bounds given" in r.proposals[-1].reason
    r = _run(ONE, lams=high, bounds=(0.005, 3.0), rounds=3)
    c = r.proposals[-1].cells[0]
    assert math.isfinite(c.halfwidths["onset"])
    assert r.results["weight_decay"].loc[lambda s: s > 0].min() >= 0.005


@pytest.mark.parametrize("kw, key", [
    (dict(target=0.0), "target"), (dict(target=-0.1), "target"),
    (dict(target=math.nan), "target"), (dict(budget_left=-1.0), "budget"),
    (dict(max_points_per_cell=0), "max_points_per_cell"),
    (dict(bounds=(3.0, 1e-3)), "bounds"), (dict(cell_keys=["weight_decay"]), "cell_keys"),
    (dict(cell_keys=["batch_size"]), "results"), (dict(metric="val_acc"), "metric"),
])
def test_bad_arguments_name_the_field(kw, key):
    args = _kw(ONE) | dict(budget_left=1e6) | kw
    with pytest.raises(BadInput) as e:
        propose(ONE.grid(COARSE, [0, 1]), **args)
    assert e.value.key == key
    assert str(e.value).startswith(f"{key}: ")


def test_a_step_count_that_is_not_a_number_is_refused():
    with pytest.raises(BadInput) as e:
        propose(ONE.grid(COARSE, [0, 1, 2]), **_kw(ONE, steps=lambda p: math.nan),
                budget_left=1e9)
    assert e.value.key == "steps"


def _narrow_top(points) -> pd.DataFrame:
    """A top narrower than a ×3 grid, centred between two of its points (λ 0.14, width
    0.4 in ln λ): at the grid's λ no seed reaches half of it; no collapse."""
    rows = []
    for p in points:
        wd, s = float(p["weight_decay"]), int(p["seed"])
        e = np.random.default_rng(abs(hash((round(wd, 9), s))) % 2**32).standard_normal()
        top = 0.9 * math.exp(-((math.log(wd) - math.log(0.14)) / 0.4) ** 2) if wd > 0 else 0
        rows.append({"T": float(p["T"]), "weight_decay": wd, "seed": s,
                     "test_acc": float(np.clip(0.02 + top + 0.01 * e, 0, 1)),
                     "train_acc": 1.0})
    return pd.DataFrame(rows)


def test_a_top_the_grid_stepped_over_is_probed_not_given_up_as_not_learned():
    grid = _narrow_top([{"T": 50.0, "weight_decay": w, "seed": s}
                        for s in (0, 1, 2) for w in [0.0, *COARSE]])
    assert grid.test_acc.max() < 0.5  # the grid alone says "not learned"
    first = propose(grid, **_kw(ONE), budget_left=1e9)
    assert first.stop is None and first.points
    near = [p for p in first.points if abs(math.log(p["weight_decay"] / 0.14)) < 0.3]
    assert {p["seed"] for p in near} == {0, 1, 2}  # the gap holding the top, every seed
    r = refine(_narrow_top, grid, budget=1e9, rounds=4, **_kw(ONE))
    c = r.proposals[-1].cells[0]
    assert abs(c.estimates["opt"] - math.log(0.14)) < 0.25  # found, and placed


def test_a_flat_cell_at_chance_is_not_probed():
    flat = pd.DataFrame([{"T": 50.0, "weight_decay": w, "seed": s,
                          "test_acc": 0.02 + 0.005 * ((s + i) % 3), "train_acc": 1.0}
                         for s in (0, 1, 2) for i, w in enumerate([0.0, *COARSE])])
    p = propose(flat, **_kw(ONE), budget_left=1e9)
    inside = [q for q in p.points if COARSE[0] < q["weight_decay"] < COARSE[-1]]
    assert not inside  # (the collapse may still be looked for past the range's end)
