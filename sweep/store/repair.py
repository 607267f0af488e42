"""`wdsweep repair STUDY`: rebuild a damaged study from wdsweep's own records.

study.json, when unreadable, is rebuilt from STUDY/plans/*.json. results.csv and
history.csv are rebuilt from the trainers' records in the experiments' storage:
a pack whose newest verified trainer checkpoint is at its final step is
completed, with the history its checkpoint's metrics.csv holds. Every other
member (errored, interrupted, or whose checkpoints are gone) is left pending,
and its experiment marked running, so `wdsweep resume` trains what remains.
Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from sweep.plan.trial import ExpState, Trial
from sweep.store import names as _names
from sweep.store import records as _records
from sweep.store import study as st
from sweep.store import trust as _trust
from sweep.store.rows import completed_rows, full_history

log = logging.getLogger(__name__)

_NOTE = "row rebuilt by `wdsweep repair` from the trainer's final checkpoint\n"


def repair(study: Path, say=print, *, migrate: bool = False,
           trust_code: bool = False) -> dict[str, Any]:
    with st.locked(study):
        if migrate:
            _migrate(study, say)
        problem = _problem(study)
        if problem is None:
            say(f"{study}: consistent; nothing to repair")
            return {"completed": None, "pending": None, "unrecoverable": 0}
        say(f"repairing: {problem}")
        try:
            state = st.read_state(study)
        except st.StudyDamaged:
            state = _state_from_plans(study)  # from files anyone could have written
            _refuse_unplanned(study, state)
        sign = _trust.mine(state)  # a repaired record vouches for no more than before
        imported = [e for e in state["experiments"] if e["status"] == ExpState.IMPORTED]
        if imported:  # published tables: no checkpoints to rebuild them from
            raise st.StudyDamaged(study, st.RESULTS, "its members were imported from "
                                  f"{imported[0]['uri']}; import them again into a new "
                                  "study instead of repairing")
        _check_storage(study, state, trust_code)
        trials: dict[str, Trial] = {}
        for e in state["experiments"]:
            try:
                plan = _records.read_plan(study, e)
            except st.StudyDamaged as bad:
                plan = _rebuild_plan(study, state, e, bad)
                say(f"rebuilt {_records.PLANS}/{e['name']}.json from the experiment's "
                    "trial records")
            for t in plan:
                trials[t.key] = t
        rows, hist = _rebuild_tables(state, trials)
        done = {r["config_hash"] for r in rows}
        for e in state["experiments"]:
            if set(e["members"]) <= done:
                e["status"] = ExpState.FINISHED
            elif e["status"] != ExpState.CONTINUED:
                e["status"] = ExpState.RUNNING  # `wdsweep resume` finishes the rest
        state.pop("tables_pending", None)
        _clear_tables(study, say)
        st.write_tables(study, pd.DataFrame(rows),
                        pd.concat(hist, ignore_index=True) if hist else pd.DataFrame(), state,
                        sign=sign)
        pending = len({h for e in state["experiments"] for h in e["members"]} - done)
        say(f"{study}: rebuilt {st.RESULTS} ({len(rows)} completed members) and {st.HISTORY}; "
            + (f"{pending} members pending: run `wdsweep resume {study}`" if pending else
               "every member completed"))
        return {"completed": len(rows), "pending": pending, "unrecoverable": 0}


def _problem(study: Path) -> st.StudyDamaged | None:
    """What is damaged: a table, study.json, or a plan record (None: nothing)."""
    try:
        state = st.check(study)
        for e in state["experiments"]:
            _records.read_plan(study, e)
    except st.StudyDamaged as e:
        return e
    return None


def _check_storage(study: Path, state: dict[str, Any], trust: bool) -> None:
    """Checkpoints are read from outside the study only for a study this user sealed."""
    outside = _trust.outside(state, study)
    _trust.refuse_unless(study, state, f"storage {', '.join(outside)}" if outside else "",
                         trust)


def _rebuild_tables(state: dict[str, Any], trials: dict[str, Trial]
                    ) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    rows: list[dict[str, Any]] = []
    hist: list[pd.DataFrame] = []
    for key, t in trials.items():
        members = list(t.members)
        found = _records.checkpoints(state, key, keep=1)
        end = found[0].step == members[0].total_steps if found else False
        if not found or not (end or members[0].stop_train_acc is not None):
            continue  # unfinished (a pack with early stopping may finish before its end)
        h = _history(found[0].uri, members, warn=end)
        if h is None or int(h.step.max()) != found[0].step:
            continue
        exp = re.search(r"/(exp-\d+)/trial-", found[0].uri)
        rows += completed_rows(members, key, exp.group(1) if exp else "?", h,
                               {"warnings": _NOTE})
        hist.append(h)
    return rows, hist


def _clear_tables(study: Path, say) -> None:
    """A table (or study.json) that is not a file (a directory in its place) is moved
    aside, not deleted: the rebuilt one needs its name."""
    for name in (st.RESULTS, st.HISTORY, st.STATE):
        p = study / name
        if p.exists() and not p.is_file():
            aside = p.with_name(f"{name}.damaged-{int(time.time())}")
            p.rename(aside)
            say(f"moved {p} (not a file) aside to {aside}")


def _rebuild_plan(study: Path, state: dict[str, Any], e: dict[str, Any],
                  bad: st.StudyDamaged) -> list[Trial]:
    """A damaged plan record rebuilt from what its experiment's trials were given
    (Tune's `params.json` in each trial directory: JSON, never its pickles), accepted
    only when it holds exactly the trials and members study.json records."""
    root, fs = _records.filesystem(e["uri"])
    trials = []
    for key in e.get("trials", []):
        try:
            with fs.open_input_stream(f"{root.rstrip('/')}/trial-{key}/params.json") as f:
                t = json.loads(f.read())["trial"]
            trials.append(Trial.from_json(t))  # TypeError / ValueError: not a trial
        except (OSError, ValueError, KeyError, TypeError):
            raise bad from None
    got = [h for t in trials for h in t.hashes]
    if [t.key for t in trials] != e.get("trials") or sorted(got) != sorted(e["members"]):
        raise bad
    res = {k: e[k] for k in ("cpus_per_trial", "gpus_per_trial", "max_failures", "code")
           if k in e}
    e["plan_sha256"] = _records.write_plan(study, e["name"], trials, uri=e["uri"],
                                           created=e.get("created", time.time()), **res)
    return trials


def _migrate(study: Path, say) -> None:
    """An older study (no seal; perhaps no plan checksums): its tables must still match
    study.json's records; plans without a checksum are planned again from their saved
    spec (built-in tasks only: nothing is imported). Then it is checksummed, not signed:
    whatever code or storage it names still needs --trust-code (sweep.store.trust)."""
    state = st.read_state(study, legacy_ok=True)
    if _trust.intact(state):
        say(f"{study}: already sealed; nothing to migrate")
        return
    for e in state["experiments"]:
        if e["status"] != "imported" and not isinstance(e.get("plan_sha256"), str):
            trials = _records.legacy_plan(study, e)
            res = {k: e[k] for k in ("cpus_per_trial", "gpus_per_trial", "max_failures")
                   if k in e}
            e["plan_sha256"] = _records.write_plan(study, e["name"], trials, uri=e["uri"],
                                                   created=e.get("created", time.time()),
                                                   **res)
    st.write_state(study, state, sign=False)  # checksummed; code in it still needs trust
    say(f"{study}: migrated (study.json checksummed; {len(state['experiments'])} "
        "experiments)")


def _history(uri: str, members, warn: bool = True) -> pd.DataFrame | None:
    """The checkpoint's metrics.csv, if it is the full history of exactly these members."""
    root, fs = _records.filesystem(uri)
    try:
        with fs.open_input_stream(f"{root}/metrics.csv") as f:
            h = pd.read_csv(io.BytesIO(f.read()), dtype={"config_hash": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        log.warning("cannot use %s/metrics.csv: %s", uri, e)
        return None
    if not full_history(h, members):
        if warn:
            log.warning("%s/metrics.csv does not hold these members' full history", uri)
        return None
    return h


def _refuse_unplanned(study: Path, state: dict[str, Any]) -> None:
    """A study.json rebuilt from plans/ knows only the experiments that have a plan record:
    an imported experiment (published tables, no plan) or one whose record was lost. Its
    members' rows in the tables would be dropped by the rebuild, so refuse while a table
    that can still be read holds a member no plan names."""
    planned = {h for e in state["experiments"] for h in e["members"]}
    for name, read in ((st.RESULTS, st.read_results), (st.HISTORY, st.read_history)):
        try:
            t = read(study)  # the store's own reader: a regular file, checked as CSV
        except st.StudyDamaged as e:
            log.warning("%s: cannot read %s to check it against plans/ (%s); its rows that "
                        "no plan names cannot be kept", study, name, e)
            continue
        if t.empty:  # no such table
            continue
        lost = set(t["config_hash"].dropna()) - planned
        if lost:
            raise st.StudyDamaged(study, st.STATE, f"unreadable, and {name} holds "
                                  f"{len(lost)} members that no plan record names (imported "
                                  "from published tables, or a lost plan): rebuilding from "
                                  "plans/ would drop them; restore study.json from a backup")


def _order(p: Path) -> tuple[int, str]:
    """Plan records in the order their experiments ran: by number (exp-999 before
    exp-1000, exp-0012 before exp-013), as the analysis orders them; a name that is not
    an experiment's first (it is refused when read)."""
    return (_names.number(p.stem) if st.EXP_NAME.match(p.stem) else -1, p.stem)


def _state_from_plans(study: Path) -> dict[str, Any]:
    """study.json again from the plan records (files anyone could have written: each is
    checked as data, and the result is not signed)."""
    plans = sorted((study / _records.PLANS).glob("exp-*.json"), key=_order)
    if not plans:
        raise st.StudyDamaged(study, st.STATE, "unreadable and no plans/ to rebuild it from; "
                              "restore it from a backup")
    exps = []
    for p in plans:
        rel = f"{_records.PLANS}/{p.name}"
        try:
            data = st.read_regular(p, st.TABLE)
            rec = json.loads(data)
            name, uri = rec["experiment"], rec["uri"]
            if not (isinstance(name, str) and st.EXP_NAME.match(name) and p.stem == name
                    and isinstance(uri, str)):
                raise ValueError("experiment name or uri")
            trials = _records.checked_trials(rec["trials"])
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
            raise st.StudyDamaged(study, rel, f"not a plan record ({type(e).__name__}); "
                                  "restore study.json from a backup") from None
        exps.append(dict(
            name=name, uri=uri, status=ExpState.RUNNING,
            created=rec.get("created", time.time()), trials=[t.key for t in trials],
            members=[h for t in trials for h in t.hashes],
            plan_sha256=hashlib.sha256(data).hexdigest(),
            **{k: rec[k] for k in ("cpus_per_trial", "gpus_per_trial", "max_failures")
               if k in rec}))
    sid = st.safe_id(exps[0]["uri"].rstrip("/").rsplit("/", 2)[-2])
    return {"experiments": exps, "id": sid, "name": sid.rsplit("-", 1)[0] or sid}
