"""`wdsweep status`: counts and the per-member table, read from the study without Ray.

A member is completed or errored as results.csv says (rows land there when their
trial completes), running with its step, latest test accuracy and ETA as the
running driver's STUDY/status.json says, and pending otherwise (its λ, seed, b, B,
T from the experiments' plan records). T is in epochs (`epochs`), as in the report;
`total_steps` and `step` are steps."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from sweep.plan.members import member_table
from sweep.store import records as _records
from sweep.store import study as st
from trainer.errors import SpecError


def status(study: Path) -> dict[str, Any]:
    """Counts in members: total, completed, running, pending, errored (+ per trial)."""
    if not ((study / st.STATE).exists() or (study / st.STATE).is_symlink()):
        st.read_state(study)  # a study's tables or plans without it: damaged
        raise SpecError("study", f"{study} is not a wdsweep study (no {st.STATE})")
    state = st.check(study)  # a damaged study stops here, naming the file
    res = st.read_results(study)
    done = set() if res.empty else set(res.loc[res.status == "completed", "config_hash"])
    failed = set() if res.empty else set(res.loc[res.status == "errored", "config_hash"]) - done
    planned = {h for e in state["experiments"] for h in e["members"]} | done | failed
    try:
        live = json.loads(st.read_regular(study / st.STATUS, st.SMALL)) \
            if (study / st.STATUS).exists() else {}
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        live = {}  # advisory, rewritten by the running driver: a torn one shows no trials
    if not isinstance(live, dict):
        live = {}
    alive = st.is_locked(study)
    members = _members(study, state, res, live if alive else {})
    # Running: as the driver last said, unless results.csv already has the member.
    running = sum(m["status"] == "running" and m["config_hash"] not in done | failed
                  for m in members)
    pending = len(planned) - len(done) - len(failed) - running
    return {"study": str(study), "total": len(planned), "completed": len(done),
            "running": running, "pending": pending, "errored": len(failed),
            "driver_alive": alive,
            "experiments": [{k: e[k] for k in ("name", "status")} for e in state["experiments"]],
            "trials": live.get("per_trial", []) if alive else [],
            "members": members, **_refinement(state)}


def _refinement(state: dict[str, Any]) -> dict[str, Any]:
    """A refined study's rounds (sweep.runner.refine): each one's experiment, points,
    member-steps and reason, and the stop once there is one."""
    rec = state.get("refine")
    if not isinstance(rec, dict):
        return {}
    keys = ("experiment", "points", "member_steps", "reason")
    return {"refine": dict(
        settings=rec.get("settings"), stop=rec.get("stop"), stop_reason=rec.get("stop_reason"),
        spent=rec.get("spent"),
        rounds=[{k: r.get(k) for k in keys} for r in rec.get("rounds", [])
                if isinstance(r, dict)])}


_COLS = ("weight_decay", "seed", "batch_size", "train_size", "total_steps")


def _members(study: Path, state: dict[str, Any], res, live: dict[str, Any]) -> list[dict]:
    """One row per member: its λ (PyTorch units), seed, b, B, T (`epochs`; and
    `total_steps`), status, step, latest test accuracy, ETA (seconds, running members
    only), trial and experiment."""

    rows: dict[str, dict[str, Any]] = {}
    for e in state["experiments"]:  # planned: pending unless a later source says more
        for t in _records.read_plan(study, e):
            for row in member_table(t.members).values():
                rows[row["config_hash"]] = dict(
                    {c: row[c] for c in _COLS}, epochs=row.get("epochs_T"),
                    config_hash=row["config_hash"],
                    status="pending", step=None, test_acc=None, eta_s=None, trial=t.key,
                    experiment=e["name"])
    for t in live.get("per_trial", []):
        for m in t.get("member_rows", []):
            if m["status"] == "running" and m["config_hash"] in rows:
                rows[m["config_hash"]].update(status="running", step=m["step"],
                                              test_acc=m["test_acc"], eta_s=m["eta_s"])
    for r in ([] if res.empty else res.to_dict("records")):
        done = r["status"] == "completed"
        rows[r["config_hash"]] = dict(
            {c: _plain(r.get(c)) for c in _COLS}, epochs=_plain(r.get("epochs_T")),
            config_hash=r["config_hash"],
            status=r["status"], step=_plain(r.get("total_steps")) if done else None,
            test_acc=_plain(r.get("last_test_acc")) if done else None, eta_s=None,
            trial=r.get("trial_id"), experiment=r.get("experiment"))
    return sorted(rows.values(), key=_order)


def _order(m: dict[str, Any]) -> tuple:
    """Experiment, trial, λ, seed -- whatever a table row holds (a forged one too)."""
    def num(v: Any) -> float:
        try:
            f = float(v)
        except (TypeError, ValueError):
            return math.inf
        return f if not math.isnan(f) else math.inf

    return (str(m["experiment"] or ""), str(m["trial"] or ""), num(m["weight_decay"]),
            num(m["seed"]))


def _plain(v: Any) -> Any:
    """numpy scalars and NaN from pandas as JSON-friendly values."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v
