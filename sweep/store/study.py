"""The study directory: lock, state, and the results tables.

    STUDY/spec.toml       the spec as last run (specs/ keeps one per experiment)
    STUDY/study.json      experiments, their status, the Ray version that ran them
    STUDY/results.csv     one row per member: resolved config, final metrics, status
    STUDY/history.csv     one row per member per evaluation
    STUDY/status.json     live trial counts, written by the running driver
    STUDY/plans/          one JSON record per experiment: its trials and members
    STUDY/experiments/    Ray Tune experiments (unless the spec sets run.storage)

study.json records the row count and sha256 of results.csv and history.csv each
time they are written; every command checks them first (`check`), so a table
that was truncated or edited stops the command with a one-line error instead of
giving a wrong answer. `wdsweep repair` rebuilds the tables (sweep.store.repair).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from sweep.plan.trial import TRIAL_KEY, ExpState
from sweep.store import trust as _trust
from sweep.store.fs import (  # noqa: F401 -- the study's file layer, used as study.X
    ENTRIES,
    HISTORY,
    MAX_DEPTH,
    PLANS,
    RESULTS,
    SMALL,
    SPEC,
    SPECS,
    STATE,
    STATUS,
    TABLE,
    TREES,
    StudyBusy,
    StudyUnsafe,
    check_links,
    check_tree,
    is_locked,
    locked,
    read_regular,
    refuse_if_busy,
    try_locked,
)
from trainer.errors import SpecError, StudyDamaged, StudyLegacy  # noqa: F401 (re-exported)
from trainer.fsutil import atomic_write_bytes

_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")  # never "", ".", ".." or a path
EXP_NAME = re.compile(r"^exp-[0-9]{3,6}\Z")
_EXP = re.compile(r"^(exp-[0-9]{3,6}|imported)\Z")
MEMBER = re.compile(r"^[0-9a-f]{16}\Z")  # TrainConfig.config_hash


def safe_id(name: str, fallback: str = "study", limit: int = 128) -> str:
    """A name from a record someone else wrote, as a path component: never '..', a
    slash or a hidden name; at most `limit` characters."""
    s = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip(".-")[:min(limit, 128)]
    return s if s and _ID.match(s) else fallback


def read_state(study: Path, legacy_ok: bool = False) -> dict[str, Any]:
    """study.json, checked: its shape, every name that becomes a path, and its seal
    (sweep.store.trust: a sha256 of its own content). No study.json: an empty state, unless
    the directory holds a study's tables or plans (then it is damaged)."""
    p = study / STATE
    if study.is_dir():
        check_links(study)
    if not p.exists() and not p.is_symlink():
        if any((study / n).exists() for n in (RESULTS, HISTORY, PLANS)):
            raise StudyDamaged(study, STATE, "missing, but the study has tables or plans")
        return {"experiments": []}
    try:
        state = json.loads(read_regular(p, SMALL))
    except OSError as e:
        raise StudyDamaged(study, STATE, f"cannot read it ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise StudyDamaged(study, STATE, f"not JSON ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:80] if str(e) else ''})") from None
    _check_shape(study, state)
    ok = _trust.intact(state)
    if ok is None and not legacy_ok:
        raise StudyLegacy(study)
    if ok is False:
        raise StudyDamaged(study, STATE, "its content differs from its own checksum "
                           "(damaged or edited)")
    return state


def _check_shape(study: Path, state: Any) -> None:
    if not (isinstance(state, dict) and isinstance(state.get("experiments"), list)
            and all(isinstance(e, dict) and {"name", "uri", "status", "members"} <= e.keys()
                    for e in state["experiments"])):
        raise StudyDamaged(study, STATE, "not a wdsweep study record (no experiments list)")
    for k in ("id", "name"):
        if k in state and not (isinstance(state[k], str) and _ID.match(state[k])):
            raise StudyUnsafe(study, STATE, f"has {k} {str(state[k])[:40]!r}; allowed: "
                              "letters, digits, '-', '_', '.' (it becomes a path)")
    for k in ("tables", "tables_pending"):
        if not isinstance(state.get(k) or {}, dict):
            raise StudyDamaged(study, STATE, f"its {k} record is not a table of files")
    names = [e["name"] for e in state["experiments"]]
    for e in state["experiments"]:
        if not (isinstance(e["name"], str) and _EXP.match(e["name"])):
            raise StudyUnsafe(study, STATE, f"names an experiment {str(e['name'])[:40]!r}; "
                              "allowed: exp-NNN (it becomes a path)")
        trials = e.get("trials", [])
        if e["status"] not in tuple(ExpState) or not isinstance(e["uri"], str) or not (
                isinstance(e["members"], list) and isinstance(trials, list)
                and all(isinstance(h, str) and MEMBER.match(h) for h in e["members"])
                and all(isinstance(t, str) and TRIAL_KEY.match(t) for t in trials)):
            raise StudyDamaged(study, STATE, f"experiment {e['name']} is not a wdsweep record")
        if e["status"] == "imported" and trials:  # imports have no checkpoints to search
            raise StudyDamaged(study, STATE, "an imported experiment lists trials")
        if "last" in e and not (isinstance(e["last"], str) and EXP_NAME.match(e["last"])):
            raise StudyDamaged(study, STATE, f"experiment {e['name']}'s last name is not "
                               "exp-NNN")
    if len(set(names)) != len(names):
        raise StudyDamaged(study, STATE, "names one experiment twice")
    if "refine" in state and checked_refine(state["refine"]) != state["refine"]:
        raise StudyDamaged(study, STATE, "its refine record is not one wdsweep writes")


_ROUND = {"experiment": str, "points": int, "member_steps": (int, float), "reason": str,
          "cells": list}


def checked_refine(rec: Any) -> dict[str, Any] | None:
    """A refinement record (sweep.runner.refine) as data: the settings, the spec's text,
    the rounds (each a known experiment name and counts) and the stop; anything else
    in it is dropped. None if it is not one."""
    if not isinstance(rec, dict) or not isinstance(rec.get("rounds"), list):
        return None
    out: dict[str, Any] = {k: rec[k] for k in ("settings", "spec", "stop", "stop_reason",
                                                "spent", "final") if k in rec}
    if not all(isinstance(out.get(k, ""), str) for k in ("spec", "stop", "stop_reason")) \
            or not isinstance(out.get("settings", {}), dict):
        return None
    rounds = []
    for r in rec["rounds"]:
        if not (isinstance(r, dict) and set(r) <= set(_ROUND)
                and all(isinstance(r.get(k), t) for k, t in _ROUND.items() if k in r)
                and isinstance(r.get("experiment"), str) and EXP_NAME.match(r["experiment"])):
            return None
        rounds.append(r)
    if "earlier" in rec:  # the records of other specs' refinements of the study, oldest first
        if not isinstance(rec["earlier"], list):
            return None
        earlier = [checked_refine(r) for r in rec["earlier"]]
        if any(r is None or "earlier" in r for r in earlier):
            return None
        out["earlier"] = earlier
    return dict(out, rounds=rounds)


def write_state(study: Path, state: dict[str, Any], sign: bool = True) -> None:
    """study.json, sealed (sweep.store.trust; signed unless `sign` is False) and written
    atomically."""
    write_json(study / STATE, _trust.seal(state, sign))


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, default=str).encode())


_IDS = {"config_hash": str, "trial_id": str}  # hex ids that pandas could read as numbers


def read_results(study: Path) -> pd.DataFrame:
    return _read_table(study, RESULTS)


def read_history(study: Path) -> pd.DataFrame:
    return _read_table(study, HISTORY)


def _read_table(study: Path, name: str) -> pd.DataFrame:
    p = study / name
    if not p.exists() and not p.is_symlink():
        return pd.DataFrame()
    try:
        df = pd.read_csv(io.BytesIO(read_regular(p)), dtype=_IDS)
    except OSError as e:
        raise StudyDamaged(study, name, f"cannot read it ({e.strerror or e})") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise StudyDamaged(study, name, f"unreadable CSV ({str(e).splitlines()[0][:80]})") \
            from None
    if "config_hash" not in df.columns or (name == RESULTS and "status" not in df.columns):
        raise StudyDamaged(study, name, "missing its config_hash/status columns")
    return df


def _record(data: bytes, rows: int) -> dict[str, Any]:
    return {"rows": rows, "sha256": hashlib.sha256(data).hexdigest()}


def check(study: Path) -> dict[str, Any]:
    """The study's state, after checking that results.csv and history.csv are what
    study.json recorded (StudyDamaged naming the file otherwise). While a driver runs
    (the study is locked) it may replace a table between our reads: read again."""
    for _ in range(20):
        try:
            return _check(study)
        except StudyDamaged:
            if not is_locked(study):
                raise
            time.sleep(0.05)
    return _check(study)


def snapshot(study: Path) -> dict[str, bytes]:
    """results.csv and history.csv as one consistent pair (each matching study.json's
    record), also while a driver is adding rows to them."""
    for _ in range(20):
        state = check(study)
        data = {n: read_regular(study / n) for n in (RESULTS, HISTORY) if (study / n).exists()}
        recs = [r for r in (state.get("tables"), state.get("tables_pending")) if r]
        if not recs or any(all(hashlib.sha256(data.get(n, b"")).hexdigest() == r[n]["sha256"]
                               or (n not in data and r[n]["rows"] == 0) for n in (RESULTS,
                                                                                 HISTORY))
                           for r in recs):
            return data
        time.sleep(0.05)
    raise StudyBusy("study", f"{study}: its tables kept changing while being read; try again")


def _check(study: Path) -> dict[str, Any]:
    state = read_state(study)
    tables = state.get("tables") or {}
    pending = state.get("tables_pending") or {}
    for name in (RESULTS, HISTORY):
        p = study / name
        want = [r for r in (tables.get(name), pending.get(name)) if r]
        if not all(isinstance(r, dict) and isinstance(r.get("rows"), int)
                   and isinstance(r.get("sha256"), str) for r in want):
            raise StudyDamaged(study, STATE, f"its record of {name} is not rows + sha256")
        if not p.exists() and not p.is_symlink():
            if want and want[0]["rows"] > 0:
                raise StudyDamaged(study, name, f"missing (study.json records "
                                   f"{want[0]['rows']} rows)")
            continue
        try:
            data = read_regular(p)
        except OSError as e:
            raise StudyDamaged(study, name, f"cannot read it ({e.strerror or e})") from None
        if not want:  # a study written before tables were recorded: readable is all we know
            _read_table(study, name)
            continue
        if hashlib.sha256(data).hexdigest() not in {r["sha256"] for r in want}:
            try:
                got = f"{len(_read_table(study, name))} rows"
            except StudyDamaged:
                got = "unreadable"
            raise StudyDamaged(study, name, f"it holds {got} but study.json records "
                               f"{want[0]['rows']} rows with another checksum (truncated "
                               "or edited)")
    return state


def set_experiment_status(study: Path, name: str, status: str) -> None:
    state = read_state(study)
    for e in state["experiments"]:
        if e["name"] == name:
            e["status"] = status
    write_state(study, state)


def completed_hashes(study: Path) -> set[str]:
    df = read_results(study)
    return set() if df.empty else set(df.loc[df.status == "completed", "config_hash"])


def merge_results(study: Path, rows: list[dict[str, Any]], history: pd.DataFrame) -> None:
    """Fold a finished experiment's members into the tables: one row per member.

    The first completed row of a member is kept for good; an errored row is replaced
    by any newer row.
    History rows are kept only for members whose completed row they belong to.
    """
    old = read_results(study)
    new = pd.DataFrame(rows)
    both = pd.concat([old, new], ignore_index=True) if not old.empty else new
    if both.empty:
        return
    # Completed rows first, oldest first; other rows newest first.
    rank = both["status"].map({"completed": 0}).fillna(1)
    order = pd.Series(range(len(both)), index=both.index)
    tiebreak = order.where(rank == 0, -order)
    both = (both.assign(_rank=rank, _tie=tiebreak, _order=order)
            .sort_values(["_rank", "_tie"])
            .drop_duplicates("config_hash").sort_values("_order")
            .drop(columns=["_rank", "_tie", "_order"]))
    done = set(both.loc[both.status == "completed", "config_hash"])
    old_h = _read_table(study, HISTORY)
    have = set(old_h["config_hash"]) if not old_h.empty else set()
    add = history[history.config_hash.isin(done - have)] if not history.empty else history
    hist = pd.concat([old_h, add], ignore_index=True) if not old_h.empty else add
    write_tables(study, both, hist)


def write_tables(study: Path, results: pd.DataFrame, history: pd.DataFrame,
                 state: dict[str, Any] | None = None, sign: bool = True) -> None:
    """Write results.csv and history.csv and record them in study.json. Crash-safe:
    study.json first names the new tables as pending, each table is renamed into
    place, then study.json records them; `check` accepts either record."""
    data = {RESULTS: _csv(results), HISTORY: _csv(history)}
    recs = {RESULTS: _record(data[RESULTS], len(results)),
            HISTORY: _record(data[HISTORY], len(history))}
    state = read_state(study) if state is None else state
    state["tables_pending"] = recs
    write_state(study, state, sign)
    for name, b in data.items():
        if recs[name]["rows"]:
            atomic_write_bytes(study / name, b)
        else:  # no rows, no file (a CSV without columns would not read back)
            (study / name).unlink(missing_ok=True)
    state["tables"] = recs
    state.pop("tables_pending")
    write_state(study, state, sign)


def _csv(df: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.17g")
    return buf.getvalue().encode()
