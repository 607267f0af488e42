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

from sweep import study as st
from sweep.plan import member_from_dict
from trainer.schema import LAST, RESULT_METRICS

log = logging.getLogger(__name__)
INFO = ("node", "resumed_from", "train_seconds", "warnings")


def collect(study: Path, name: str, trials: list[dict[str, Any]], grid) -> dict[str, Any]:
    """`trials` are the experiment's payloads: a trial Tune never started (Ctrl-C
    early) has no config in the grid and counts as unfinished."""
    rows, hist = [], []
    n = {"completed_trials": 0, "errored_trials": 0, "unfinished_trials": 0}
    by_key = {t["key"]: t for t in trials}
    seen = set()
    for r in grid:
        cfg = r.config.get("trial") if isinstance(r.config, dict) else None
        key = cfg.get("key") if isinstance(cfg, dict) else None
        if key not in by_key or key in seen:
            continue
        seen.add(key)
        members = [member_from_dict(d) for d in by_key[key]["members"]]
        metrics = r.metrics or {}
        if r.error is None and r.checkpoint is not None and metrics.get("finished"):
            with r.checkpoint.as_directory() as d:
                h = pd.read_csv(Path(d) / "metrics.csv", dtype={"config_hash": str})
            hist.append(h)
            info = {k: metrics.get(k) for k in INFO}
            rows += completed_rows(members, key, name, h, info)
            n["completed_trials"] += 1
        elif r.error is not None:
            rows += [dict(_row(m, key, name, "errored"), error=_error_text(r))
                     for m in members]
            n["errored_trials"] += 1
        else:
            n["unfinished_trials"] += 1
    n["unfinished_trials"] += len(by_key.keys() - seen)
    if rows:
        st.merge_results(study, rows, pd.concat(hist, ignore_index=True) if hist else
                         pd.DataFrame())
    status = ("running" if n["unfinished_trials"] else
              "errored" if n["errored_trials"] else "finished")
    st.set_experiment_status(study, name, status)
    done = sum(r["status"] == "completed" for r in rows)
    log.info("%s: %d members completed, %d errored (%d trials); results in %s", name, done,
             len(rows) - done, n["errored_trials"], study / st.RESULTS)
    if n["unfinished_trials"]:
        log.warning("%s: interrupted with %d trials unfinished; continue with "
                    "`wdsweep resume %s`", name, n["unfinished_trials"], study)
    return {"completed": done, "errored": len(rows) - done, **n}


def completed_rows(members, key: str, name: str, h: pd.DataFrame,
                   info: dict[str, Any]) -> list[dict[str, Any]]:
    """results.csv rows of a finished pack, from its history (metrics.csv)."""
    last = h[h.step == h.step.max()].set_index("config_hash")
    return [dict(_row(m, key, name, "completed"), **info,
                 **{LAST + c: last.loc[m.config_hash(), c] for c in RESULT_METRICS})
            for m in members]


def _row(m, key: str, exp: str, status: str) -> dict[str, Any]:
    r = m.resolved()
    r["train_digits"] = ",".join(map(str, m.train_digits))
    r["test_digits"] = ",".join(map(str, m.test_digits))
    return dict(config_hash=m.config_hash(), status=status, trial_id=key, experiment=exp, **r)


def _error_text(r) -> str:
    p = Path(r.path) / "error.txt" if r.path and "://" not in str(r.path) else None
    text = p.read_text() if p is not None and p.exists() else "".join(
        traceback.format_exception(r.error))
    return re.sub(r"\x1b\[[0-9;]*m", "", text)[-16000:]  # no terminal colours in a table
