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

from analysis._cells_fmt import ordered, table, true, with_ci
from analysis._fit import AXIS_NAMES, RULES
from analysis._report_refine import refinement
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


def _note(c: pd.Series) -> str:
    """Why a cell's recommendation is not to be taken as is (an empty string when it is)."""
    low = (f"best test accuracy {g(c.get('best_acc'))} < 0.5: this cell never learned"
           if true(c.get("low_acc")) else "")
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
            for (_, r), wd, ln in zip(c.iterrows(), with_ci(c, "wd_star"),
                                      with_ci(c, "lambda_norm_star"))]
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
        t["best test acc"] = [g(v) + (" (low)" if true(lo) else "")
                              for v, lo in zip(c["best_acc"], c["low_acc"])]
        t["acc at λ=0"] = c["baseline_acc"].map(g)
        t["λ* (seeds' optima)"] = with_ci(c, "lambda_star")
        for e in ("onset", "collapse"):
            if f"lambda_{e}" in c:
                cens = c[f"{e}_censored"].fillna("").astype(str)
                t[f"{e} edge"] = [f"censored: {x}" if x else v
                                  for v, x in zip(with_ci(c, f"lambda_{e}"), cens)]
        if "star_over_collapse" in c:
            t["λ*/λ_collapse"] = c["star_over_collapse"].map(g)
        t["plateau"] = [f"{g(lo)} – {g(hi)}" for lo, hi in zip(c["lambda_lo"], c["lambda_hi"])]
        t["d* = lr·λ*"] = with_ci(c, "d_star")
    if "extend" in c:
        t["edge of grid"] = c["extend"].fillna("")
    return table(t)


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
    return {"exponents": table(exps), "rules": table(rules), "verdict": v,
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
    return {"word": word, "table": table(t), "skipped": fit.get("sensitivity_skipped") or []}


def _runs(a: Analysis) -> dict[str, Any]:
    cols = [c for c in ("cell", "seed", "lam", "final_train_acc", "final_test_acc",
                        "step_to_0.5", "step_to_0.9", "n_collapses", "collapse_period")
            if c in a.runs]
    rank = {n: i for i, n in enumerate(ordered(a.cells, a.keys)["cell"])}
    r = a.runs[cols].assign(_rank=a.runs["cell"].map(rank).fillna(len(rank)))
    r = r.sort_values(["_rank", "cell", "lam", "seed"], kind="stable").drop(columns="_rank")
    t = table(r.head(_RUN_ROWS).rename(columns={"lam": f"λ ({a.unit})"}))
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
