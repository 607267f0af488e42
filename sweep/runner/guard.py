"""What a command checks before it uses a study's record to run code or to write outside
the study: this user's seal (sweep.store.trust) or an explicit trust, and code
directories as recorded (sweep.plan.code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweep.plan.code import check_outside, check_pinned
from sweep.plan.spec import SpecError
from sweep.store import records as _records
from sweep.store import trust as _trust
from trainer.user import BUILTIN_REFS, is_ref


def require_trust(study: Path, state: dict[str, Any], trust: bool) -> None:
    """A study's record is used to run code (its user task or model, its code
    directories) or to write outside it (experiment URIs elsewhere) only when this
    user's wdsweep sealed it (sweep.store.trust), or with `trust` -- checked over every
    experiment before a command writes (and so seals) the record again."""

    code = sorted({d for e in state["experiments"] for d in e.get("code") or []})
    check_outside(code, study)  # never, trusted or not
    if _trust.mine(state):
        return  # (and before reading every plan)
    names = sorted({str(v) for e in state["experiments"] for t in _records.read_plan(study, e)
                    for m in t.members for k, v in (("task", m.task), ("model", m.model))
                    if (is_ref(v) or (k == "model" and v is not None))
                    and v not in BUILTIN_REFS})
    outside = _trust.outside(state, study)
    cbs = [str(n) for n in state.get("callbacks") or []]
    what = "; ".join(x for x in (
        f"code {', '.join(code)}" if code else "",
        f"task/model {', '.join(names)}" if names else "",
        f"callbacks {', '.join(cbs)}" if cbs else "",
        f"storage {', '.join(outside)}" if outside else "") if x)
    _trust.refuse_unless(study, state, what, trust)


def check_code(study: Path, state: dict[str, Any], first: dict[str, Any],
                trust: bool) -> None:
    """The code a resume ships, as it was recorded (never from inside the study:
    `require_trust` refused that)."""

    code = list(first.get("code") or [])
    for d in code:
        if not Path(d).is_dir():
            raise SpecError("code", f"{d} (recorded by the study) is not a directory; "
                            "allowed: restore it, or run the spec again into a new study")
    check_pinned(state.get("code"), code, trust)
