"""report.html: one self-contained page (inline CSS, figures as base64 PNG, no
external anything) with the verdict, warnings, figures, per-cell table and fit.

A small inline script marks ``<body data-images-ok="true">`` once every image
has decoded, so a headless browser can check the page renders.
"""

from __future__ import annotations

import base64
import html
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from analysis._fit import AXIS_NAMES, RULES
from analysis._verdict import g, interval, verdict

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
                 "legend gives each rule's F test against the free fit.",
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


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'


def _figures(a: Analysis) -> str:
    parts = []
    for name, cap in CAPTIONS.items():
        title = name.replace("_", " ")
        if name in a.figures:
            parts.append(f'<figure id="fig-{name}">{_img(a.figures[name])}<figcaption>'
                         f"<b>{title}.</b> {html.escape(cap)}</figcaption></figure>")
        else:
            parts.append(f'<p class="absent">Not drawn: {title} — {ABSENT[name]}.</p>')
    return "\n".join(parts)


def _with_ci(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.Series([interval({"estimate": e, "ci_low": lo, "ci_high": hi}) for e, lo, hi in
                      zip(df[col], df[f"{col}_ci_low"], df[f"{col}_ci_high"])], index=df.index)


def _cell_table(a: Analysis) -> str:
    c = a.cells
    t = pd.DataFrame({"cell": c["cell"], "seeds": c["n_seeds"], "λ values": c["n_lambdas"]})
    if "best_acc" in c:
        t["best test acc"] = c["best_acc"].map(g) + c["low_acc"].map(
            lambda x: " (low)" if x is True else "")
        t["acc at λ=0"] = c["baseline_acc"].map(g)
        t["λ* (seeds' optima)"] = _with_ci(c, "lambda_star")
        for e in ("onset", "collapse"):
            if f"lambda_{e}" in c:
                t[f"{e} edge"] = _with_ci(c, f"lambda_{e}").where(
                    c[f"{e}_censored"].fillna("") == "", "censored: " + c[f"{e}_censored"])
        if "star_over_collapse" in c:
            t["λ*/λ_collapse"] = c["star_over_collapse"].map(g)
        t["plateau"] = [f"{g(lo)} – {g(hi)}" for lo, hi in zip(c["lambda_lo"], c["lambda_hi"])]
        t["d* = lr·λ*"] = _with_ci(c, "d_star")
    if "extend" in c:
        t["edge of grid"] = c["extend"].fillna("")
    return t.to_html(index=False, escape=True, na_rep="–", border=0)


def _exponent_table(fits: dict[str, dict[str, Any]]) -> str:
    rows = [{"axis": a, **{name: interval(f["exponents"][a], 3) for name, f in fits.items()},
             **{r: e for r, e in zip(RULES, (v[i] for v in RULES.values()))}}
            for i, a in enumerate(AXIS_NAMES)]
    return pd.DataFrame(rows).to_html(index=False, border=0)


def _fit_tables(fit: dict[str, Any]) -> str:
    if not fit.get("rules"):
        return '<p class="absent">No fit: fewer than two usable cells.</p>'
    within = fit.get("within_run_onset") or {}
    fits = {"λ* (d*)": fit, **{f"{e} edge": v for e, v in (fit.get("edges") or {}).items()
                               if v.get("rules")},
            **({"within-run onset": within} if within.get("rules") else {})}
    rules = pd.DataFrame([{"rule": k, "p (F test vs free fit)": g(r["p_value"], 2),
                           "p (Holm)": g(r.get("p_holm"), 2),
                           "compatible": "yes" if r["compatible"] else "no",
                           "AICc weight (relative)": f"{r['weight']:.3g}",
                           "leave-one-cell-out RMSE (ln d*)": g(r["loco_rmse_ln"]),
                           "constant": f"{r['constant']['name']} = {interval(r['constant'])}",
                           **{f"{e}: compatible": "yes" if v["rules"][k]["compatible"] else "no"
                              for e, v in fits.items() if e != "λ* (d*)"}}
                          for k, r in fit["rules"].items()])
    v = fit["verdict"]
    return (f"<h3>Exponents of d ∝ b^x·B^y·T^z (free fits; the rules' exponents beside)</h3>"
            f"{_exponent_table(fits)}"
            f"<h3>Rules (each with a free constant), tested on d*</h3>"
            f"{rules.to_html(index=False, border=0)}"
            f"<p class='meta'>Verdict (on {html.escape(str(v.get('target', 'lambda_star')))}"
            f"): {html.escape(str(v['rule']))} ({v['strength']}); "
            f"compatible: {html.escape(', '.join(v['compatible']) or 'none')}. "
            f"{html.escape(_holm(fit))} "
            f"{fit['n_cells']} of {fit['n_cells_total']} cells used; residual dof "
            f"{fit.get('dof', '–')}; residual scale {g(fit.get('residual_scale'))} (from "
            f"{html.escape(str(fit.get('scale_from', '–')))}); test dof "
            f"{fit.get('test_dof', '–')}.</p>")


def _sensitivity_table(fit: dict[str, Any]) -> str:
    rows = fit.get("sensitivity") or []
    if len(rows) <= 1:
        return '<p class="absent">No sensitivity report: nothing could be rerun.</p>'
    ref = (rows[0]["rule"], rows[0]["strength"])
    t = pd.DataFrame([{"analysis choice": r["choice"], "rule": r["rule"] or "–",
                       "strength": r["strength"],
                       "compatible": ", ".join(r["compatible"]) or "none",
                       "same verdict": "yes" if (r["rule"], r["strength"]) == ref else "NO"}
                      for r in rows])
    v = fit.get("verdict") or {}
    word = {True: "stable: every choice gives the same verdict",
            False: "fragile: the verdict changes under the choices marked NO",
            None: "not checked"}[v.get("stable")]
    skipped = "".join(f"<li>left out: {html.escape(x)}</li>"
                      for x in fit.get("sensitivity_skipped") or [])
    return (f"<p class='meta'>The verdict is {word}.</p>"
            f"{t.to_html(index=False, border=0, escape=True)}"
            + (f"<ul>{skipped}</ul>" if skipped else ""))


def _holm(fit: dict[str, Any]) -> str:
    mt = fit.get("multiple_testing")
    if not mt:
        return ""
    return (f"p-values are Holm-adjusted over {mt['n_tests']} tests ({mt['family']}); a rule "
            f"is compatible at adjusted p ≥ {mt['alpha']:g}.")


def _runs_table(a: Analysis) -> str:
    cols = [c for c in ("cell", "seed", "lam", "final_train_acc", "final_test_acc",
                        "step_to_0.5", "step_to_0.9", "n_collapses", "collapse_period")
            if c in a.runs]
    t = a.runs[cols].head(_RUN_ROWS).rename(columns={"lam": f"λ ({a.unit})"})
    more = (f"<p class='meta'>First {_RUN_ROWS} of {len(a.runs)} runs; all are in "
            "summary.csv.</p>" if len(a.runs) > _RUN_ROWS else "")
    return t.to_html(index=False, border=0, na_rep="–", float_format=lambda v: f"{v:.4g}") + more


def _window(fit: dict[str, Any]) -> str:
    if fit.get("last"):
        return f"the mean of each run's last {fit['last']} evaluations"
    return f"the mean over the last {fit.get('window', 0.1):.0%} of each run's steps"


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


_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.dataset.imagesOk = String(ok);
  document.body.dataset.imagesCount = String(imgs.length);
});
</script>"""


def render(a: Analysis) -> str:
    css = resources.files("analysis").joinpath("report.css").read_text()
    n_runs, n_cells = len(a.runs), len(a.cells)
    warn = "".join(f"<li>{html.escape(w)}</li>" for w in a.warnings)
    body = [
        "<h1>Weight-decay analysis</h1>",
        f"<p class='meta'>{n_runs} runs in {n_cells} cells; cells differ in "
        f"{html.escape(', '.join(a.keys) or 'nothing')}; λ is {html.escape(a.unit_label)}; "
        f"final metrics are {_window(a.fit)}; the plateau is every λ within "
        f"{a.fit.get('tolerance', 0):.0%} of the best mean test accuracy.</p>",
        f"<h2>Verdict: {html.escape(_headline(a.fit))}</h2><div class='verdict'>"
        + "".join(f"<p>{html.escape(s)}</p>" for s in verdict(a.fit, a.cells)) + "</div>",
        f"<h2>Warnings</h2><ul class='warnings'>{warn}</ul>" if warn else "",
        f"<h2>Figures</h2>{_figures(a)}",
        f"<h2>Best λ per cell</h2><div class='scroll'>{_cell_table(a)}</div>",
        f"<h2>Scaling-rule fit</h2><div class='scroll'>{_fit_tables(a.fit)}</div>",
        f"<h2>Sensitivity of the verdict</h2><div class='scroll' id='sensitivity'>"
        f"{_sensitivity_table(a.fit)}</div>",
        f"<h2>Runs</h2><div class='scroll'>{_runs_table(a)}</div>",
    ]
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<title>wdsweep: weight-decay analysis</title>"
            f"<style>{css}</style></head>\n<body>\n" + "\n".join(body) + f"\n{_CHECK}\n"
            "</body></html>\n")


def write(a: Analysis, out: Path) -> Path:
    path = out / "report.html"
    path.write_text(render(a), encoding="utf-8")
    return path
