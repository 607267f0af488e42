"""Multi-fidelity, measured before relied on: do short runs bracket the edges?

Issue 20 asks whether the collapse edge is independent enough of run length that
short runs could bracket it before long ones are spent. On a constant-lr study a
shorter run is bit for bit the prefix of the longer one (the same data order, the same
steps), so the committed history answers it without training: the analysis is run on
each member's history cut at a fraction f of the run (f·S steps, its own final window
then the last 10% of those) and its λ*, onset and collapse (with intervals) are set
beside the full run's. A shortcut is safe for an estimate only where the short run's
interval contains the full run's estimate at every replicate cell.

    python benchmarks/measure_fidelity.py [DIR] [--fractions 0.1 0.25 0.5]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import analysis  # noqa: E402

ESTIMATES = ("lambda_star", "lambda_onset", "lambda_collapse")


def _table(d: Path, name: str) -> pd.DataFrame:
    for f in (d / f"{name}.csv", d / f"{name}.csv.gz"):
        if f.exists():
            return pd.read_csv(f, dtype={"config_hash": str})
    raise FileNotFoundError(d / f"{name}.csv")


def cut(res: pd.DataFrame, hist: pd.DataFrame, f: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study as if every run had stopped at f of its steps (a prefix: constant lr)."""
    end = hist.groupby("config_hash").step.transform("max")
    h = hist[hist.step <= f * end]
    last = h.sort_values("step").groupby("config_hash").tail(1).set_index("config_hash")
    r = res.copy()
    for c in [c for c in r.columns if c.startswith("last_")]:
        r[c] = r.config_hash.map(last[c.removeprefix("last_")])
    r["total_steps"] = r.config_hash.map(last.step)
    return r, h


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", nargs="?", type=Path, default=ROOT / "docs/data/seed_lambda")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    a = p.parse_args()
    res, hist = _table(a.study, "results"), _table(a.study, "history")
    with tempfile.TemporaryDirectory() as t:
        rows = []
        for f in [*a.fractions, 1.0]:
            d = Path(t) / f"f{f}"
            d.mkdir()
            r, h = cut(res, hist, f) if f < 1 else (res, hist)
            r.to_csv(d / "results.csv", index=False)
            h.to_csv(d / "history.csv", index=False)
            cells = analysis.analyze(d, figures=False).cells
            for _, c in cells.iterrows():
                rows.append({"fraction": f, "cell": c["cell"], **{
                    k: (c[k], c[f"{k}_ci_low"], c[f"{k}_ci_high"]) for k in ESTIMATES}})
    full = {r["cell"]: r for r in rows if r["fraction"] == 1.0}
    print(f"{a.study}: each estimate (95% interval) from the first fraction of every run")
    for r in rows:
        ref = full[r["cell"]]
        parts = []
        for k in ESTIMATES:
            v, lo, hi = r[k]
            inside = lo <= ref[k][0] <= hi if all(map(math.isfinite, (lo, hi, ref[k][0]))) \
                else False
            parts.append(f"{k.removeprefix('lambda_')} {v:.3g} [{lo:.3g}, {hi:.3g}]"
                         f"{'' if inside or r['fraction'] == 1 else ' (misses the full run)'}")
        print(f"  f = {r['fraction']:<4g} {r['cell']}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
