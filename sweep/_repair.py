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

from sweep import _records
from sweep import study as st
from sweep._collect import completed_rows
from sweep.plan import member_from_dict

log = logging.getLogger(__name__)

_NOTE = "row rebuilt by `wdsweep repair` from the trainer's final checkpoint\n"


def repair(study: Path, say=print) -> dict[str, Any]:
    with st.locked(study):
        try:
            st.check(study)
            say(f"{study}: consistent; nothing to repair")
            return {"completed": None, "pending": None, "unrecoverable": 0}
        except st.StudyDamaged as e:
            say(f"repairing: {e}")
        try:
            state = st.read_state(study)
        except st.StudyDamaged:
            state = _state_from_plans(study)
        trials: dict[str, dict[str, Any]] = {}
        imported = [e for e in state["experiments"] if e["status"] == "imported"]
        if imported:  # published tables: no checkpoints to rebuild them from
            raise st.StudyDamaged(study, st.RESULTS, "its members were imported from "
                                  f"{imported[0]['uri']}; import them again into a new "
                                  "study instead of repairing")
        for e in state["experiments"]:
            for t in _records.read_plan(study, e):
                trials[t["key"]] = t
        rows: list[dict[str, Any]] = []
        hist: list[pd.DataFrame] = []
        for key, t in trials.items():
            members = [member_from_dict(d) for d in t["members"]]
            found = _records.checkpoints(state, key, keep=1)
            if not found or found[0].step != members[0].total_steps:
                continue
            h = _history(found[0].uri, members)
            if h is None:
                continue
            exp = re.search(r"/(exp-\d+)/trial-", found[0].uri)
            rows += completed_rows(members, key, exp.group(1) if exp else "?", h,
                                   {"warnings": _NOTE})
            hist.append(h)
        done = {r["config_hash"] for r in rows}
        for e in state["experiments"]:
            if set(e["members"]) <= done:
                e["status"] = "finished"
            elif e["status"] != "continued":
                e["status"] = "running"  # `wdsweep resume` finishes the rest
        state.pop("tables_pending", None)
        st.write_tables(study, pd.DataFrame(rows),
                        pd.concat(hist, ignore_index=True) if hist else pd.DataFrame(), state)
        pending = len({h for e in state["experiments"] for h in e["members"]} - done)
        say(f"{study}: rebuilt {st.RESULTS} ({len(rows)} completed members) and {st.HISTORY}; "
            + (f"{pending} members pending: run `wdsweep resume {study}`" if pending else
               "every member completed"))
        return {"completed": len(rows), "pending": pending, "unrecoverable": 0}


def _history(uri: str, members) -> pd.DataFrame | None:
    """The checkpoint's metrics.csv, if it is the full history of exactly these members."""
    root, fs = _records.filesystem(uri)
    try:
        with fs.open_input_stream(f"{root}/metrics.csv") as f:
            h = pd.read_csv(io.BytesIO(f.read()), dtype={"config_hash": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        log.warning("cannot use %s/metrics.csv: %s", uri, e)
        return None
    want = {m.config_hash() for m in members}
    steps = members[0].total_steps
    if set(h.get("config_hash", [])) != want or h.step.max() != steps or \
            (h.groupby("config_hash").step.count().nunique() != 1):
        log.warning("%s/metrics.csv does not hold these members' full history", uri)
        return None
    return h


def _state_from_plans(study: Path) -> dict[str, Any]:
    plans = sorted((study / _records.PLANS).glob("exp-*.json"))
    if not plans:
        raise st.StudyDamaged(study, st.STATE, "unreadable and no plans/ to rebuild it from; "
                              "restore it from a backup")
    exps = []
    for p in plans:
        data = p.read_bytes()
        rec = json.loads(data)
        exps.append(dict(
            name=rec["experiment"], uri=rec["uri"], status="running",
            created=rec.get("created", time.time()), trials=[t["key"] for t in rec["trials"]],
            members=[member_from_dict(m).config_hash() for t in rec["trials"]
                     for m in t["members"]],
            plan_sha256=hashlib.sha256(data).hexdigest(),
            **{k: rec[k] for k in ("cpus_per_trial", "gpus_per_trial", "max_failures")
               if k in rec}))
    sid = exps[0]["uri"].rstrip("/").rsplit("/", 2)[-2]
    return {"experiments": exps, "id": sid, "name": sid.rsplit("-", 1)[0]}
