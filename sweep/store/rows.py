"""results.csv rows: one per member, from its pack's history (metrics.csv) or its
error. Written by the recorder and the collector while a sweep runs, and by repair."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sweep.plan.trial import MemberState
from trainer import TrainConfig
from trainer.schema import LAST, RESULT_METRICS

# What a trial's last report says about the run (sweep.runner.trainable), kept per row.
INFO = ("node", "resumed_from", "train_seconds", "warnings")


def completed_rows(members: list[TrainConfig], key: str, name: str, h: pd.DataFrame,
                   info: dict[str, Any]) -> list[dict[str, Any]]:
    """results.csv rows of a finished pack, from its history (metrics.csv): each
    member's values at its own last evaluation -- the run's end, or where it stopped
    early (`stopped_step`, `stop_reason`: trainer.early_stop; absent when none did)."""
    last = h.sort_values("step", kind="stable").groupby("config_hash").tail(1)
    last = last.set_index("config_hash")
    stops = "stop" in last and last["stop"].notna().any()
    out = []
    for m in members:
        r = last.loc[m.config_hash()]
        row = dict(member_row(m, key, name, MemberState.COMPLETED), **info,
                   **{LAST + c: r[c] for c in RESULT_METRICS})
        if stops:
            why = "" if pd.isna(r["stop"]) else str(r["stop"])
            row.update(stopped_step=int(r["step"]) if why else None, stop_reason=why or None)
        out.append(row)
    return out


def full_history(h: pd.DataFrame, members: list[TrainConfig]) -> bool:
    """Is `h` (a pack's metrics.csv) the whole history of exactly these members: each
    member's rows end at the run's last step, or at the evaluation where it stopped
    early (a `stop`: trainer.early_stop)?"""
    want = {m.config_hash() for m in members}
    if h.empty or set(h.get("config_hash", [])) != want:
        return False
    S = members[0].total_steps
    last = h.sort_values("step", kind="stable").groupby("config_hash").tail(1)
    stopped = last["stop"].notna() if "stop" in last else pd.Series(False, last.index)
    return bool(((last["step"] == S) | stopped).all())


def member_row(m: TrainConfig, key: str, exp: str, status: str) -> dict[str, Any]:
    r = m.resolved()
    r["train_digits"] = ",".join(map(str, m.train_digits))
    r["test_digits"] = ",".join(map(str, m.test_digits))
    return dict(config_hash=m.config_hash(), status=status, trial_id=key, experiment=exp, **r)


def member_steps(res: pd.DataFrame) -> float:
    """Member-steps a results table's rows ran: each member's steps, to its stop where it
    stopped early (`stopped_step`) -- what refinement budgets and benchmarks count."""
    if res.empty:
        return 0.0
    steps = res["total_steps"].astype(float)
    if "stopped_step" in res:
        steps = res["stopped_step"].astype(float).fillna(steps)
    return float(steps.sum())
