"""The plain-language verdict: what the fit says, in a few sentences (pure text)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

_NAMES = {"sqrt": "sqrt rule (Loshchilov & Hutter: d* ∝ sqrt(b/(B·T)))",
          "epoch_timescale": "constant epoch timescale (Wang & Aitchison: d* ∝ b/B)",
          "fraction_of_run": "timescale as a fixed fraction of the run (Bergsma et al.: "
                             "d* ∝ b/(B·T))",
          "constant": "null rule (d* does not move with b, B or T)"}


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


def _design(d: dict[str, Any] | None) -> str:
    if not d:
        return ""
    a, b = d["rules"]
    lo, hi = d["cells"]
    at = lambda c: ", ".join(f"{k} = {g(v)}" for k, v in c.items())  # noqa: E731
    return (f" To separate {a} from {b} (exponents differ by {g(d['exponent_difference'])} on "
            f"{d['axis']}): two cells a factor {g(d['factor'])} apart on {d['axis']} ({at(lo)}; "
            f"{at(hi)}), ≥ {d['seeds']} seeds each, a λ grid of ratio ≤ {g(d['lambda_ratio'])} "
            f"({d['n_lambdas']} values with λ = 0): about {g(d['member_steps'], 2)} member-steps "
            f"(assuming {d['assumes']}).")


def _rules(fit: dict[str, Any]) -> str:
    v = fit.get("verdict")
    if not v or not fit.get("rules"):
        return "The rules cannot be compared on these cells."
    rules = fit["rules"]
    if v["rule"] is not None:
        s = (f"Of the four rules only the {_NAMES[v['rule']]} is compatible with the free "
             f"fit of λ*{_holm(fit)}: {v['reason']}. Evidence: {v['strength']}")
        if v.get("stable") is False:
            ch = v.get("changes_under") or []
            return (s + f" as analyzed, but fragile: the verdict changes under {len(ch)} "
                    f"of {len(fit.get('sensitivity') or []) - 1} analysis choices "
                    f"({', '.join(ch[:3])}{', ...' if len(ch) > 3 else ''}).")
        return s + "."
    ok = v["compatible"]
    if not ok:
        return ("None of the four rules fits: each is rejected against the free fit at "
                f"p < 0.05 (F test{_holm(fit, ', ')}); read the free exponents above.")
    if len(ok) == len(rules):
        s = f"The data cannot tell the rules apart ({v['reason']}): all four remain compatible."
    else:
        p = ", ".join(f"{k} p = {g(_p(rules[k]), 2)}" for k in rules if k not in ok)
        s = (f"The data cannot single out a rule: {', '.join(ok)} remain compatible with the "
             f"free fit of λ* (F test, p ≥ 0.05{_holm(fit, ', ')}); rejected: {p}.")
    return s + _design(fit.get("design"))


def _holm(fit: dict[str, Any], sep: str = "") -> str:
    mt = fit.get("multiple_testing")
    if not mt:
        return ""
    s = f"Holm-adjusted over {mt['n_tests']} tests: targets × rules"
    return f"{sep}{s}" if sep else f" ({s})"


def _p(r: dict[str, Any]) -> float | None:
    return r["p_holm"] if r.get("p_holm") is not None else r["p_value"]


def _lambda_norm(fit: dict[str, Any]) -> str:
    lam = fit.get("lambda_norm") or {}
    if lam.get("estimate") is None:
        return ""
    sq = (fit.get("rules") or {}).get("sqrt", {})
    s = f"If the sqrt rule holds, λ_norm = {interval(lam)} (the paper's units)"
    if sq.get("compatible") is False:
        s = (f"The sqrt rule is rejected here (p = {g(_p(sq), 2)}); its best-fitting "
             f"λ_norm would be {interval(lam)}")
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


def _edge_fits(fit: dict[str, Any]) -> str:
    out = []
    targets = {**{f"{k} edge": v for k, v in (fit.get("edges") or {}).items()},
               **({"within-run onset": fit["within_run_onset"]}
                  if fit.get("within_run_onset") else {})}
    for name, e in targets.items():
        known = [f"{a}^{interval(v, 2)}" for a, v in e["exponents"].items()
                 if v["estimate"] is not None]
        if not known:
            continue
        v = e.get("verdict") or {}
        ok = v.get("compatible") or []
        rules = ", ".join(ok) if ok else "none of the four rules"
        out.append(f"the {name} scales as d ∝ {' · '.join(known)} over {e['n_cells']} "
                   f"cells ({rules} compatible)")
    return ("Beside λ* (each tested like it, Holm-corrected together): " + "; ".join(out)
            + ".") if out else ""


def verdict(fit: dict[str, Any], cells: pd.DataFrame) -> list[str]:
    """Sentences, most important first."""
    if fit["n_cells"] == 0:
        out = ["No cell has an interior best λ convertible to a per-step decay (and a best "
               "test accuracy of at least 0.5), so no scaling rule can be fitted."]
    else:
        out = [_exponents(fit), _rules(fit), _lambda_norm(fit)]
    return [s for s in (*out, _edge_fits(fit), _edges(cells)) if s]
