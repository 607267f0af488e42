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


MISSING = "—"  # what the report shows for a value that does not exist (never None/nan)


def g(v: float | None, nd: int = 3) -> str:
    """A number for people: integers as such (B = 4000, not 4e+03), else nd digits; a
    missing or non-finite value is "—"."""
    if isinstance(v, str):
        return v
    if v is None or not math.isfinite(v):
        return MISSING
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e7 else f"{v:.{nd}g}"


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def interval(d: dict[str, Any], nd: int = 3, missing: str = "not identified") -> str:
    """"est [lo, hi]"; the estimate alone without an interval; `missing` without either."""
    if not _finite(d.get("estimate")):
        return missing
    if not (_finite(d.get("ci_low")) and _finite(d.get("ci_high"))):
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


def _pow2(x: float) -> float:
    return float(2 ** max(0, round(math.log2(x))))


def _sig2(x: float) -> float:
    """A whole number with two significant figures (45.3 -> 45, 2828 -> 2800), at least 1."""
    if x < 1:
        return 1.0
    k = max(0, int(math.floor(math.log10(x))) - 1)
    return float(max(1, math.floor(x / 10**k + 0.5)) * 10**k)


ROUNDING = "b rounded to a power of two, B and T to whole numbers of two significant figures"


def nice_design(d: dict[str, Any]) -> dict[str, Any]:
    """The separating design with cells you can run: batch size, data size and epochs are
    integers (b a power of two, B and T two significant figures). The lower cell is rounded
    and the upper one is the lower times the design's factor on its axis, so the factor
    holds exactly; the cost is recomputed for the rounded cells."""
    lo, hi = d["cells"]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0
               for c in (lo, hi) for v in c.values()):
        return {"cells": [lo, hi], "member_steps": d["member_steps"], "rounded": False}
    rnd = {"b": _pow2, "B": _sig2, "T": _sig2}
    low = {k: rnd.get(k, _sig2)(v) for k, v in lo.items()}
    high = {k: low[k] * d["factor"] if k == d["axis"] else low[k] for k in low}
    steps = sum(c["T"] * c["B"] / c["b"] for c in (low, high)) if {"b", "B", "T"} <= set(
        low) else math.nan
    return {"cells": [low, high], "member_steps": d["seeds"] * d["n_lambdas"] * steps,
            "rounded": True}


def _design(d: dict[str, Any] | None) -> str:
    if not d:
        return ""
    a, b = d["rules"]
    nice = nice_design(d)
    lo, hi = nice["cells"]
    at = lambda c: ", ".join(f"{k} = {g(v)}" for k, v in c.items())  # noqa: E731
    how = f"; {ROUNDING}" if nice["rounded"] else ""
    return (f" To separate {a} from {b} (exponents differ by {g(d['exponent_difference'])} on "
            f"{d['axis']}): two cells a factor {g(d['factor'])} apart on {d['axis']} ({at(lo)}; "
            f"{at(hi)}{how}), ≥ {d['seeds']} seeds each, a λ grid of ratio ≤ "
            f"{g(d['lambda_ratio'])} ({d['n_lambdas']} values with λ = 0): about "
            f"{g(nice['member_steps'], 2)} member-steps (assuming {d['assumes']}).")


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
        return ("Not one of the four rules fits: each is rejected against the free fit at "
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


# Each rule as the recommendation it makes at another b, B, T (and lr), in PyTorch units,
# with the name of its fitted constant (`_fit.CONSTANTS` in words).
FORMULA = {
    "sqrt": ("weight_decay = λ_norm · sqrt(b/(B·T)) / lr", "λ_norm"),
    "epoch_timescale": ("weight_decay = b / (lr · B · τ_epoch)", "τ_epoch (epochs)"),
    "fraction_of_run": ("weight_decay = b / (lr · B · T · τ_iter/S)", "τ_iter/S"),
    "constant": ("weight_decay = d* / lr", "d* (per-step decay)"),
}


def _example(fit: dict[str, Any], rule: str) -> str:
    """The rule's weight_decay at the study's most common lr, b, B, T."""
    from analysis._fit import predict

    at = (fit.get("lambda_norm") or {}).get("weight_decay") or {}
    k = fit["rules"][rule]["constant"]
    if not all(_finite(at.get(c)) for c in ("lr", "batch_size", "train_size", "epochs")):
        return ""
    wd = {n: float(predict(rule, k[n], at["batch_size"], at["train_size"], at["epochs"])
                   / at["lr"]) if _finite(k.get(n)) else None
          for n in ("estimate", "ci_low", "ci_high")}
    if _finite(wd["ci_low"]) and _finite(wd["ci_high"]):  # a timescale's bounds swap
        wd["ci_low"], wd["ci_high"] = sorted((wd["ci_low"], wd["ci_high"]))
    return (f"at lr = {g(at['lr'])}, b = {g(at['batch_size'])}, B = {g(at['train_size'])}, "
            f"T = {g(at['epochs'])}: weight_decay = {interval(wd, missing=MISSING)}")


def _join(xs: list[str], last: str) -> str:
    return last.join([", ".join(xs[:-1]), xs[-1]]) if len(xs) > 1 else "".join(xs)


def extrapolation(fit: dict[str, Any]) -> dict[str, str]:
    """What the verdict means for choosing λ at another b, B or T: {kind, text} and, when a
    rule is named, its formula, fitted constant and an example."""
    v = fit.get("verdict") or {}
    rule = v.get("rule")
    if rule:
        k = fit["rules"][rule]["constant"]
        formula, name = FORMULA[rule]
        varied = [a for a in ("b", "B", "T") if a in (fit.get("identified") or [])]
        fixed = [a for a in ("b", "B", "T") if a not in varied]
        text = (f"The {_NAMES[rule]} is the only rule the data leave standing "
                f"({v['strength']}): choose λ at another "
                f"{_join(varied, ' or ') or 'setting'} by the formula below.")
        if fixed:
            text += (f" Only {_join(varied, ' and ')} varied, so nothing is said about "
                     f"{_join(fixed, ' or ')}: keep {'it' if len(fixed) == 1 else 'them'} as "
                     "measured.")
        if v.get("stable") is False:
            n = len(fit.get("sensitivity") or []) - 1
            text += (f" Fragile: the verdict changes under {len(v.get('changes_under') or [])}"
                     f" of {n} analysis choices, so treat the formula as provisional.")
        return {"kind": "rule", "text": text, "formula": formula,
                "constant": f"{name} = {interval(k, missing=MISSING)} (95% interval)",
                "example": _example(fit, rule)}
    ok = v.get("compatible") or []
    if fit.get("rules") and not ok:
        text = ("Not one of the four rules fits (each is rejected against the free fit), so "
                "the best λ cannot be carried to another b, B or T by a rule: the free "
                "exponents below describe the trend only across the cells measured; measure "
                "λ at the new setting.")
        return {"kind": "none_fits", "text": text}
    why = v.get("reason") or "too few usable cells to fit"
    text = (f"The data cannot tell how λ should change with b, B or T ({why}"
            + (f"; still compatible: {', '.join(ok)}" if ok else "") + "), so these λ apply "
            "to the cells measured only: they cannot be extrapolated to another b, B or T.")
    if fit.get("design"):
        text += " The design in the verdict below would decide between the rules."
    return {"kind": "cannot_tell", "text": text}
