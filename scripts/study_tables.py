"""The tables of a docs/results.md rule-study section, from `wdsweep analyze` output.

    wdsweep analyze docs/data/STUDY --out DIR
    python scripts/study_tables.py DIR

prints, as Markdown: one row per cell (its steps, best test accuracy -- "does not learn"
below 0.5, the pre-registered threshold -- lambda*, the onset and collapse edges with their
95% intervals, lambda*/collapse), then per target the free exponents with intervals and
the rules' Holm-adjusted p values, lambda_norm for the sqrt rule, and the verdict with the
analysis choices that change it (fit.json's sensitivity report). Numbers only from the
analysis' own files: nothing is re-estimated here.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

LEARNS = 0.5  # best test accuracy a cell must reach to enter the fits (studies/rules_cosine.md)
RULES = ("sqrt", "epoch_timescale", "fraction_of_run", "constant")


def _g(v: float, d: int = 3) -> str:
    if not (isinstance(v, (int, float)) and math.isfinite(v)):
        return "–"
    return f"{v:,.0f}" if abs(v) >= 1000 and float(v).is_integer() else f"{v:.{d}g}"


def _ci(r: pd.Series, col: str) -> str:
    v, lo, hi = (r.get(f"{col}{s}") for s in ("", "_ci_low", "_ci_high"))
    if not (isinstance(v, float) and math.isfinite(v)):
        return "–"
    if not all(isinstance(x, float) and math.isfinite(x) for x in (lo, hi)):
        return f"({_g(v)})"
    return f"{_g(v)} [{_g(lo)}, {_g(hi)}]"


def cells(df: pd.DataFrame) -> str:
    axes = [c for c in ("batch_size", "train_size", "T") if df[c].nunique() > 1]
    name = {"batch_size": "b", "train_size": "B", "T": "T"}
    out = ["| cell (steps) | best test acc | λ* [95%] | onset [95%] | collapse [95%] | "
           "λ*/collapse |", "|---|---|---|---|---|---|"]
    for _, r in df.sort_values(["batch_size", "train_size", "T"]).iterrows():
        steps = int(r["T"]) * int(r["train_size"] // r["batch_size"])
        label = ", ".join(f"{name[a]}={int(r[a])}" for a in axes)
        learns = r["best_acc"] >= LEARNS
        acc = f"**{r['best_acc']:.2f}**" if learns else f"{r['best_acc']:.2f} — does not learn"
        star = _ci(r, "lambda_star") if learns else f"({_g(r['lambda_star'])})"
        onset = _ci(r, "lambda_onset") if learns else f"({_g(r['lambda_onset'])})"
        ratio = _g(r["star_over_collapse"], 2) if learns else ""
        out.append(f"| {label} ({steps:,}) | {acc} | {star} | {onset} | "
                   f"{_ci(r, 'lambda_collapse')} | {ratio} |")
    return "\n".join(out)


def _exps(e: dict) -> str:
    parts = []
    for k in ("b", "B", "T"):
        x = e.get(k) or {}
        if x.get("estimate") is not None:
            parts.append(f"{k} {_g(x['estimate'], 2)} [{_g(x['ci_low'], 2)}, "
                         f"{_g(x['ci_high'], 2)}]")
    return ", ".join(parts) or "none identified"


def fits(fit: dict) -> str:
    out = [f"cells fitted: {fit['n_cells']} of {fit['n_cells_total']}; residual dof "
           f"{fit['dof']}; identified: {', '.join(fit['identified'])}", "",
           "| target | free exponents [95%] | " + " | ".join(RULES) + " | verdict |",
           "|---|---|" + "---|" * len(RULES) + "---|"]
    free = {"lambda_star": fit["exponents"], "onset": fit["edges"]["onset"]["exponents"],
            "collapse": fit["edges"]["collapse"]["exponents"],
            "within_run_onset": fit["within_run_onset"]["exponents"]}
    for t, rec in fit["targets"].items():
        ps = [_g((rec["rules"].get(r) or {}).get("p_holm", math.nan), 2) for r in RULES]
        v = rec["verdict"]
        out.append(f"| {t} ({rec['n_cells']} cells) | {_exps(free.get(t, {}))} | "
                   + " | ".join(ps) + f" | {v['rule'] or '–'} ({v['strength']}) |")
    ln = fit.get("lambda_norm") or {}
    if ln.get("estimate") is not None:
        wd = ln.get("weight_decay") or {}
        out += ["", f"λ_norm (sqrt rule): {_g(ln['estimate'])} [{_g(ln['ci_low'])}, "
                f"{_g(ln['ci_high'])}]; as weight_decay at b={_g(wd.get('batch_size'))}, "
                f"B={_g(wd.get('train_size'))}, T={_g(wd.get('epochs'))}: "
                f"{_g(wd.get('estimate'))} [{_g(wd.get('ci_low'))}, {_g(wd.get('ci_high'))}]"]
    i = fit.get("integrated") or {}
    if i.get("exponents"):
        ps = ", ".join(f"{r} {_g(i['rules'][r].get('p_holm', math.nan), 2)}"
                       for r in RULES if r in i.get("rules", {}))
        out += ["", f"integrated decay D* exponents: {_exps(i['exponents'])}; Holm p: {ps}"]
    v = fit["verdict"]
    out += ["", f"verdict: {v['rule'] or 'none'} ({v['strength']}; {v['reason']}); target "
            f"{v['target']}; stable: {v.get('stable', 'not checked')}"]
    if v.get("changes_under"):
        out.append("changes under: " + "; ".join(v["changes_under"]))
    return "\n".join(out)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    d = Path(argv[0])
    print(cells(pd.read_csv(d / "lambda_star.csv")))
    print()
    print(fits(json.loads((d / "fit.json").read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
