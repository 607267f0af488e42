"""Fold a Tune run's results into the study: one row per member, exactly once.

A trial counts as completed only when its last report says `finished` (the
trainer reached its final step). A trial stopped early -- Ctrl-C, SIGTERM, a
driver that exits -- is neither completed nor errored: it stays with its
experiment, which stays `running`, so `wdsweep resume` continues it.
"""

from __future__ import annotations

import logging
import re
import traceback
from pathlib import Path
from typing import Any

import pandas as pd

from sweep.plan.trial import ExpState, MemberState, Trial
from sweep.store import study as st
from sweep.store.rows import INFO, completed_rows, member_row

log = logging.getLogger(__name__)


def collect(study: Path, name: str, trials: list[Trial], grid,
            merged: set[str] = frozenset()) -> dict[str, Any]:
    """`trials` are the experiment's: a trial Tune never started (Ctrl-C early) has no
    config in the grid and counts as unfinished. Those in `merged` the recorder has
    already folded into the tables (sweep.runner.recorder): counted, not read again."""
    rows, hist = [], []
    n = {"completed_trials": 0, "errored_trials": 0, "unfinished_trials": 0}
    by_key = {t.key: t for t in trials}
    seen = set()
    n_merged = 0
    for r in grid:
        cfg = r.config.get("trial") if isinstance(r.config, dict) else None
        key = cfg.get("key") if isinstance(cfg, dict) else None
        if key not in by_key or key in seen:
            continue
        seen.add(key)
        members = list(by_key[key].members)
        metrics = r.metrics or {}
        if r.error is None and r.checkpoint is not None and metrics.get("finished"):
            n["completed_trials"] += 1
            if key in merged:
                n_merged += len(members)
                continue
            with r.checkpoint.as_directory() as d:
                h = pd.read_csv(Path(d) / "metrics.csv", dtype={"config_hash": str})
            hist.append(h)
            info = {k: metrics.get(k) for k in INFO}
            rows += completed_rows(members, key, name, h, info)
        elif r.error is not None:
            rows += [dict(member_row(m, key, name, MemberState.ERRORED), error=_error_text(r))
                     for m in members]
            n["errored_trials"] += 1
        else:
            n["unfinished_trials"] += 1
    n["unfinished_trials"] += len(by_key.keys() - seen)
    if rows:
        st.merge_results(study, rows, pd.concat(hist, ignore_index=True) if hist else
                         pd.DataFrame())
    status = (ExpState.RUNNING if n["unfinished_trials"] else
              ExpState.ERRORED if n["errored_trials"] else ExpState.FINISHED)
    st.set_experiment_status(study, name, status)
    done = n_merged + sum(r["status"] == MemberState.COMPLETED for r in rows)
    errored = sum(r["status"] == MemberState.ERRORED for r in rows)
    log.info("%s: %d members completed, %d errored (%d trials); results in %s", name, done,
             errored, n["errored_trials"], study / st.RESULTS)
    if n["unfinished_trials"]:
        log.warning("%s: interrupted with %d trials unfinished; continue with "
                    "`wdsweep resume %s`", name, n["unfinished_trials"], study)
    return {"completed": done, "errored": errored, **n}


def _error_text(r) -> str:
    p = Path(r.path) / "error.txt" if r.path and "://" not in str(r.path) else None
    text = p.read_text() if p is not None and p.exists() else "".join(
        traceback.format_exception(r.error))
    return re.sub(r"\x1b\[[0-9;]*m", "", text)[-16000:]  # no terminal colours in a table
