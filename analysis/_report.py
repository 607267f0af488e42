"""report.html: one self-contained page (inline CSS, figures as base64 PNG, no
external anything), the answer first: a headline box with the recommended decay per
cell and what the verdict means at another b, B or T; then the evidence (verdict in
words, warnings, the best-λ table, figures, fit, sensitivity, runs).

Rendered from `templates/report.html.j2` by Jinja2 with autoescaping: everything here
builds plain strings and lists, and the template escapes them. Every value passes
through `_finalize`, so a missing number shows as "—", never None or nan.
A small inline script marks ``<body data-images-ok="true">`` once every image has
decoded, so a headless browser can check the page renders.
"""

from __future__ import annotations

import base64
import math
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import pandas as pd
from markupsafe import Markup

from analysis import _refine_report
from analysis._fit import AXIS_NAMES, RULES
from analysis._verdict import MISSING, extrapolation, g, interval, verdict

if TYPE_CHECKING:
    from analysis._analysis import Analysis

CAPTIONS = {
    "acc_vs_lambda": "Final accuracy (mean over each run's final window) against λ on a log "
                     "axis: the line is the mean over seeds, the dots are the seeds, one "
                     "color per cell. λ = 0 cannot sit on a log axis: its accuracy is the "
                     "dashed line of the cell's color. ▼ marks λ* (mean over seeds of the "
                     "centre of each seed's fitted top), ▶ the onset edge and ◀ the collapse "
                     "edge, each with its 95% interval (seed spread, curve-fit error, and "
                     "the grid only where a transition falls between two points).",
    "training_curves": "Train (solid) and test (dashed) accuracy, loss and weight norm "
                       "against training step for a few λ of one cell and seed: no decay, "
                       "the smallest, the one nearest λ*, the largest.",
    "dstar_fit": "Each cell's best per-step decay d* = lr·λ* against sqrt(b/(B·T)), log-log. "
                 "The sqrt rule is a straight line of slope 1 here; the other rules' "
                 "predictions (each with its fitted constant) are the hollow markers; the "
                 "legend (under the plot) gives each rule's F test against the free fit.",
    "collapse_view": "Test accuracy against four versions of the decay: PyTorch weight_decay, "
                     "λ_norm, τ_epoch = b/(B·d) and τ_iter/S. Under the right rule the "
                     "cells' curves fall on top of each other.",
    "bn_collapses": "Batch-norm runs with the most collapse events: test accuracy, training "
                    "loss and weight norm against step, events marked with red ×.",
    "delay": "Grokking delay: the step at which test accuracy first reaches 0.9 against the "
             "per-step decay (Omnigrok predicts delay ∝ 1/d, slope −1).",
}
ABSENT = {
    "acc_vs_lambda": "no run with λ > 0 has a finite final accuracy",
    "training_curves": "the input has no per-evaluation history",
    "dstar_fit": "no cell has an interior best λ convertible to a per-step decay d*",
    "collapse_view": "the per-step decay or b, B, T is unknown",
    "bn_collapses": "no collapse events in batch-norm runs (or no per-evaluation history)",
    "delay": "fewer than three runs reach test accuracy 0.9, or a single decay",
}
_RUN_ROWS = 300  # longer per-run tables are left to summary.csv
_HEAD_ROWS = 24  # cells in the headline box; all of them are in the best-λ table


def _finalize(v: Any) -> Any:
    """Every {{ value }} of the template: None and non-finite numbers are "—"."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return MISSING
    return v


@cache
def _env() -> jinja2.Environment:
    def load(name: str) -> str:
        return resources.files("analysis").joinpath("templates", name).read_text("utf-8")

    return jinja2.Environment(loader=jinja2.FunctionLoader(load), autoescape=True,
                              undefined=jinja2.StrictUndefined, finalize=_finalize,
                              trim_blocks=True, lstrip_blocks=True)


def cell(v: Any) -> str:
    """A table cell: "—" for missing, yes/no for booleans, numbers to 4 digits."""
    if v is None or v is pd.NA or (isinstance(v, float) and not math.isfinite(v)):
        return MISSING
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return "yes" if v else "no"
    if isinstance(v, (int, float)) or pd.api.types.is_number(v):
        return g(float(v), 4)
    return str(v) if str(v) not in ("nan", "None", "NaT", "<NA>") else MISSING


def _table(df: pd.DataFrame) -> dict[str, Any]:
    return {"head": [str(c) for c in df.columns],
            "rows": [[cell(v) for v in row] for row in df.itertuples(index=False)]}


def _sort_key(v: Any) -> tuple[int, float, str]:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return (1, 0.0, str(v))
    return (0, x, "") if math.isfinite(x) else (1, 0.0, str(v))


def ordered(cells: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The cells sorted by their axes (the cell keys in order, numbers as numbers), then
    by label: the order of every per-cell table."""
    ks = [k for k in keys if k in cells] + ["cell"]
    order = sorted(range(len(cells)), key=lambda i: [_sort_key(cells[k].iloc[i]) for k in ks])
    return cells.iloc[order]


def _with_ci(df: pd.DataFrame, col: str, missing: str = MISSING) -> list[str]:
    if col not in df:
        return [missing] * len(df)
    return [interval({"estimate": e, "ci_low": lo, "ci_high": hi}, missing=missing)
            for e, lo, hi in zip(df[col], df.get(f"{col}_ci_low", df[col] * math.nan),
                                 df.get(f"{col}_ci_high", df[col] * math.nan))]


def _true(v: Any) -> bool:
    return isinstance(v, bool) and v or type(v).__name__ == "bool_" and bool(v)


def _note(c: pd.Series) -> str:
    """Why a cell's recommendation is not to be taken as is (an empty string when it is)."""
    low = (f"best test accuracy {g(c.get('best_acc'))} < 0.5: this cell never learned"
           if _true(c.get("low_acc")) else "")
    ext = c.get("extend")
    return "; ".join(s for s in (low, ext if isinstance(ext, str) else "") if s)


def headline(a: Analysis) -> dict[str, Any]:
    """The answer: per cell the recommended decay in PyTorch units and λ_norm with 95%
    intervals, the λ within the tolerance of the best accuracy, and what the verdict
    means at another b, B or T."""
    c = ordered(a.cells, a.keys)
    tol = a.fit.get("tolerance", 0.02)
    rows = [{"cell": str(r["cell"]), "weight_decay": wd, "lambda_norm": ln,
             "plateau": f"{g(r.get('lambda_lo'))} – {g(r.get('lambda_hi'))}"
             if "lambda_lo" in r else MISSING,
             "best_acc": g(r.get("best_acc")), "note": _note(r)}
            for (_, r), wd, ln in zip(c.iterrows(), _with_ci(c, "wd_star"),
                                      _with_ci(c, "lambda_norm_star"))]
    return {"verdict": _headline(a.fit), "rows": rows[:_HEAD_ROWS],
            "more": max(0, len(rows) - _HEAD_ROWS), "tolerance": f"{tol:.0%}",
            "unit": a.unit_label, "extrapolation": extrapolation(a.fit),
            "n_warnings": len(a.warnings)}


def _figures(a: Analysis) -> list[dict[str, str]]:
    out = []
    for name, cap in CAPTIONS.items():
        item = {"name": name, "title": name.replace("_", " "), "caption": cap}
        if name in a.figures:
            data = base64.b64encode(a.figures[name].read_bytes()).decode()
            out.append({**item, "src": f"data:image/png;base64,{data}", "alt": name})
        else:
            out.append({**item, "src": "", "absent": ABSENT[name]})
    return out


def _cell_table(a: Analysis) -> dict[str, Any]:
    c = ordered(a.cells, a.keys)
    t = pd.DataFrame({"cell": c["cell"], "seeds": c["n_seeds"], "λ values": c["n_lambdas"]})
    if "best_acc" in c:
        t["best test acc"] = [g(v) + (" (low)" if _true(lo) else "")
                              for v, lo in zip(c["best_acc"], c["low_acc"])]
        t["acc at λ=0"] = c["baseline_acc"].map(g)
        t["λ* (seeds' optima)"] = _with_ci(c, "lambda_star")
        for e in ("onset", "collapse"):
            if f"lambda_{e}" in c:
                cens = c[f"{e}_censored"].fillna("").astype(str)
                t[f"{e} edge"] = [f"censored: {x}" if x else v
                                  for v, x in zip(_with_ci(c, f"lambda_{e}"), cens)]
        if "star_over_collapse" in c:
            t["λ*/λ_collapse"] = c["star_over_collapse"].map(g)
        t["plateau"] = [f"{g(lo)} – {g(hi)}" for lo, hi in zip(c["lambda_lo"], c["lambda_hi"])]
        t["d* = lr·λ*"] = _with_ci(c, "d_star")
    if "extend" in c:
        t["edge of grid"] = c["extend"].fillna("")
    return _table(t)


def _fit(fit: dict[str, Any]) -> dict[str, Any] | None:
    if not fit.get("rules"):
        return None
    within = fit.get("within_run_onset") or {}
    fits = {"λ* (d*)": fit, **{f"{e} edge": v for e, v in (fit.get("edges") or {}).items()
                               if v.get("rules")},
            **({"within-run onset": within} if within.get("rules") else {}),
            # D* = d*·Σ_k f(k): its exponents read against the rules' shifted by (-1, 1, 1)
            **({"λ* (D* = d*·Σf, rules + (−1, 1, 1))": fit["integrated"]}
               if (fit.get("integrated") or {}).get("rules") else {})}
    exps = pd.DataFrame([{"axis": a, **{n: interval(f["exponents"][a], 3)
                                        for n, f in fits.items()},
                          **{r: e for r, e in zip(RULES, (v[i] for v in RULES.values()))}}
                         for i, a in enumerate(AXIS_NAMES)])
    yes = {True: "yes", False: "no"}
    rules = pd.DataFrame([{"rule": k, "p (F test vs free fit)": g(r["p_value"], 2),
                           "p (Holm)": g(r.get("p_holm"), 2),
                           "compatible": yes[bool(r["compatible"])],
                           "AICc weight (relative)": g(r.get("weight")),
                           "leave-one-cell-out RMSE (ln d*)": g(r.get("loco_rmse_ln")),
                           "constant": f"{r['constant']['name']} = "
                                       f"{interval(r['constant'], missing=MISSING)}",
                           **{f"{e}: compatible": yes[bool(v["rules"][k]["compatible"])]
                              for e, v in fits.items() if e != "λ* (d*)"}}
                          for k, r in fit["rules"].items()])
    v, mt = fit["verdict"], fit.get("multiple_testing")
    return {"exponents": _table(exps), "rules": _table(rules), "verdict": v,
            "rule": v.get("rule") or "no rule named", "target": v.get("target", "lambda_star"),
            "compatible": ", ".join(v.get("compatible") or []) or "none",
            "holm": (f"p-values are Holm-adjusted over {mt['n_tests']} tests ({mt['family']}); "
                     f"a rule is compatible at adjusted p ≥ {mt['alpha']:g}.") if mt else "",
            "n_cells": fit["n_cells"], "n_cells_total": fit["n_cells_total"],
            "dof": g(fit.get("dof")), "scale": g(fit.get("residual_scale")),
            "scale_from": fit.get("scale_from") or MISSING, "test_dof": g(fit.get("test_dof"))}


def _sensitivity(fit: dict[str, Any]) -> dict[str, Any] | None:
    rows = fit.get("sensitivity") or []
    if len(rows) <= 1:
        return None
    ref = (rows[0]["rule"], rows[0]["strength"])
    D0 = rows[0].get("integrated")

    def in_D(r: dict[str, Any]) -> dict[str, str]:
        D = r.get("integrated") or {"rule": None, "strength": "inconclusive"}
        same = (D["rule"], D["strength"]) == (D0["rule"], D0["strength"])
        return {"in D = d·Σf": f"{D['rule'] or MISSING} ({D['strength']})",
                "same in D": "yes" if same else "NO"}
    t = pd.DataFrame([{"analysis choice": r["choice"], "rule": r["rule"] or MISSING,
                       "strength": r["strength"],
                       "compatible": ", ".join(r["compatible"]) or "none",
                       "same verdict": "yes" if (r["rule"], r["strength"]) == ref else "NO",
                       **(in_D(r) if D0 else {})}
                      for r in rows])
    word = {True: "stable: every choice gives the same verdict",
            False: "fragile: the verdict changes under the choices marked NO",
            None: "not checked"}[(fit.get("verdict") or {}).get("stable")]
    D = ((fit.get("integrated") or {}).get("verdict") or {}).get("stable")
    if D0 and D is not None:
        word += ("; read in the integrated decay D it is " +
                 ("stable too" if D else "fragile (the choices marked NO in D)"))
    return {"word": word, "table": _table(t), "skipped": fit.get("sensitivity_skipped") or []}


_STOPS = {"target": "every cell met the target", "budget": "the budget was spent",
          "no_gain": "nothing more would help", "rounds": "the rounds were used up"}


def _hw(v: Any) -> str:
    return g(float(v), 3) if isinstance(v, (int, float)) and math.isfinite(v) else MISSING


def _steps(v: float) -> str:
    return f"{v:,.0f}" if math.isfinite(v) else MISSING


def _censored(one: pd.DataFrame | None, col: str) -> str:
    v = one[col].iloc[0] if one is not None and col in one else ""
    return v if isinstance(v, str) else ""


def refinement(a: Analysis) -> dict[str, Any] | None:
    """The "Refinement" section of a refined study (None for any other): member-steps per
    round and per cell from the tables, against a full grid at the resolution each cell
    reached, and the intervals reached (analysis._refine_report)."""
    if not isinstance(a.refine, dict):  # an ordinary study: not even its members counted
        return None
    spend = _refine_report.summarize(_refine_report.members(a.hist), a.cells, a.refine)
    if spend is None:
        return None
    total = spend.spent
    rounds = pd.DataFrame({
        "round": spend.rounds["label"], "experiment": spend.rounds["experiment"],
        "members": spend.rounds["members"], "cells": spend.rounds["cells"],
        "member-steps": [_steps(v) for v in spend.rounds["member_steps"]],
        "share": [f"{v / total:.0%}" if total > 0 else MISSING
                  for v in spend.rounds["member_steps"]]})
    labels = dict(zip(spend.rounds["experiment"], spend.rounds["label"]))
    order = list(ordered(a.cells, a.keys)["cell"])
    order += [c for c in spend.cells["cell"] if c not in order]
    per = spend.per_cell.pivot_table(index="cell", columns="experiment",
                                     values="member_steps", aggfunc="sum", fill_value=0.0)
    per = per.reindex([c for c in order if c in per.index])
    by_round = pd.DataFrame({"cell": per.index.astype(str)})
    for e in per.columns:
        by_round[f"{labels.get(e, e)} ({e})"] = [_steps(float(v)) for v in per[e]]
    cells = spend.cells.set_index("cell").reindex([c for c in order if c in
                                                   set(spend.cells["cell"])])
    info = a.cells.set_index("cell")
    rows = []
    for c, r in cells.iterrows():
        row = {"cell": str(c), "seeds": r["seeds"], "members": r["members"],
               "member-steps": _steps(r["member_steps"]),
               "spacing reached (ln λ)": _hw(r["spacing_ln"]),
               "grid's spacing (ln λ)": _hw(r["grid_spacing_ln"]),
               "full grid: λ × seeds": f"{int(r['dense_lambdas'])} × {int(r['seeds'])}"
               if r["dense_lambdas"] else MISSING,
               "full grid member-steps": _steps(r["dense_member_steps"]),
               "spent / full grid": g(r["ratio"], 2)}
        one = info.loc[[c]].reset_index() if c in info.index else None
        for k, col, name in (("opt", "lambda_star", "λ*"), ("onset", "lambda_onset", "onset"),
                             ("collapse", "lambda_collapse", "collapse")):
            cens = _censored(one, f"{k}_censored")
            row[f"{name} [95%]"] = (f"censored: {cens}" if cens else
                                    _with_ci(one, col)[0] if one is not None else MISSING)
            row[f"{name} half-width"] = _hw(r[f"hw_{k}"])
        if spend.target is not None:
            row["target met"] = "yes" if _true(r["met"]) else "no"
        rows.append(row)
    n = int((spend.rounds["label"] != "grid").sum())
    grid = float(spend.rounds.loc[spend.rounds["label"] == "grid", "member_steps"].sum())
    return {"rounds": _table(rounds), "by_round": _table(by_round),
            "cells": _table(pd.DataFrame(rows)), "n_rounds": n,
            "spent": _steps(total), "grid": _steps(grid),
            "after": _steps(total - grid), "dense": _steps(spend.dense),
            "ratio": g(spend.ratio, 2) if math.isfinite(spend.ratio) else "",
            "target": g(spend.target, 3) if spend.target is not None else "",
            "stop": _STOPS.get(spend.stop or "", spend.stop or ""),
            "reason": spend.reason or "", "unit": a.unit_label}


def _runs(a: Analysis) -> dict[str, Any]:
    cols = [c for c in ("cell", "seed", "lam", "final_train_acc", "final_test_acc",
                        "step_to_0.5", "step_to_0.9", "n_collapses", "collapse_period")
            if c in a.runs]
    rank = {n: i for i, n in enumerate(ordered(a.cells, a.keys)["cell"])}
    r = a.runs[cols].assign(_rank=a.runs["cell"].map(rank).fillna(len(rank)))
    r = r.sort_values(["_rank", "cell", "lam", "seed"], kind="stable").drop(columns="_rank")
    t = _table(r.head(_RUN_ROWS).rename(columns={"lam": f"λ ({a.unit})"}))
    return {**t, "n": len(a.runs), "shown": min(len(a.runs), _RUN_ROWS)}


def _window(fit: dict[str, Any]) -> str:
    if fit.get("last"):
        return f"the mean of each run's last {fit['last']} evaluations"
    return f"the mean over the last {fit.get('window') or 0.1:.0%} of each run's steps"


def _headline(fit: dict[str, Any]) -> str:
    v = fit.get("verdict") or {}
    if v.get("rule") and v.get("stable") is False:
        n = len(fit.get("sensitivity") or []) - 1
        return (f"{v['rule']}, fragile: {v['strength']} as analyzed, but it changes under "
                f"{len(v.get('changes_under') or [])} of {n} analysis choices")
    if v.get("rule"):
        return f"{v['rule']} ({v['strength']})"
    ok = v.get("compatible")
    if ok == [] and fit.get("rules"):
        return "none of the four rules fits"
    return "the data cannot tell" + (f" ({', '.join(ok)} compatible)" if ok else "")


def render(a: Analysis) -> str:
    css = resources.files("analysis").joinpath("report.css").read_text("utf-8")
    return _env().get_template("report.html.j2").render(
        css=Markup(css), head=headline(a), n_runs=len(a.runs), n_cells=len(a.cells),
        keys=", ".join(a.keys) or "nothing", unit=a.unit_label, window=_window(a.fit),
        tolerance=f"{a.fit.get('tolerance', 0):.0%}", verdict=_headline(a.fit),
        sentences=verdict(a.fit, a.cells), warnings=a.warnings, figures=_figures(a),
        cells=_cell_table(a), refine=refinement(a), fit=_fit(a.fit),
        sensitivity=_sensitivity(a.fit), runs=_runs(a))


def write(a: Analysis, out: Path) -> Path:
    path = out / "report.html"
    path.write_text(render(a), encoding="utf-8")
    return path
