"""Limits on a spec's raw input, checked before its values mean anything: the TOML
itself (syntax, nesting), where its experiments are stored, the resources a trial asks
for, and the code paths. Each refusal is a SpecError naming the key."""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path
from typing import Any

from trainer.errors import BadInput as ConfigError
from trainer.errors import SpecError
from trainer.presets import coerce as _coerce
from trainer.presets import shown

MAX_DEPTH = 32  # nested arrays/tables in one value; a deeper one is refused
# Ray's own resource limits (ray._private.ray_constants, not imported: importing ray here
# would fix its network mode before sweep.runner.session chooses it): quantities are kept in units
# of 1e-4 (a smaller request rounds to 0), and a node may have at most 1e14 of one.
RESOURCE_STEP = 1e-4
MAX_RESOURCE = 100e12
# The storage schemes Tune is given a filesystem for (sweep.store.records.storage); anything else
# with "://" is refused rather than taken as a local directory named "gs:".
REMOTE_SCHEMES = {"s3": "S3FileSystem"}
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_STORAGE_HELP = "allowed: a local or NFS path (relative to the study, or absolute) or " \
    "s3://bucket/prefix"


def _error(key: str, message: str) -> Exception:
    return SpecError(key, message)


def parse_toml(text: str) -> dict[str, Any]:
    """The parsed TOML; its syntax errors, and values it cannot hold, name the line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e).replace("(at end of document)",
                             f"(at line {len(text.splitlines())}, the end of the document)")
        raise _error("spec", f"TOML syntax error: {msg}") from None
    except RecursionError:  # tomllib recurses once per nesting level
        raise _error("spec", f"values nested too deeply; allowed: at most {MAX_DEPTH} "
                     "levels of arrays and tables") from None
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        raise _error("spec", f"a value TOML cannot hold here ({e}); allowed: numbers of "
                     "up to 64 bits") from None
    _check_depth(raw)
    return raw


def _check_depth(raw: dict[str, Any]) -> None:
    todo: list[tuple[str, Any, int]] = [("", raw, 0)]
    while todo:  # iterative: the check must not itself recurse
        where, v, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise _error(where.lstrip(".") or "spec", f"nested {depth} levels deep; allowed: "
                         f"at most {MAX_DEPTH} levels of arrays and tables")
        if isinstance(v, dict):
            todo.extend((f"{where}.{k}", x, depth + 1) for k, x in v.items())
        elif isinstance(v, list):
            todo.extend((where, x, depth + 1) for x in v)


def check_storage(v: Any) -> str | None:
    """run.storage: a local path, or a URI whose scheme Tune gets a filesystem for here."""
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip() or any(ord(c) < 32 for c in v):
        raise _error("run.storage", f"got {v!r}; {_STORAGE_HELP}")
    if "://" not in v:
        try:
            Path(v).expanduser()
        except RuntimeError:  # ~name of an unknown user
            raise _error("run.storage", f"got {v!r}: no such user's home; "
                         f"{_STORAGE_HELP}") from None
        return v
    scheme, _, rest = v.partition("://")
    if scheme not in REMOTE_SCHEMES:
        raise _error("run.storage", f"got {v!r}: {scheme}:// cannot be served here; "
                     f"{_STORAGE_HELP}")
    if not _BUCKET.fullmatch(rest.split("/", 1)[0]):
        raise _error("run.storage", f"got {v!r}: {rest.split('/', 1)[0]!r} is not a bucket "
                     f"name (3-63 of a-z, 0-9, '.', '-'); {_STORAGE_HELP}")
    try:
        import pyarrow.fs  # lazy: pyarrow only for storage

        getattr(pyarrow.fs, REMOTE_SCHEMES[scheme])
    except ImportError:
        raise _error("run.storage", f"got {v!r}: this pyarrow has no "
                     f"{REMOTE_SCHEMES[scheme]}; {_STORAGE_HELP}") from None
    return v


def check_resource(t: dict, key: str, default: float, *, zero: bool) -> float:
    """resources.KEY: 0 (if `zero`) or a multiple of Ray's 1e-4 up to its maximum."""
    v = t.get(key, default)
    ok = (not isinstance(v, bool) and isinstance(v, int | float)
          and (isinstance(v, int) or math.isfinite(v))
          and ((zero and v == 0) or RESOURCE_STEP <= v <= MAX_RESOURCE))
    if not ok:
        low = "0 or a number" if zero else "a number"

        raise _error(f"resources.{key}", f"got {shown(v)}; must be {low} in [{RESOURCE_STEP:g}, "
                     f"{MAX_RESOURCE:g}] (Ray counts resources in units of {RESOURCE_STEP:g})")
    return v


def check_paths(code: Any, base: Path | None) -> None:
    """`code` entries that cannot even be resolved (a symlink loop, a NUL byte, ~name
    of an unknown user): one line, before sweep.plan.code looks at them."""
    if not isinstance(code, list):
        return  # sweep.plan.code.parse_user says what `code` must be

    for d in code:
        if not isinstance(d, str) or not d:
            continue
        try:
            p = Path(d).expanduser()
            (p if p.is_absolute() else (base or Path.cwd()) / p).resolve().is_dir()
        except (RuntimeError, OSError, ValueError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else \
                "a symlink loop" if "loop" in str(e).lower() else str(e)[:80]
            raise _error("code", f"got {shown(d)}: cannot resolve it ({why}); allowed: "
                         "directories (relative to the spec) that hold your modules") from None


def coerce_in(where: str, key: str, value: Any) -> Any:
    """A TOML value as the field's type: a number must be a TOML number, not a string."""
    try:
        return _coerce(key, value, strict=True)
    except ConfigError as e:
        raise e.rekey(where) from None
