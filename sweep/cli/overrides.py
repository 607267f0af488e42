"""`wdsweep run SPEC --set KEY=VALUE`: a spec's TOML with keys overridden, before the spec
is checked (so a bad value is refused naming its spec field, as in the file).

KEY is a spec field as the file spells it, dotted: `fixed.lr`, `grid.seed`, `run.pack`,
`resources.cpus_per_trial`, `model_args.width`, `grid.model_args.batch_norm`, or a
top-level `name`, `preset`, `task`, `model`, `code`. VALUE is a TOML value (`0.01`,
`[0, 1]`, `true`, `{log = [1e-4, 1, 9]}`, `"0.2"`); anything that is not one is a string
(`--set run.storage=/mnt/nfs/runs`, `--set fixed.precision=bf16`). An empty VALUE removes
KEY (`--set fixed.epochs= --set fixed.steps=3000`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
import tomllib
from collections.abc import Sequence
from typing import Any

from sweep.plan.limits import parse_toml
from sweep.plan.spec import SECTIONS, SpecError
from trainer.config import FIELDS
from trainer.user import arg_key

# Tables whose keys are trainer keys (a dotted key inside them is one key:
# `grid.model_args.batch_norm` is [grid] "model_args.batch_norm").
TRAINER_TABLES = ("fixed", "grid")
# Tables whose keys are free (checked by the spec or the user's code), and the checked ones.
FREE_TABLES = ("task_args", "model_args", "refine")
CHECKED_TABLES = ("resources", "run")
TABLES = (*TRAINER_TABLES, *CHECKED_TABLES, *FREE_TABLES)
SCALARS = tuple(k for k in SECTIONS["top"] if k not in TABLES)  # name, preset, task, ...
_HELP = (f"allowed: {', '.join(SCALARS)}, or TABLE.KEY with TABLE one of {', '.join(TABLES)} "
         "(e.g. fixed.lr=0.01, run.pack=4)")


def apply(text: str, sets: Sequence[str]) -> str:
    """`text` (a spec's TOML) with each `KEY=VALUE` of `sets` set, as TOML text again
    (comments are not kept: the study saves the spec that ran). A malformed or unknown
    KEY is one line naming it (`--set KEY`), with the nearest known key."""
    raw = parse_toml(text)
    for item in sets:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise SpecError("--set", f"got {item!r}; allowed: KEY=VALUE, e.g. fixed.lr=0.01")
        table, sub = _resolve(key)
        t = raw if table is None else raw.setdefault(table, {})
        if not isinstance(t, dict):
            raise SpecError(table, f"must be a table ([{table}]), got {type(t).__name__}")
        if value.strip():
            t[sub] = _value(value)
        else:  # `KEY=`: no TOML value is empty, so this removes KEY (e.g. fixed.epochs=)
            t.pop(sub, None)
    return dumps(raw)


def _resolve(key: str) -> tuple[str | None, str]:
    """(table, key in it) for a dotted KEY; (None, key) for a top-level scalar."""
    head, dot, rest = key.partition(".")
    if not dot:
        if head in SCALARS:
            return None, head
        if head in TABLES:
            raise SpecError(f"--set {key}", f"names the table [{head}], not a key in it; "
                            f"allowed: {head}.KEY=VALUE")
        hint = f"fixed.{head}" if head in FIELDS else _near(head, SCALARS)
        raise SpecError(f"--set {key}", f"unknown key{_mean(hint)}; {_HELP}")
    if head not in TABLES:
        near = _near(head, TABLES)
        raise SpecError(f"--set {key}", f"unknown table {head!r}"
                        f"{_mean(f'{near}.{rest}' if near else None)}; {_HELP}")
    if not rest:
        raise SpecError(f"--set {key}", f"names no key in [{head}]; allowed: {head}.KEY=VALUE")
    if head in TRAINER_TABLES and rest not in FIELDS and not arg_key(rest):
        near = _near(rest, tuple(FIELDS))
        raise SpecError(f"--set {key}", f"unknown trainer key"
                        f"{_mean(f'{head}.{near}' if near else None)}; allowed: "
                        f"{', '.join(sorted(FIELDS))}, task_args.KEY, model_args.KEY")
    if head in CHECKED_TABLES and rest not in SECTIONS[head]:
        near = _near(rest, SECTIONS[head])
        raise SpecError(f"--set {key}", f"unknown key{_mean(f'{head}.{near}' if near else None)}"
                        f"; allowed: {', '.join(f'{head}.{k}' for k in SECTIONS[head])}")
    return head, rest


def _near(word: str, choices: Sequence[str]) -> str | None:
    m = difflib.get_close_matches(word, list(choices), n=1)
    return m[0] if m else None


def _mean(suggestion: str | None) -> str:
    return f" (did you mean {suggestion}?)" if suggestion else ""


def _value(s: str) -> Any:
    """A TOML value, or else the text itself (a string)."""
    try:
        doc = tomllib.loads(f"v = {s}")
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        return s
    return doc["v"] if list(doc) == ["v"] else s


# TOML out -------------------------------------------------------------------------------
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def dumps(raw: dict[str, Any]) -> str:
    """A parsed TOML document as TOML text that parses back to it: top-level values,
    then one [table] per table (deeper tables inline)."""
    lines = [f"{_key(k)} = {_dump(v)}" for k, v in raw.items() if not isinstance(v, dict)]
    for k, t in raw.items():
        if isinstance(t, dict):
            lines += ["", f"[{_key(k)}]", *(f"{_key(kk)} = {_dump(v)}" for kk, v in t.items())]
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return k if _BARE.fullmatch(k) else _string(k)


def _string(s: str) -> str:
    # JSON's escapes are TOML's; DEL is a control character TOML wants escaped too.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def _dump(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else
                                                  "inf" if v > 0 else "-inf")
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, dt.date | dt.time):  # datetime is a date
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(map(_dump, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_dump(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"not a TOML value: {type(v).__name__}")
