"""The sensitivity report: the verdict recomputed under each reasonable analysis choice.

A referee re-analyzes: other final windows (5%, 10%, 20% of the run, the last evaluation
alone), the other λ* estimator (smoothed argmax), every-other-λ sub-grids, and leaving
out each cell in turn. Each gives a verdict (rule and strength); the reported verdict is
*stable* only when every one of them gives the same rule and strength, and is otherwise
called fragile in the headline, never decisive. The verdict read in the integrated decay
(D* = d*·Σf, `_decide.integrated`) is rerun under the same choices and judged the
same way. Pure: DataFrames in, rows out.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from analysis import _decide, _estimate, _fit, _summary
from analysis._schema import FINAL

log = logging.getLogger(__name__)
WINDOWS = (0.05, 0.1, 0.2)
# Beyond these sizes a choice is left out (and said so): each rerun refits every seed's
# curve, each left-out cell refits every target.
MAX_CURVES = 1500  # seed curves × reruns
MAX_LOCO = 40  # cells


def _row(choice: str, fit: dict[str, Any]) -> dict[str, Any]:
    v = fit["verdict"]
    D = (fit.get("integrated") or {}).get("verdict")  # the same choice, read in D = d·Σf
    return {"choice": choice, "rule": v["rule"], "strength": v["strength"],
            "compatible": list(v["compatible"]),
            "integrated": ({"rule": D["rule"], "strength": D["strength"],
                            "compatible": list(D["compatible"])} if D else None)}


def _changed(rows: list[dict[str, Any]], view: str | None) -> list[str]:
    """The choices whose verdict (view None: d*'s; "integrated": D*'s) differs from the
    reported one's; a choice that leaves nothing to fit differs."""
    def key(r: dict[str, Any]) -> tuple[Any, Any]:
        v = r if view is None else (r.get(view) or {"rule": None, "strength": "inconclusive"})
        return v["rule"], v["strength"]
    return [r["choice"] for r in rows[1:] if key(r) != key(rows[0])]


def _with_window(runs: pd.DataFrame, hist: pd.DataFrame, window: float,
                 last: int | None) -> pd.DataFrame:
    """The runs with their final metrics recomputed over another window."""
    fin = _summary.finals(hist, window, last)
    keep = runs.drop(columns=[c for c in runs if c.startswith(FINAL) or c == "n_window"])
    return keep.join(fin, on="run")


def _every_other(runs: pd.DataFrame, start: int) -> pd.DataFrame:
    """λ = 0 and every other λ > 0 of each cell's grid, from the `start`-th."""
    pos = runs[runs["lam"] > 0]
    rank = pos.groupby("cell")["lam"].rank(method="dense").astype(int) - 1
    keep = pos.index[(rank % 2) == start]
    return runs.loc[runs.index.isin(keep) | (runs["lam"] == 0)]


def _windows(window: float, last: int | None) -> list[tuple[str, float, int | None]]:
    """The final windows to rerun: 5%, 10%, 20% of the run and the last evaluation, less
    the one the analysis used."""
    out = [(f"window {w:g}", w, None) for w in WINDOWS if not (last is None and w == window)]
    return out + ([("last evaluation", 1.0, 1)] if last != 1 else [])


def report(runs: pd.DataFrame, hist: pd.DataFrame, keys: list[str], curves: bool,
           cells: pd.DataFrame, fit: dict[str, Any], window: float, last: int | None,
           tol: float) -> dict[str, Any]:
    """{rows: [{choice, rule, strength, compatible}], stable, changed, skipped}."""
    rows = [_row("as reported", fit)]
    skipped = []
    n_curves = int(runs.loc[runs["lam"] > 0].groupby(["cell", "seed"]).ngroups)
    reruns: list[tuple[str, pd.DataFrame, str]] = []
    if curves:
        reruns += [(name, _with_window(runs, hist, w, n), fit.get("estimator", "curve"))
                   for name, w, n in _windows(window, last)]
    else:
        skipped.append("final windows: the input has no per-evaluation history")
    other = "smoothed" if fit.get("estimator", "curve") == "curve" else "curve"
    reruns.append((f"estimator {other}", runs, other))
    reruns += [(f"every other λ ({k})", _every_other(runs, i), fit.get("estimator", "curve"))
               for i, k in enumerate(("1st, 3rd, ...", "2nd, 4th, ..."))]
    if n_curves * len(reruns) > MAX_CURVES:
        skipped.append(f"windows, estimators and sub-grids: {n_curves} seed curves × "
                       f"{len(reruns)} reruns exceed {MAX_CURVES}")
        reruns = []
    for name, r, est in reruns:
        rows.append(_rerun(name, r, keys, tol, est))
    usable = _used_cells(fit, cells)
    if len(usable) > MAX_LOCO:
        skipped.append(f"leave-one-cell-out: {len(usable)} cells exceed {MAX_LOCO}")
    elif len(usable) >= 3:
        spreads = fit.get("seed_spreads", {})
        for c in usable:
            sub = cells[cells["cell"] != c]
            rows.append(_row(f"without cell {c}", _decide.fit_targets(sub, spreads)))
    changed, changed_D = _changed(rows, None), _changed(rows, "integrated")
    checked = len(rows) > 1
    return {"rows": rows, "stable": (not changed) if checked else None, "changed": changed,
            "integrated_stable": (not changed_D) if checked and rows[0]["integrated"]
            else None, "integrated_changed": changed_D, "skipped": skipped}


def _rerun(name: str, runs: pd.DataFrame, keys: list[str], tol: float, est: str
           ) -> dict[str, Any]:
    try:
        _, _, f = _estimate.estimate(runs, keys, tol=tol, estimator=est)
    except ValueError as e:  # AnalysisError included: this choice leaves nothing to fit
        log.info("sensitivity: %s: %s", name, e)
        return {"choice": name, "rule": None, "strength": "inconclusive", "compatible": [],
                "integrated": None, "note": str(e)}
    return _row(name, f)


def _used_cells(fit: dict[str, Any], cells: pd.DataFrame) -> list[str]:
    """The cells the λ* fit used (those whose removal can change it)."""
    ok = _fit.usable(cells, "d_star", True)
    return [str(c) for c in cells.loc[ok, "cell"]] if fit.get("rules") else []


def attach(fit: dict[str, Any], runs: pd.DataFrame, hist: pd.DataFrame, keys: list[str],
           curves: bool, cells: pd.DataFrame, window: float, last: int | None,
           tol: float) -> None:
    """fit["sensitivity"] (a list of {choice, rule, strength, compatible}) and
    fit["verdict"]["stable"] (None when nothing could be rerun)."""
    s = report(runs, hist, keys, curves, cells, fit, window, last, tol)
    if (fit.get("integrated") or {}).get("verdict"):
        D = fit["integrated"]["verdict"]
        D["stable"], D["changes_under"] = s["integrated_stable"], s["integrated_changed"]
        if D["stable"] is False and D["rule"] is not None:
            fit["integrated"]["notes"].append(
                f"the integrated verdict is fragile: it changes under "
                f"{len(s['integrated_changed'])} of {len(s['rows']) - 1} analysis choices")
    fit["sensitivity"] = s["rows"]
    fit["sensitivity_skipped"] = s["skipped"]
    fit["verdict"]["stable"] = s["stable"]
    fit["verdict"]["changes_under"] = s["changed"]
    if s["stable"] is False and fit["verdict"]["rule"] is not None:
        fit["notes"].append(f"the verdict is fragile: it changes under {len(s['changed'])} of "
                            f"{len(s['rows']) - 1} analysis choices ({', '.join(s['changed'][:4])}"
                            f"{', ...' if len(s['changed']) > 4 else ''})")

