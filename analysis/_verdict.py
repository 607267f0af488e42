"""The plain-language verdict: what the fit says, in a few sentences (pure text)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

_NAMES = {"sqrt": "sqrt rule (Loshchilov & Hutter: d* ∝ sqrt(b/(B·T)))",
          "epoch_timescale": "constant epoch timescale (Wang & Aitchison: d* ∝ b/B)",
          "fraction_of_run": "timescale as a fixed fraction of the run (Bergsma et al.: "
                             "d* ∝ b/(B·T))"}


def g(v: float | None, nd: int = 3) -> str:
    """A number for people: integers as such (B = 4000, not 4e+03), else nd digits."""
    if v is None or not math.isfinite(v):
        return "–"
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e7 else f"{v:.{nd}g}"


def interval(d: dict[str, Any], nd: int = 3) -> str:
    if d.get("estimate") is None:
        return "not identified"
    if d.get("ci_low") is None:
        return g(d["estimate"], nd)
    return f"{g(d['estimate'], nd)} [{g(d['ci_low'], nd)}, {g(d['ci_high'], nd)}]"


def _exponents(fit: dict[str, Any]) -> str:
    ex = fit["exponents"]
    known = [f"{a}^{interval(v, 2)}" for a, v in ex.items() if v["estimate"] is not None]
    unknown = [a for a, v in ex.items() if v["estimate"] is None]
    s = (f"Across {fit['n_cells']} cells with an interior best λ, the best per-step decay "
         f"scales as d* ∝ {' · '.join(known)} (95% intervals)." if known else
         f"Across {fit['n_cells']} usable cells no scaling axis varies, so no exponent is "
         "identified.")
    if known and unknown:
        s += (f" The exponent of {', '.join(unknown)} is not identified (it does not vary, "
              "or not independently of the others, across the usable cells).")
    return s


def _rules(fit: dict[str, Any]) -> str:
    pref = fit.get("preference")
    if not pref:
        return "The three rules cannot be compared on these cells."
    if pref["preferred_rule"] is None:
        return (f"The rules {', '.join(pref['tied_with'])} predict the same for the axes "
                "that vary here: the data cannot tell them apart.")
    best = pref["preferred_rule"]
    w = fit["rules"][best]["weight"]
    r = pref["evidence_ratio"]
    ratio = f"{r:.1f}" if r < 1e4 else f"above 10^{int(math.log10(r))}"
    s = (f"The data prefer the {_NAMES[best]}: evidence {pref['strength']} "
         f"(likelihood ratio {ratio} over {pref['runner_up']}; "
         f"Akaike weight {w:.3f}).")
    if pref["tied_with"]:
        s += (f" It cannot be told apart from {', '.join(pref['tied_with'])}, which predicts "
              "the same along the axes that vary.")
    p = fit["rules"][best]["p_value"]
    if p is not None and p < 0.01:
        s += f" Even so, it misfits (p = {p:.2g}): read the free exponents above."
    return s


def _lambda_norm(fit: dict[str, Any]) -> str:
    lam = fit.get("lambda_norm") or {}
    if lam.get("estimate") is None:
        return ""
    s = f"Under the sqrt rule, λ_norm = {interval(lam)} (the paper's units)"
    wd = lam.get("weight_decay")
    if wd:
        s += (f"; at lr = {g(wd['lr'])}, b = {g(wd['batch_size'])}, B = {g(wd['train_size'])}, "
              f"T = {g(wd['epochs'])} epochs that is PyTorch weight_decay = {interval(wd)}")
    return s + "."


def _edges(cells: pd.DataFrame) -> str:
    if "edge" not in cells:
        return ""
    e = cells[cells["edge"] != ""]
    if e.empty:
        return ""
    first = "; ".join(f"{c}: {x}" for c, x in zip(e["cell"][:3], e["extend"][:3]))
    more = f" (and {len(e) - 3} more)" if len(e) > 3 else ""
    return f"{len(e)} cells have their best λ at the edge of the searched range — {first}{more}."


def verdict(fit: dict[str, Any], cells: pd.DataFrame) -> list[str]:
    """Sentences, most important first."""
    if fit["n_cells"] == 0:
        out = ["No cell has an interior best λ convertible to a per-step decay, so no scaling "
               "rule can be fitted."]
    else:
        out = [_exponents(fit), _rules(fit), _lambda_norm(fit)]
    return [s for s in (*out, _edges(cells)) if s]
