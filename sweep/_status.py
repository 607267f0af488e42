"""`wdsweep status`: counts in members, read from the study without Ray."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sweep import study as st
from sweep.spec import SpecError


def status(study: Path) -> dict[str, Any]:
    """Counts in members: total, completed, running, pending, errored (+ per trial)."""
    if not (study / st.STATE).exists():
        raise SpecError("study", f"{study} is not a wdsweep study (no {st.STATE})")
    state = st.check(study)  # a damaged study stops here, naming the file
    res = st.read_results(study)
    done = set() if res.empty else set(res.loc[res.status == "completed", "config_hash"])
    failed = set() if res.empty else set(res.loc[res.status == "errored", "config_hash"]) - done
    planned = {h for e in state["experiments"] for h in e["members"]} | done | failed
    try:
        live = json.loads((study / st.STATUS).read_text()) if (study / st.STATUS).exists() \
            else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        live = {}  # advisory, rewritten by the running driver: a torn one shows no trials
    alive = st.is_locked(study)
    running = 0
    if alive and live:
        running = sum(t["members"] for t in live.get("per_trial", [])
                      if t["status"] == "running")
    pending = len(planned) - len(done) - len(failed) - running
    return {"study": str(study), "total": len(planned), "completed": len(done),
            "running": running, "pending": pending, "errored": len(failed),
            "driver_alive": alive,
            "experiments": [{k: e[k] for k in ("name", "status")} for e in state["experiments"]],
            "trials": live.get("per_trial", []) if alive else []}
