"""Closed-loop refinement of a study (`[refine]` in a spec, `wdsweep refine STUDY`).

Rounds of run -> analyze -> propose -> extend, until every cell's λ*, onset and collapse
edge meet the target half-width, the budget is spent, nothing more would help, or the
rounds are used up; the record says which. Round 0 is the spec's grid. Each later round
is one plain experiment of the study planned from the proposed points (`Spec.points`),
so `resume`, `status`, `export`/`import` and the analysis see ordinary members. The
proposals come from the analysis' own estimates (`analysis._refine.propose`). The driver
hands this module its `run` / `resume` (`Runner`): the loop runs experiments the way
`wdsweep run` does, and the driver stays the one module that starts Tune.

study.json's `refine` (sealed with the rest) holds the settings, the spec's text
(`wdsweep refine STUDY` plans from it, never from the study's spec.toml) and each round:
its experiment, points, member-steps, the half-widths it started from, and the stop.
The settings are written with the grid's own experiment record, so a driver killed in
any round, the grid included, leaves its experiment `running` in a study `refine`
continues: it finishes that experiment first, and no proposal repeats a member the
study has. A spec refines its own cells, with its own rounds and budget: another spec's
record (an earlier sitting's, an imported study's) moves to `refine.earlier` (`adopt`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from sweep.plan.packs import expand
from sweep.plan.refine import Refine
from sweep.plan.spec import Spec, parse
from sweep.plan.trial import ExpState, MemberState
from sweep.store import study as st
from sweep.store.rows import member_steps
from trainer.config import DECAY_KEYS, DERIVED_KEYS, EXECUTION_ONLY, FIELDS
from trainer.errors import SpecError

log = logging.getLogger(__name__)
NOT_CELL = (*DECAY_KEYS, "seed", "data_seed")
# What is not a cell's identity in results.csv: the decay and seeds (a cell's points),
# how a run executes, and the length's other spellings (total_steps is the length).
_NOT_IDENTITY = (*NOT_CELL, *EXECUTION_ONLY, "epochs", "steps", "epochs_T")


@dataclasses.dataclass(frozen=True)
class Runner:
    """The driver's entry points the loop uses (sweep.runner.driver)."""
    run: Callable[..., dict[str, Any]]  # run(spec, study, **kw): one plain experiment
    resume: Callable[..., dict[str, Any]]  # resume(study, **kw)
    require_trust: Callable[[Path, dict[str, Any], bool], None]


def run(spec: Spec, study: Path, runner: Runner, **kw: Any) -> dict[str, Any]:
    """The grid (round 0), then rounds of proposals (the spec's `[refine]`)."""
    cfg = spec.refine
    assert cfg is not None
    unit, cell_keys, seeds = design(spec)
    out = runner.run(_plain(spec), study, refine_record=_record(spec, cfg), **kw)
    if out.get("unfinished_trials"):  # interrupted (Ctrl-C): no round on a partial grid
        return out | _interrupted(study, "its grid")
    _start(study, spec, cfg)  # (again, for a grid that had nothing left to run)
    rounds = _rounds(spec, study, cfg, unit, cell_keys, seeds, runner, **kw)
    return {**out, **rounds, **{k: (out.get(k) or 0) + rounds[k] for k in ("ran", "errored")}}


def more(study: Path, runner: Runner, *, rounds: int | None = None,
         budget: float | None = None, trust_code: bool = False, **kw: Any) -> dict[str, Any]:
    """`wdsweep refine STUDY`: finish an interrupted round, then more rounds (`rounds`
    more than recorded, `budget` a new total), from the spec study.json recorded."""
    with st.locked(study):
        state = st.check(study)
        runner.require_trust(study, state, trust_code)
    rec = state.get("refine")
    if not isinstance(rec, dict) or not isinstance(rec.get("spec"), str):
        raise SpecError("study", f"{study} was not run with a [refine] section; allowed: a "
                        "study whose spec has one (`wdsweep run SPEC` with [refine])")
    spec = parse(rec["spec"])
    cfg = spec.refine or Refine(budget=0)
    done = len(rec.get("rounds", []))
    cfg = dataclasses.replace(cfg, rounds=done + rounds if rounds is not None else cfg.rounds,
                              budget=float(budget) if budget is not None else cfg.budget)
    if any(e["status"] == ExpState.RUNNING for e in state["experiments"]):
        out = runner.resume(study, trust_code=trust_code, **_resume_kw(kw))
        if out.get("unfinished_trials"):  # interrupted again: no round on what is partial
            return out | _interrupted(study, "the unfinished experiment")
    unit, cell_keys, seeds = design(spec)
    return _rounds(spec, study, cfg, unit, cell_keys, seeds, runner, trust_code=trust_code,
                   **kw)


def design(spec: Spec) -> tuple[str, list[str], list[int]]:
    """The grid's decay unit, its cell axes and the seeds a cell may grow into."""
    units = [k for k in spec.grid if k in DECAY_KEYS]
    if not units:
        raise SpecError("refine", "needs the decay as a [grid] axis (weight_decay, "
                        "decay_per_step or lambda_norm) to refine in")
    cell_keys = [k for k in spec.grid if k not in NOT_CELL]
    odd = [k for k in cell_keys if "." in k]
    if odd:
        raise SpecError("refine", f"cannot refine over the axis {odd[0]} yet; allowed: "
                        "grid axes of the trainer's own config")
    grid_seeds = [int(s) for s in spec.grid.get("seed", [spec.fixed.get("seed", 0)])]
    seeds = list(spec.refine.seeds) if spec.refine and spec.refine.seeds else \
        grid_seeds + [max(grid_seeds) + i for i in (1, 2, 3)]
    return units[0], cell_keys, seeds


def dry_run_note(spec: Spec) -> str:
    """What a refined study will do after its grid (`wdsweep run --dry-run`)."""
    if spec.refine is None:
        return ""
    design(spec)  # a spec that cannot be refined is refused before anything runs
    r = spec.refine
    return (f"; then up to {r.rounds} refinement rounds until each cell's λ*, onset and "
            f"collapse are within ±{r.target:g} in ln λ, {r.budget:,.0f} member-steps in all "
            "(the grid's included)")


def _plain(spec: Spec, points: tuple[dict[str, Any], ...] = ()) -> Spec:
    return dataclasses.replace(spec, refine=None, points=points)


def _record(spec: Spec, cfg: Refine) -> dict[str, Any]:
    """study.json's `refine` settings: what `wdsweep refine STUDY` plans from."""
    return dict(settings=cfg.as_dict(), spec=spec.text)


def adopt(state: dict[str, Any], record: dict[str, Any]) -> None:
    """Make study.json's `refine` this spec's (`record`: settings and text). The same
    spec's record is kept (a refinement continued); another's -- an imported study's
    rounds, an earlier sitting's spec -- moves to `earlier` and this spec starts its own
    rounds: rounds, like the budget, are counted per spec."""
    old = state.get("refine")
    if isinstance(old, dict) and old.get("spec") != record["spec"]:
        earlier = old.pop("earlier", [])
        state["refine"] = {"rounds": [], "earlier": [*earlier, old]}
    state.setdefault("refine", {"rounds": []}).update(record)


def _start(study: Path, spec: Spec, cfg: Refine) -> None:
    with st.locked(study):
        state = st.check(study)
        adopt(state, _record(spec, cfg))
        st.write_state(study, state)


def _rounds(spec: Spec, study: Path, cfg: Refine, unit: str, cell_keys: list[str],
            seeds: list[int], runner: Runner, **kw: Any) -> dict[str, Any]:
    from analysis._refine import propose  # lazy: the analysis (numpy, scipy)

    ran = {"ran": 0, "errored": 0}
    mine = {m.config_hash() for m in expand(_plain(spec))}
    while True:
        res = _own_cells(st.read_results(study), mine)
        ok = res[res.status == MemberState.COMPLETED] if not res.empty else res
        ok = _window_finals(ok, st.read_history(study))
        spent = member_steps(res)
        rounds = st.check(study)["refine"]["rounds"]
        if len(rounds) >= cfg.rounds:
            return ran | _stop(study, "rounds", f"{len(rounds)} rounds done", spent)
        missing = [c for c in (*cell_keys, unit) if not ok.empty and c not in ok]
        if missing:
            raise SpecError("refine", f"results.csv has no column {missing[0]}")
        steps = _steps_per_cell(ok, cell_keys)
        prop = propose(ok, cell_keys=cell_keys, seeds=seeds, target=cfg.target,
                       budget_left=max(0.0, cfg.budget - spent), decay_col=unit,
                       steps=_cost(steps, cell_keys), bounds=cfg.range)
        if prop.stop is not None:
            return ran | _stop(study, prop.stop, prop.reason, spent, prop.cells)
        points = tuple(_plain_point(p) for p in prop.points)
        log.info("refine round %d: %d points, %s member-steps; %s", len(rounds) + 1,
                 len(points), f"{prop.cost:,.0f}", prop.reason)
        out = runner.run(_plain(spec, points), study, refine_round=_round(prop, len(points)),
                         **kw)  # the round is recorded with its experiment, or not at all
        ran = {k: ran[k] + (out.get(k) or 0) for k in ran}
        if not out.get("ran"):  # every proposed member was done already: nothing to gain
            return ran | _stop(study, "no_gain", "the round's points were all completed "
                               "already", spent, prop.cells)
        if out.get("unfinished_trials"):  # the round was interrupted: propose nothing more
            return ran | {"unfinished_trials": out["unfinished_trials"]} | \
                _interrupted(study, f"round {len(rounds) + 1} ({out.get('experiment')})")


def _own_cells(res: pd.DataFrame, mine: set[str]) -> pd.DataFrame:
    """The rows in the cells of the spec's own members `mine`: a spec that extends a study
    with new cells refines those, and its budget counts their member-steps, not the rest
    of the study's. A cell is every config column but the decay and seeds -- not only
    the spec's grid axes: an extension may fix its new cell in [fixed] (b = 512 in a study
    of b = 16...256), and a study's other cells differ from it in columns this spec does
    not vary."""
    if res.empty:
        return res
    cols = [c for c in res.columns if (c in FIELDS or c in DERIVED_KEYS)
            and c not in _NOT_IDENTITY]
    key = [_cell(r, cols) for r in res[cols].to_dict("records")]
    cells = {k for k, h in zip(key, res.config_hash) if h in mine}
    return res[[k in cells for k in key]]


def _window_finals(ok: pd.DataFrame, hist: pd.DataFrame) -> pd.DataFrame:
    """`test_acc` / `train_acc` per member as the analysis takes them (the mean over the
    final window, analysis._summary.finals), so the loop judges a cell -- learned or not,
    where its top is -- on the numbers its report will show, not on the single last
    evaluation (results.csv's last_*). Without history the last values stand."""
    if ok.empty or hist.empty or "step" not in hist:
        return ok
    from analysis._summary import finals  # lazy: the analysis (numpy, scipy)

    extra = [c for c in ("stopped_step", "stop_evals") if c in ok]
    h = hist.rename(columns={"config_hash": "run"})
    if extra:
        h = h.merge(ok[["config_hash", *extra]].rename(columns={"config_hash": "run"}),
                    on="run", how="left")
    f = finals(h)
    out = ok.copy()
    for m in ("test_acc", "train_acc"):
        if f"final_{m}" in f:
            win = out["config_hash"].map(f[f"final_{m}"])
            out[m] = win.fillna(out[f"last_{m}"]) if f"last_{m}" in out else win
    return out


def _steps_per_cell(ok: pd.DataFrame, cell_keys: list[str]) -> dict[tuple, float]:
    """Member-steps of one member of each cell (T, b and B fix them), from its rows."""
    if ok.empty:
        return {}
    return {_cell(r, cell_keys): float(r["total_steps"])
            for r in ok.drop_duplicates(cell_keys or ["total_steps"]).to_dict("records")}


def _cost(steps: dict[tuple, float], cell_keys: list[str]) -> Callable[[dict], float]:
    return lambda p: steps[_cell(p, cell_keys)]


def _cell(p: dict[str, Any], cell_keys: list[str]) -> tuple:
    return tuple(_key(p[k]) for k in cell_keys)


def _key(v: Any) -> Any:
    v = _py(v)
    return None if isinstance(v, float) and math.isnan(v) else v  # NaN != NaN: one None


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _plain_point(p: dict[str, Any]) -> dict[str, Any]:
    """A proposal as trainer overrides: Python scalars (TOML's types), never numpy's."""
    return {k: _py(v) for k, v in p.items()}


def _halfwidths(cells) -> list[dict[str, Any]]:
    return [dict(cell=c.cell, met=c.met, seeds=c.seeds,
                 halfwidths={k: (None if not math.isfinite(v) else round(v, 4))
                             for k, v in c.halfwidths.items()}) for c in cells]


def _round(prop, n: int) -> dict[str, Any]:
    """A round's record, less its experiment's name (the driver adds it: sweep.runner.driver
    `_launch`, in the same write as the experiment's entry)."""
    return dict(points=n, member_steps=prop.cost, reason=prop.reason,
                cells=_halfwidths(prop.cells))


def _stop(study: Path, stop: str, reason: str, spent: float, cells=()) -> dict[str, Any]:
    with st.locked(study):
        state = st.check(study)
        rec = state["refine"]
        rec.update(stop=stop, stop_reason=reason, spent=spent)
        if cells:
            rec["final"] = _halfwidths(cells)
        st.write_state(study, state)
    log.info("refine stopped (%s): %s; %s member-steps spent of %s", stop, reason,
             f"{spent:,.0f}", f"{rec['settings']['budget']:,.0f}")
    return {"refine_stop": stop, "refine_reason": reason, "refine_rounds": len(rec["rounds"]),
            "member_steps_spent": spent}


def _interrupted(study: Path, what: str) -> dict[str, Any]:
    log.warning("refine: %s was interrupted; `wdsweep refine %s` finishes it, then goes on "
                "with the rounds", what, study)
    return {"refine_stop": None, "refine_reason": f"{what} interrupted"}


def _resume_kw(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if k in ("address", "callbacks", "yes")}
