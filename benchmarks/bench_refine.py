"""Adaptive refinement (`analysis._refine`) against fixed grids, on a synthetic oracle.

``--oracle``: each replicate is a fresh oracle (`tests/analysis/synth_refine.py`: three
cells, T = 12.5, 50, 200 epochs, two-edge curves whose edges follow the sqrt rule, seed
shift sd 0.1 in ln λ, accuracy noise 0.02; members "train" instantly). From a coarse
initial grid (λ = 0 and ×3 steps from 1e-3 to 2.2, 3 seeds) the refinement loop runs
until it stops (target 0.15 in ln λ, at most 12 rounds, λ within [1e-3, 3]). It is
compared with

* a dense grid at the final resolution: every cell's final seeds on a uniform ln λ grid
  over the same range whose step is the median of the gaps the refinement made (those
  finer than the initial ×3 step), the brief's "same resolution everywhere";
* the coarse grid itself, with the final seeds (what the seeds alone buy), and the ×√2
  grid of the calibration (`benchmarks/calibrate_verdict.py`) with the final seeds;
* the refinement again from another initial grid (×2.5 from 1.6e-3): grid independence.

Reported: member-steps (initial grid included) and their ratio to the dense grid; the
coverage of the true λ*, onset and collapse (ln λ of the noiseless curve) by the 95%
intervals; how often every cell met the target; medians over replicates; agreement of
the two initial grids (|difference| within the two half-widths combined in quadrature)::

    python benchmarks/bench_refine.py --oracle --reps 40

Real training plugs in through `replicate(evaluate, initial, ...)`: any evaluate(points)
-> DataFrame of finished members works.

``--real``: the same comparison on real training through the sweep itself (`sweep.run`
in-process, a new local Ray: RAY_ADDRESS=local; studies under a temporary directory,
kept and printed). The demo preset (binary addition, width 128, lr 1e-2, 2,000 pairs,
100 epochs unless --epochs), 2 cells (batch_size 64 and 128), seeds 0-2:

* refined: a coarse grid (--lam-lo to --lam-hi, --points λ, no λ = 0) with `[refine]`
  (--target, --budget member-steps in all, --rounds; the seed pool and the λ range are
  the grid's own), run first: `sweep.run(spec, study)`;
* dense: a plain study, every cell's seeds on a uniform ln λ grid over the cell's λ range
  at the spacing the refined study reached (`analysis._refine_report`: the median of the
  within-seed gaps finer than the grid's; the report's own definition), as explicit
  points. If that grid costs more than --dense-max member-steps, it is run at the
  coarsest spacing that fits (a cheaper dense grid: the ratio then flatters the dense
  grid) and the full-resolution cost is counted, not run; both are printed.

Both are analyzed with `analysis.analyze`; printed side by side: member-steps, their
ratio, each cell's 95% half-widths in ln λ of λ*, onset and collapse, and whether the
refined estimates lie inside the dense grid's intervals. ``--stop`` runs the refined
study with the collapse stop (trainer.early_stop, rule STOP) and the dense grid without:
members count to their stop::

    RAY_ADDRESS=local python benchmarks/bench_refine.py --real
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import _refine  # noqa: E402
from tests.analysis.synth_refine import Oracle, log_grid  # noqa: E402

TARGETS = ("opt", "onset", "collapse")
BOUNDS = (1e-3, 3.0)
GRID_A = (1e-3, 3.0, 3.0)  # lo, hi, ratio
GRID_B = (1.6e-3, 3.0, 2.5)
SEEDS0 = (0, 1, 2)


def cost(df: pd.DataFrame, steps: Callable[[dict[str, Any]], float]) -> float:
    return float(sum(steps(r) for r in df.to_dict("records")))


def replicate(evaluate: Callable[[list[dict[str, Any]]], pd.DataFrame], initial: pd.DataFrame,
              *, steps: Callable[[dict[str, Any]], float], target: float, rounds: int,
              budget: float) -> tuple[_refine.Refinement, float]:
    """The refinement loop from `initial`; (its outcome, member-steps in all)."""
    r = _refine.refine(evaluate, initial, budget=budget, rounds=rounds, cell_keys=["T"],
                       seeds=list(range(64)), target=target, steps=steps, bounds=BOUNDS)
    return r, cost(initial, steps) + r.spent


def states(results: pd.DataFrame, steps: Callable[[dict[str, Any]], float], target: float
           ) -> list[_refine.CellState]:
    """The cells as the estimators see `results` (a proposal with no budget)."""
    return _refine.propose(results, cell_keys=["T"], seeds=[], target=target, budget_left=0.0,
                           steps=steps, bounds=BOUNDS).cells


def resolution(results: pd.DataFrame, T: float, initial_step: float) -> float:
    """Median, over the cell's seeds, of the gaps between a seed's adjacent ln λ that are
    finer than the initial step: the spacing each curve was refined to (NaN if none)."""
    mine = results[(results["T"] == T) & (results["weight_decay"] > 0)]
    gaps = [np.diff(np.unique(np.log(g["weight_decay"]))) for _, g in mine.groupby("seed")]
    fine = np.concatenate(gaps) if gaps else np.array([])
    fine = fine[fine < initial_step * (1 - 1e-6)]
    return float(np.median(fine)) if len(fine) else math.nan


def score(cells: list[_refine.CellState], oracle: Oracle) -> dict[str, Any]:
    hit = {t: [0, 0] for t in TARGETS}
    for c in cells:
        truth = oracle.truth(c.cell["T"])
        for t in TARGETS:
            hw, u = c.halfwidths[t], c.estimates[t]
            if math.isfinite(hw):
                hit[t][0] += abs(u - truth[t]) <= hw
                hit[t][1] += 1
    return {"hit": hit, "met": all(c.met for c in cells),
            "widest": max(v for c in cells for v in c.halfwidths.values())}


def one(rep: int, target: float, rounds: int, budget: float) -> dict[str, Any]:
    o = Oracle(rep=rep)
    init = o.grid(log_grid(*GRID_A), SEEDS0)
    ref, spent = replicate(o.evaluate, init, steps=o.steps, target=target, rounds=rounds,
                           budget=budget)
    final = ref.proposals[-1].cells
    out: dict[str, Any] = {"stop": ref.stop, "rounds": len(ref.proposals) - 1,
                           "adaptive": spent, "a": score(final, o),
                           "seeds": [c.seeds for c in final]}
    dense, coarse, sqrt2 = [], [], []
    res = []
    for c in final:
        T, n = c.cell["T"], c.seeds
        h = resolution(ref.results, T, math.log(GRID_A[2]))
        res.append(h)
        h = h if math.isfinite(h) else math.log(GRID_A[2])
        k = int(round(math.log(GRID_A[1] / GRID_A[0]) / h))
        lams = np.exp(np.linspace(math.log(GRID_A[0]), math.log(GRID_A[1]), k + 1))
        one_cell = Oracle(cells=(T,), rep=rep)
        dense.append(one_cell.grid(lams, range(n)))
        coarse.append(one_cell.grid(log_grid(*GRID_A), range(n)))
        sqrt2.append(one_cell.grid(log_grid(GRID_A[0], GRID_A[1], 2**0.5), range(n)))
    for key, parts in (("d", dense), ("c", coarse), ("s", sqrt2)):
        df = pd.concat(parts, ignore_index=True)
        out[key + "_cost"] = cost(df, o.steps)
        out[key] = score(states(df, o.steps, target), o)
    out.update(dense=out["d_cost"], resolution=np.nanmedian(res))
    ref_b, spent_b = replicate(o.evaluate, o.grid(log_grid(*GRID_B), SEEDS0), steps=o.steps,
                               target=target, rounds=rounds, budget=budget)
    agree = [0, 0]
    for ca, cb in zip(final, ref_b.proposals[-1].cells):
        for t in TARGETS:
            ha, hb = ca.halfwidths[t], cb.halfwidths[t]
            if math.isfinite(ha) and math.isfinite(hb):
                agree[0] += abs(ca.estimates[t] - cb.estimates[t]) <= math.hypot(ha, hb)
                agree[1] += 1
    out.update(agree=agree, adaptive_b=spent_b, b=score(ref_b.proposals[-1].cells, o))
    return out


def _cov(rows: list[dict], key: str, t: str) -> str:
    h = sum(r[key]["hit"][t][0] for r in rows)
    n = sum(r[key]["hit"][t][1] for r in rows)
    return f"{h / n:.3f} ({h}/{n})" if n else "–"


REAL_CELLS = (64, 128)  # batch_size
REAL_SEEDS = (0, 1, 2)
REAL_SPEC = """name = "{name}"
preset = "demo"

[fixed]
epochs = {epochs}
{stop}
[grid]
weight_decay = {lams}
seed = {seeds}
batch_size = {cells}

[resources]
cpus_per_trial = 1

[run]
pack = {pack}
checkpoint_every = 4000
max_failures = 1
"""
# --stop: the collapse stop of benchmarks/bench_early_stop.py (trainer.early_stop), in the
# refined study only: a member whose train accuracy sits at chance (exact sums: ~0) and
# flat for 5 evaluations stops -- the measured-safe short run for the collapse edge.
STOP = dict(acc=0.02, evals=5, tol=0.01)  # stop_train_acc, stop_evals, stop_tol
REFINE = """
[refine]
target = {target}
budget = {budget}
rounds = {rounds}
seeds = {seeds}
range = [{lo}, {hi}]
"""


def _fmt(x: float) -> float:
    return float(f"{x:.6g}")


def _study_steps(study: Path) -> float:
    """Member-steps the study ran (a member stopped early counts to its stop)."""
    from sweep.store import study as st
    from sweep.store.rows import member_steps

    return member_steps(st.read_results(study))


def _ci(cells: pd.DataFrame, label: str, col: str) -> tuple[float, float, float]:
    r = cells.set_index("cell").loc[label]
    return (float(r.get(col, math.nan)), float(r.get(f"{col}_ci_low", math.nan)),
            float(r.get(f"{col}_ci_high", math.nan)))


def dense_points(spend_cells: pd.DataFrame, axes: dict[str, int], seeds: dict[str, list[int]],
                 cap: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every cell's seeds on its uniform ln λ grid at the reached spacing (capped)."""
    from analysis._refine_report import dense_lambdas

    full = {c: dense_lambdas(r.lam_lo, r.lam_hi, r.spacing_ln)
            for c, r in spend_cells.set_index("cell").iterrows()}
    per = spend_cells.set_index("cell")["steps_per_member"].to_dict()
    cost = {c: full[c] * len(seeds[c]) * per[c] for c in full}
    scale = min(1.0, cap / sum(cost.values())) if sum(cost.values()) > 0 else 1.0
    pts, info = [], {"full_member_steps": sum(cost.values()), "capped": scale < 1, "cells": {}}
    for c, r in spend_cells.set_index("cell").iterrows():
        n = full[c] if scale >= 1 else max(2, int(math.floor(full[c] * scale)))
        lams = np.exp(np.linspace(math.log(r.lam_lo), math.log(r.lam_hi), n))
        step = math.log(r.lam_hi / r.lam_lo) / (n - 1) if n > 1 else math.nan
        info["cells"][c] = {"lambdas": n, "full_lambdas": full[c], "spacing_ln": step,
                            "reached_spacing_ln": r.spacing_ln, "seeds": seeds[c],
                            "member_steps": n * len(seeds[c]) * per[c],
                            "full_member_steps": cost[c]}
        pts += [{"batch_size": axes[c], "weight_decay": _fmt(x), "seed": int(s)}
                for x in lams for s in seeds[c]]
    return pts, info


def _timing(root: Path, new: dict[str, float] | None = None) -> dict[str, float]:
    """Wall times of the studies already run in `root` (timing.json), or record `new`."""
    p = root / "timing.json"
    if new is not None:
        p.write_text(json.dumps(new) + "\n")
        return new
    return json.loads(p.read_text()) if p.exists() else {}


NAMES = {"opt": ("λ*", "lambda_star"), "onset": ("onset", "lambda_onset"),
         "collapse": ("collapse", "lambda_collapse")}


def compare(ref: pd.DataFrame, den: pd.DataFrame, spend: pd.DataFrame, info: dict[str, Any],
            axes: dict[str, int], seeds: dict[str, list[int]]) -> list[dict[str, Any]]:
    """Per cell (the analyses' lambda_star tables): each target's estimate, interval and
    half-width in both, and whether the refined estimate lies inside the dense interval."""
    from analysis._refine_report import halfwidths

    hw_ref, hw_den = halfwidths(ref).set_index("cell"), halfwidths(den).set_index("cell")
    cells = []
    for c in sorted(axes, key=axes.get):
        row: dict[str, Any] = {"cell": c, "seeds": seeds[c], "dense": info["cells"][c],
                               "refined_member_steps": float(
                                   spend.set_index("cell").loc[c, "member_steps"])}
        for k, (_, col) in NAMES.items():
            er, rlo, rhi = _ci(ref, c, col)
            ed, lo, hi = _ci(den, c, col)
            ok = all(map(math.isfinite, (er, lo, hi)))
            row[k] = {"refined": er, "refined_ci": [rlo, rhi],
                      "refined_hw": float(hw_ref.loc[c, f"hw_{k}"]),
                      "dense": ed, "dense_ci": [lo, hi],
                      "dense_hw": float(hw_den.loc[c, f"hw_{k}"]),
                      "inside": bool(lo <= er <= hi) if ok else None}
        cells.append(row)
    return cells


def real(a: argparse.Namespace) -> int:
    os.environ["RAY_ADDRESS"] = "local"  # sweep.run starts a new local Ray
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import sweep
    from analysis import analyze
    from analysis._refine_report import members, summarize
    from sweep.store import study as st

    root = Path(a.workdir or tempfile.mkdtemp(prefix="bench-refine-real-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"studies under {root}", flush=True)
    lams = [_fmt(x) for x in np.exp(np.linspace(math.log(a.lam_lo), math.log(a.lam_hi),
                                                a.points))]
    common = dict(epochs=a.epochs, seeds=list(REAL_SEEDS), cells=list(REAL_CELLS),
                  pack=a.pack, stop="")
    stop = (f"stop_train_acc = {STOP['acc']}\nstop_evals = {STOP['evals']}\n"
            f"stop_tol = {STOP['tol']}\n") if a.stop else ""
    text = REAL_SPEC.format(name="refined", lams=lams, **{**common, "stop": stop}) + \
        REFINE.format(
        target=a.target, budget=a.budget, rounds=a.rounds, seeds=list(REAL_SEEDS),
        lo=lams[0], hi=lams[-1])
    timing = _timing(root)
    if "refined" in timing and timing.get("stop", False) != a.stop:
        raise SystemExit(f"{root}: its refined study ran with stop={timing.get('stop', False)}"
                         f", not --stop={a.stop}; use another --workdir")
    timing["stop"] = a.stop
    if "refined" not in timing:  # --workdir of an earlier run: its finished studies reused
        sweep.run(sweep.parse(text), root / "refined", dry_run=True)  # refused before Ray
        timing["load0"], t0 = os.getloadavg()[0], time.perf_counter()
        sweep.run(sweep.parse(text), root / "refined")
        timing["refined"] = time.perf_counter() - t0
        _timing(root, timing)
    t_ref = timing["refined"]
    a_ref = analyze(root / "refined", sensitivity=False)
    rec = st.read_state(root / "refined").get("refine") or {}
    spend = summarize(members(a_ref.hist), a_ref.cells, rec)
    if spend is None:
        print(f"the refined study ran no round after its grid ({rec.get('stop')}: "
              f"{rec.get('stop_reason')}): nothing to compare", flush=True)
        return 1
    axes = dict(zip(a_ref.cells["cell"], a_ref.cells["batch_size"].astype(int)))
    res = st.read_results(root / "refined")
    res["cell"] = res["batch_size"].map({v: k for k, v in axes.items()})
    seeds = {c: sorted(int(s) for s in g["seed"].unique()) for c, g in res.groupby("cell")}
    pts, info = dense_points(spend.cells, axes, seeds, a.dense_max)
    dense = sum(c["member_steps"] for c in info["cells"].values())
    print(f"refined: {_study_steps(root / 'refined'):,.0f} member-steps in {t_ref:.0f} s; "
          f"dense: {len(pts)} members, {dense:,.0f} member-steps (full resolution "
          f"{info['full_member_steps']:,.0f})", flush=True)
    base = sweep.parse(REAL_SPEC.format(name="dense", lams=[pts[0]["weight_decay"]],
                                        **{**common, "seeds": [pts[0]["seed"]],
                                           "cells": [pts[0]["batch_size"]]}))
    if "dense" not in timing:
        t1 = time.perf_counter()
        sweep.run(dataclasses.replace(base, points=tuple(pts)), root / "dense")
        timing["dense"], timing["load1"] = time.perf_counter() - t1, os.getloadavg()[0]
        _timing(root, timing)
    t_den = timing["dense"]
    a_den = analyze(root / "dense", sensitivity=False)
    s_ref, s_den = _study_steps(root / "refined"), _study_steps(root / "dense")
    cells = compare(a_ref.cells, a_den.cells, spend.cells, info, axes, seeds)
    stopped = int(res["stopped_step"].notna().sum()) if "stopped_step" in res else 0
    summary = {"epochs": a.epochs, "grid": lams, "target": a.target, "budget": a.budget,
               "stop_rule": STOP if a.stop else None, "stopped_members": stopped,
               "refined_members": len(res),
               "rounds_max": a.rounds, "stop": rec.get("stop"), "reason": rec.get("stop_reason"),
               "rounds": spend.rounds.to_dict("records"), "refined_member_steps": s_ref,
               "dense_member_steps": s_den, "ratio": s_ref / s_den,
               "dense_full_member_steps": info["full_member_steps"],
               "ratio_full": s_ref / info["full_member_steps"], "capped": info["capped"],
               "wall_s": {"refined": t_ref, "dense": t_den},
               "load": [timing["load0"], timing["load1"]],
               "cells": cells, "studies": str(root)}
    if a.json:
        Path(a.json).write_text(json.dumps(summary, indent=2, default=float) + "\n")
    _print_real(summary, NAMES)
    return 0


def _g(x: Any, n: int = 3) -> str:
    return f"{x:.{n}g}" if isinstance(x, float) and math.isfinite(x) else "–"


def _iv(e: float, ci: list[float]) -> str:
    return f"{_g(e)} [{_g(ci[0])}, {_g(ci[1])}]" if math.isfinite(e) else "–"


def _print_real(s: dict[str, Any], names: dict[str, tuple[str, str]]) -> None:
    print(f"\n## bench_refine --real: demo preset, {s['epochs']} epochs, cells b = 64, 128, "
          f"seeds 0-2, target {s['target']:g}, budget {s['budget']:,.0f}\n")
    rule = s.get("stop_rule")
    print(f"refined with the collapse stop {rule}: {s['stopped_members']} of "
          f"{s['refined_members']} members stopped early" if rule else
          "refined without early stopping")
    print(f"refined: stop {s['stop']} ({s['reason']}); rounds: " + "; ".join(
        f"{r['label']} {r['experiment']}: {r['members']} members, {r['member_steps']:,.0f}"
        for r in s["rounds"]))
    print("\n| design | member-steps | ratio refined / dense | wall |\n|---|---|---|---|")
    print(f"| refined | {s['refined_member_steps']:,.0f} | {s['ratio']:.3f} | "
          f"{s['wall_s']['refined']:.0f} s |")
    print(f"| dense (run) | {s['dense_member_steps']:,.0f} | 1 | {s['wall_s']['dense']:.0f} s |")
    if s["capped"]:
        print(f"| dense at full resolution (counted) | {s['dense_full_member_steps']:,.0f} | "
              f"{s['ratio_full']:.3f} | not run |")
    print("\n| cell | dense λ (spacing ln λ; reached) | target | refined [95%] | hw | "
          "dense [95%] | hw | refined inside dense |\n|---|---|---|---|---|---|---|---|")
    for c in s["cells"]:
        d = c["dense"]
        for k, (name, _) in names.items():
            t = c[k]
            inside = {True: "yes", False: "NO", None: "–"}[t["inside"]]
            print(f"| {c['cell']} | {d['lambdas']} ({_g(d['spacing_ln'])}; "
                  f"{_g(d['reached_spacing_ln'])}) | {name} | {_iv(t['refined'], t['refined_ci'])}"
                  f" | {_g(t['refined_hw'])} | {_iv(t['dense'], t['dense_ci'])} | "
                  f"{_g(t['dense_hw'])} | {inside} |")
    print(f"\nwall time {s['wall_s']['refined'] + s['wall_s']['dense']:.0f} s (training, "
          f"Ray and analysis); load average {s['load'][0]:.1f} at the start, "
          f"{s['load'][1]:.1f} at the end; studies in {s['studies']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--oracle", action="store_true", help="the synthetic oracle (no training)")
    mode.add_argument("--real", action="store_true",
                      help="real training (demo preset) through sweep.run")
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--target", type=float, default=0.15)
    ap.add_argument("--rounds", type=int, default=None,
                    help="at most (default: 12 --oracle, 4 --real)")
    ap.add_argument("--budget", type=float, default=None,
                    help="member-steps (default: 1e9 per replicate --oracle; 140,000 --real, "
                         "the grid included)")
    real_opts = ap.add_argument_group("--real")
    real_opts.add_argument("--epochs", type=int, default=100)
    real_opts.add_argument("--lam-lo", type=float, default=0.04)
    real_opts.add_argument("--lam-hi", type=float, default=1.5)
    real_opts.add_argument("--points", type=int, default=5, help="λ of the coarse grid")
    real_opts.add_argument("--pack", type=int, default=8)
    real_opts.add_argument("--dense-max", type=float, default=420_000,
                           help="member-steps the dense grid may cost (else coarser)")
    real_opts.add_argument("--workdir", default=None, help="where the studies go (default: "
                           "a new temporary directory)")
    real_opts.add_argument("--json", default=None, help="also write the numbers here")
    real_opts.add_argument("--stop", action="store_true", help="the refined study with the "
                           "collapse stop (STOP); the dense grid without")
    a = ap.parse_args()
    if a.real:
        a.rounds = 4 if a.rounds is None else a.rounds
        a.budget = 140_000 if a.budget is None else a.budget
        return real(a)
    a.rounds = 12 if a.rounds is None else a.rounds
    a.budget = 1e9 if a.budget is None else a.budget
    t0 = time.perf_counter()
    rows = [one(rep, a.target, a.rounds, a.budget) for rep in range(a.reps)]
    med = statistics.median
    print(f"## bench_refine --oracle: {a.reps} replicates, 3 cells, target {a.target:g}, "
          f"at most {a.rounds} rounds\n")
    print("| design | member-steps (median) | ratio to dense (median) | ratio to ×√2 (median) "
          "| every cell met | λ* coverage | onset coverage | collapse coverage |\n"
          "|---|---|---|---|---|---|---|---|")
    for name, key, cost_key in (("adaptive (×3 start)", "a", "adaptive"),
                                ("adaptive (×2.5 start)", "b", "adaptive_b"),
                                ("dense, final resolution", "d", "d_cost"),
                                ("coarse ×3, final seeds", "c", "c_cost"),
                                ("×√2 grid, final seeds", "s", "s_cost")):
        ratio = med(r[cost_key] / r["dense"] for r in rows)
        vs = med(r[cost_key] / r["s_cost"] for r in rows)
        met = sum(r[key]["met"] for r in rows)
        print(f"| {name} | {med(r[cost_key] for r in rows):.3g} | {ratio:.3f} | {vs:.3f} | "
              f"{met}/{len(rows)} | " + " | ".join(_cov(rows, key, t) for t in TARGETS) + " |")
    stops: dict[str, int] = {}
    for r in rows:
        stops[r["stop"]] = stops.get(r["stop"], 0) + 1
    ag, n = sum(r["agree"][0] for r in rows), sum(r["agree"][1] for r in rows)
    print(f"\nstops: {', '.join(f'{k}: {v}' for k, v in sorted(stops.items()))}; rounds "
          f"median {med(r['rounds'] for r in rows):g} (max {max(r['rounds'] for r in rows)}); "
          f"final resolution median {med(r['resolution'] for r in rows):.3f} in ln λ; "
          f"widest final half-width median {med(r['a']['widest'] for r in rows):.3f}; "
          f"final seeds per cell median {med(n for r in rows for n in r['seeds']):g} "
          f"(range {min(n for r in rows for n in r['seeds'])}-"
          f"{max(n for r in rows for n in r['seeds'])})")
    print(f"two initial grids agree within their intervals: {ag}/{n}"
          f" ({ag / n:.3f})" if n else "two initial grids: nothing to compare")
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
