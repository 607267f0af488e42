"""What a refined study spent against a full grid at its final resolution
(analysis/_refine_report.py), on hand-made tables whose answer is worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import _refine_report as rr

LN10 = math.log(10)
RECORD = {"settings": {"target": 0.25, "budget": 5000.0},
          "rounds": [{"experiment": "exp-001", "points": 3}, {"experiment": "exp-002"}],
          "stop": "budget", "stop_reason": "budget: the cheapest useful step costs 100"}


def _rows(cell: str, exp: str, steps: float, pts: list[tuple[int, float]]) -> list[dict]:
    return [dict(cell=cell, seed=s, lam=lam, experiment=exp, member_steps=steps)
            for s, lam in pts]


def two_rounds() -> pd.DataFrame:
    """Cell b=64 (2 seeds, 100 steps a member): the grid λ = 0.01, 0.1, 1 (gaps ln 10);
    round 1 halves seed 0's two gaps and seed 1's upper one (gaps ln 10 / 2).
    Cell b=128 (3 seeds, 50 steps, λ = 0 too): the same grid; round 2 adds one point
    e^0.5 above 0.01 for seed 2 (gaps 0.5 and ln 10 - 0.5)."""
    grid = [0.01, 0.1, 1.0]
    mid = math.sqrt(0.1 * 0.01), math.sqrt(0.1)
    rows = (_rows("b=64", "exp-000", 100, [(s, x) for s in (0, 1) for x in grid])
            + _rows("b=128", "exp-000", 50, [(s, x) for s in (0, 1, 2) for x in [0.0, *grid]])
            + _rows("b=64", "exp-001", 100, [(0, mid[0]), (0, mid[1]), (1, mid[1])])
            + _rows("b=128", "exp-002", 50, [(2, 0.01 * math.exp(0.5))]))
    df = pd.DataFrame(rows)
    return df.assign(run=[f"r{i}" for i in range(len(df))])


def test_each_round_and_cell_is_costed_from_its_rows():
    s = rr.summarize(two_rounds(), refine=RECORD)
    assert s is not None
    assert s.rounds[["round", "experiment", "label", "members", "cells", "member_steps"]
                    ].to_dict("records") == [
        dict(round=0, experiment="exp-000", label="grid", members=18, cells=2,
             member_steps=6 * 100 + 12 * 50),
        dict(round=1, experiment="exp-001", label="round 1", members=3, cells=1,
             member_steps=300.0),
        dict(round=2, experiment="exp-002", label="round 2", members=1, cells=1,
             member_steps=50.0)]
    per = s.per_cell.set_index(["cell", "experiment"])["member_steps"].to_dict()
    assert per == {("b=128", "exp-000"): 600.0, ("b=128", "exp-002"): 50.0,
                   ("b=64", "exp-000"): 600.0, ("b=64", "exp-001"): 300.0}
    assert s.spent == 1550.0 and s.stop == "budget" and s.reason.startswith("budget")
    assert s.target == 0.25


def test_the_dense_grid_is_the_reached_spacing_over_the_range_times_the_seeds():
    s = rr.summarize(two_rounds(), refine=RECORD)
    c = s.cells.set_index("cell")
    # b=64: refined gaps ln10/2 (six of them) -> ln(1/0.01) / (ln10/2) = 4 steps, 5 λ;
    # 2 seeds, 100 steps a member: 1,000 member-steps for the dense grid, 900 spent.
    a = c.loc["b=64"]
    assert a.spacing_ln == pytest.approx(LN10 / 2) and a.grid_spacing_ln == pytest.approx(LN10)
    assert (a.dense_lambdas, a.seeds, a.dense_members) == (5, 2, 10)
    assert a.dense_member_steps == 1000.0 and a.member_steps == 900.0
    assert a.ratio == pytest.approx(0.9)
    # b=128: the finer gaps are 0.5 and ln10 - 0.5, median ln10/2 -> 5 λ, plus its λ = 0
    # baseline: 6 λ x 3 seeds x 50 steps = 900; spent 12 x 50 + 50 = 650.
    b = c.loc["b=128"]
    assert b.spacing_ln == pytest.approx(LN10 / 2)
    assert (b.dense_lambdas, b.seeds, b.dense_member_steps, b.member_steps) == \
        (6, 3, 900.0, 650.0)
    assert s.dense == 1900.0 and s.ratio == pytest.approx(1550 / 1900)


def test_a_cell_no_round_touched_is_compared_with_its_own_grid():
    df = two_rounds()
    df = df[~((df.cell == "b=128") & (df.experiment == "exp-002"))]
    c = rr.summarize(df, refine=RECORD).cells.set_index("cell").loc["b=128"]
    assert c.spacing_ln == pytest.approx(LN10)  # the grid's own: 3 λ, plus the baseline
    assert (c.dense_lambdas, c.dense_member_steps, c.member_steps) == (4, 600.0, 600.0)
    assert c.ratio == 1.0


def test_half_widths_come_from_the_analysis_intervals_and_met_needs_all_three():
    cells = pd.DataFrame({
        "cell": ["b=64", "b=128"],
        "lambda_star": [0.1, 0.2], "lambda_star_ci_low": [0.1 * math.exp(-0.2), 0.2 / 1.1],
        "lambda_star_ci_high": [0.1 * math.exp(0.2), 0.2 * 1.1],
        "lambda_onset": [0.05, 0.1], "lambda_onset_ci_low": [0.05 * math.exp(-0.1), np.nan],
        "lambda_onset_ci_high": [0.05 * math.exp(0.1), np.nan],
        "lambda_collapse": [0.5, 0.6], "lambda_collapse_ci_low": [0.5 * math.exp(-0.24), 0.5],
        "lambda_collapse_ci_high": [0.5 * math.exp(0.24), 0.7]})
    c = rr.summarize(two_rounds(), cells, refine=RECORD).cells.set_index("cell")
    assert c.loc["b=64", ["hw_opt", "hw_onset", "hw_collapse"]].tolist() == \
        pytest.approx([0.2, 0.1, 0.24])
    assert c.loc["b=128", "hw_opt"] == pytest.approx(math.log(1.1))
    assert math.isnan(c.loc["b=128", "hw_onset"])  # no interval: not a number pretended
    assert bool(c.loc["b=64", "met"])
    assert not c.loc["b=128", "met"]  # the onset has no interval: not met


def test_an_ordinary_study_is_not_refined():
    df = two_rounds()
    assert rr.summarize(df, refine=None) is None  # several experiments, nobody says so
    one = df[df.experiment == "exp-000"]
    assert rr.summarize(one, refine=RECORD) is None  # said so, but only the grid ran
    assert rr.summarize(df.assign(experiment=""), refine=RECORD) is None
    assert rr.summarize(df.drop(columns="experiment"), refine=RECORD) is None


def test_a_record_without_rounds_names_only_the_grid_and_a_bad_one_is_ignored():
    s = rr.summarize(two_rounds(), refine={"rounds": "junk", "settings": {"target": -1},
                                            "stop": 3})
    assert s.rounds["label"].tolist() == ["grid", "experiment exp-001", "experiment exp-002"]
    assert s.target is None and s.stop is None and s.reason is None
    assert s.spent == 1550.0


def test_an_unrecorded_experiment_after_a_round_is_that_round_continued():
    df = two_rounds()
    df.loc[df.experiment == "exp-002", "experiment"] = "exp-003"  # a resume of round 1 ...
    rec = {**RECORD, "rounds": [{"experiment": "exp-001"}]}
    s = rr.summarize(df, refine=rec)
    assert s.rounds["label"].tolist() == ["grid", "round 1", "round 1 (continued)"]
    # ... and a resumed grid (exp-000 killed, finished in exp-001) is all grid.
    df = two_rounds()
    df.loc[df.experiment == "exp-001", "experiment"] = "exp-000b"
    s = rr.summarize(df, refine={"rounds": [{"experiment": "exp-002"}]})
    assert s.rounds["label"].tolist() == ["grid", "grid", "round 1"]
    assert s.cells.set_index("cell").loc["b=64", "spacing_ln"] == pytest.approx(LN10 / 2)


def test_members_are_one_row_per_run_with_total_steps_or_the_last_step():
    hist = pd.DataFrame({"run": ["a", "a", "b", "b"], "cell": "b=64", "seed": [0, 0, 1, 1],
                         "lam": [0.1, 0.1, 0.2, 0.2], "experiment": "exp-000",
                         "total_steps": [300, 300, np.nan, np.nan], "step": [150, 300, 100, 200]})
    m = rr.members(hist)
    assert m[["run", "member_steps"]].values.tolist() == [["a", 300.0], ["b", 200.0]]
    assert rr.members(hist.drop(columns=["total_steps"]))["member_steps"].tolist() == \
        [300.0, 200.0]
    assert rr.members(hist.iloc[:0]).empty


@pytest.mark.parametrize("lo, hi, h, n", [(0.01, 1.0, LN10 / 2, 5), (0.01, 1.0, 1.0, 6),
                                          (0.1, 0.1, 0.5, 1), (0.01, 1.0, math.nan, 0),
                                          (0.0, 1.0, 0.5, 0), (0.01, 1.0, 100.0, 2)])
def test_dense_lambdas(lo, hi, h, n):
    assert rr.dense_lambdas(lo, hi, h) == n
