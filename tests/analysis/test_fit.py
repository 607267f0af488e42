"""The scaling-rule fit on synthetic studies with a known law."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis import RULES, analyze, fit_rules, to_weight_decay
from tests.analysis.synth import LAMBDA_NORM, make_study


@pytest.fixture(scope="module")
def fits() -> dict[str, dict]:
    return {rule: analyze(make_study(rule, seed=i), n_boot=100).fit
            for i, rule in enumerate(RULES)}


@pytest.mark.parametrize("rule", list(RULES))
def test_fit_recovers_rule_exponents_within_intervals(fits: dict, rule: str) -> None:
    fit = fits[rule]
    for axis, truth in zip("bBT", RULES[rule]):
        e = fit["exponents"][axis]
        assert e["ci_low"] <= truth <= e["ci_high"], (axis, e)
        assert e["ci_high"] - e["ci_low"] < 0.5, "interval too wide to mean anything"


@pytest.mark.parametrize("rule", list(RULES))
def test_fit_names_the_generating_rule_strongly(fits: dict, rule: str) -> None:
    fit = fits[rule]
    assert fit["preferred_rule"] == rule
    assert fit["preference"]["strength"] == "strong"
    assert fit["rules"][rule]["weight"] > 0.99
    assert fit["rules"][rule]["p_value"] > 0.01  # the true rule is not rejected
    best_loco = min(fit["rules"], key=lambda k: fit["rules"][k]["loco_rmse_ln"])
    assert best_loco == rule


def test_lambda_norm_interval_covers_truth_and_converts_to_weight_decay(fits: dict) -> None:
    lam = fits["sqrt"]["lambda_norm"]
    assert lam["ci_low"] <= LAMBDA_NORM <= lam["ci_high"]
    wd = lam["weight_decay"]
    # wd = lambda_norm * sqrt(b / (B T)) / lr, written out (not via to_weight_decay)
    expect = lam["estimate"] * (wd["batch_size"] / (wd["train_size"] * wd["epochs"])) ** 0.5 \
        / wd["lr"]
    assert wd["estimate"] == pytest.approx(expect)
    assert to_weight_decay(0.04, 1e-3, 64, 4000, 50) == pytest.approx(0.04 * (64 / 2e5) ** 0.5
                                                                     / 1e-3)
    assert wd["units"] == "PyTorch AdamW weight_decay"


def test_unvaried_axes_are_not_identified_and_rules_equal_there_tie() -> None:
    cells = [(16, 4000, 50.0), (64, 4000, 50.0), (256, 4000, 50.0)]
    fit = analyze(make_study("epoch_timescale", cells=cells), n_boot=50).fit
    assert fit["exponents"]["B"]["estimate"] is None
    assert "does not vary" in fit["exponents"]["T"]["note"]
    b = fit["exponents"]["b"]
    assert b["ci_low"] <= 1.0 <= b["ci_high"]
    # Only b varies: the two timescale rules predict the same (x = 1) and tie.
    assert fit["preferred_rule"] in ("epoch_timescale", "fraction_of_run")
    assert fit["preference"]["tied_with"] == [
        {"epoch_timescale": "fraction_of_run", "fraction_of_run": "epoch_timescale"}[
            fit["preferred_rule"]]]
    assert fit["preference"]["runner_up"] == "sqrt"


def test_no_usable_cells_gives_a_null_fit_with_a_note() -> None:
    cells = pd.DataFrame({"d_star": [1e-3], "batch_size": [64], "train_size": [5000],
                          "T": [100.0], "edge": ["high"], "n_lambdas": [5]})
    fit = fit_rules(cells)
    assert fit["n_cells"] == 0 and fit["preferred_rule"] is None
    assert fit["exponents"]["b"]["estimate"] is None
    assert "no cell has an interior best λ" in fit["notes"][0]
