"""The committed studies under docs/data re-analyzed: old (the committed lambda_star.csv and
fit.json) against new (`analysis.analyze` now) side by side, and the new λ* on sub-grids
of each study's own λ grid (drop the smallest λ, every other λ)::

    python benchmarks/calibrate_studies.py            # every study
    python benchmarks/calibrate_studies.py seed_rules seed_rules@B5000

`<study>@B5000` is the study filtered to train_size == 5000 (docs/results.md §3's b, T
subset). Prints markdown tables.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import _estimate, analyze  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "docs" / "data"
STUDIES = ("seed_lambda", "seed_length", "seed_rules", "seed_rules@B5000", "precision",
           "bn_eps", "rules")


def _g(v: float) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.3g}"


def _ci(c: pd.Series, col: str) -> str:
    lo, hi = c.get(f"{col}_ci_low", math.nan), c.get(f"{col}_ci_high", math.nan)
    return f"{_g(c.get(col, math.nan))} [{_g(lo)}, {_g(hi)}]"


def _load(name: str) -> tuple[pd.DataFrame | str, Path]:
    study, _, sub = name.partition("@")
    path = DATA / study
    if not sub:
        return str(path), path
    res = path / ("results.csv.gz" if (path / "results.csv.gz").exists() else "results.csv")
    df = pd.read_csv(res)
    hist = pd.read_csv(path / "history.csv.gz") if (path / "history.csv.gz").exists() \
        else None
    keep = df["train_size"] == int(sub[1:])
    df = df[keep]
    if hist is not None:
        hist = hist[hist["config_hash"].isin(df["config_hash"])]
        df = hist.merge(df[["config_hash", "seed", *[c for c in df if c not in hist]]],
                        on=["config_hash", "seed"])
    return df, path


def _verdict(v: dict | None) -> str:
    if not v:
        return "–"
    return f"{v.get('rule') or 'none'} ({v.get('strength')})"


def compare(name: str) -> None:
    data, path = _load(name)
    a = analyze(data)
    old_cells = pd.read_csv(path / "lambda_star.csv") if "@" not in name else None
    old_fit = json.loads((path / "fit.json").read_text()) \
        if (path / "fit.json").exists() and "@" not in name else None
    print(f"\n### {name}\n")
    print("| cell | λ* old | λ* new | onset old | onset new | collapse old | collapse new "
          "| λ·step to half best (new) |\n|---|---|---|---|---|---|---|---|")
    for _, c in a.cells.iterrows():
        o = old_cells.set_index("cell").loc[c["cell"]] if old_cells is not None and \
            c["cell"] in set(old_cells["cell"]) else pd.Series(dtype=float)
        print(f"| {c['cell']} | {_ci(o, 'lambda_star')} | {_ci(c, 'lambda_star')} | "
              f"{_ci(o, 'lambda_onset')} | {_ci(c, 'lambda_onset')} | "
              f"{_ci(o, 'lambda_collapse')} | {_ci(c, 'lambda_collapse')} | "
              f"{_ci(c, 'total_decay_within')} |")
    f = a.fit
    changed = f["verdict"].get("changes_under") or []
    print(f"\nverdict old: {_verdict(old_fit and old_fit.get('verdict'))}; new: "
          f"{_verdict(f['verdict'])} on {f['n_cells']} cells, residual dof {f.get('dof')}, "
          f"stable: {f['verdict'].get('stable')}"
          + (f" (changes under: {', '.join(changed)})" if changed else ""))
    ex = f["exponents"]
    print("new λ* exponents: " + ", ".join(
        f"{k} {_g(v['estimate'])} [{_g(v['ci_low'])}, {_g(v['ci_high'])}]"
        for k, v in ex.items() if v["estimate"] is not None))
    for t, v in (f.get("targets") or {}).items():
        if v["rules"]:
            ps = ", ".join(f"{k} {_g(r['p_holm'])}" for k, r in v["rules"].items())
            print(f"- {t}: {_verdict(v['verdict'])}; Holm p: {ps}")
    grids(a)


def grids(a: object) -> None:
    """The new λ* on sub-grids of the study's own λ grid, and how each agrees with the
    full grid's: inside its interval, within the two intervals combined, width ratio."""
    runs = a.runs  # type: ignore[attr-defined]
    lams = np.sort(runs.loc[runs["lam"] > 0, "lam"].unique())
    subs = {"full": lams, "without the smallest λ": lams[1:], "every other λ (1st)": lams[::2],
            "every other λ (2nd)": lams[1::2]}
    rows, full = [], None
    for label, keep in subs.items():
        r = runs[(runs["lam"] == 0) | runs["lam"].isin(keep)]
        try:
            cells = _estimate.cells_and_seeds(r, a.keys)[0]  # type: ignore[attr-defined]
        except ValueError as e:
            rows.append(f"| {label} | {e} | |")
            continue
        full = cells.set_index("cell") if full is None else full
        stars = "; ".join(f"{_ci(c, 'lambda_star')}" for _, c in cells.iterrows())
        rows.append(f"| {label} ({len(keep)} λ) | {stars} | {_agree(full, cells)} |")
    print("\n| λ grid | λ* per cell (new) | against the full grid |\n|---|---|---|\n"
          + "\n".join(rows))


def _agree(full: pd.DataFrame, cells: pd.DataFrame) -> str:
    cols = ("lambda_star", "lambda_star_ci_low", "lambda_star_ci_high")
    inside = within = n = 0
    ratio = []
    for _, c in cells.iterrows():
        if c["cell"] not in full.index:
            continue
        f = np.log(full.loc[c["cell"], list(cols)].to_numpy(float))
        g = np.log(c[list(cols)].to_numpy(float))
        if not (np.isfinite(f).all() and np.isfinite(g).all()):
            continue
        n += 1
        inside += f[1] <= g[0] <= f[2]
        within += abs(f[0] - g[0]) <= math.hypot(f[2] - f[0], g[2] - g[0])
        ratio.append((g[2] - g[1]) / (f[2] - f[1]))
    if not n:
        return "–"
    return (f"inside its interval {inside}/{n}, within both intervals {within}/{n}, "
            f"width × {min(ratio):.1f}–{max(ratio):.1f}")


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    for name in sys.argv[1:] or STUDIES:
        compare(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
