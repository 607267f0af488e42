"""Publish a study's tables, and start a study from published tables.

A published study is what travels in a repository or a paper's data: the two tables,
gzipped, the specs that made them, and `published.json` with each table's row count
and the sha256 of its uncompressed CSV. No checkpoints, no Tune state, nothing
executable.

    wdsweep export STUDY DIR          DIR/results.csv.gz, history.csv.gz, specs/, published.json
    wdsweep import DIR --study STUDY  a new study holding DIR's members as completed

`wdsweep run SPEC --study STUDY` then runs only the members the published tables do
not hold (config hashes are device- and pack-independent), so a study started on one
machine grows on another without re-running anything. The analysis reads DIR
directly (`wdsweep analyze DIR`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import pandas as pd

from sweep.store import study as st
from sweep.store.names import LAST, last_name, number
from trainer.errors import SpecError
from trainer.fsutil import atomic_write_bytes

MANIFEST = "published.json"
TABLES = (st.RESULTS, st.HISTORY)


def _gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:  # mtime 0: same bytes twice
        f.write(data)
    return buf.getvalue()


def export(study: Path, dest: Path) -> dict[str, Any]:
    """Write the study's tables (checked first), specs and a manifest into `dest`."""
    state = st.check(study)  # also: no links among the study's files (st.check_links)
    if not (study / st.RESULTS).exists():
        raise SpecError("study", f"{study} has no results yet: nothing to export")
    if dest.exists() and not dest.is_dir():
        raise SpecError("dest", f"{dest} exists and is not a directory")
    if (dest / st.SPECS).is_symlink():
        raise SpecError("dest", f"{dest / 'specs'} is a symbolic link; allowed: a directory")
    dest.mkdir(parents=True, exist_ok=True)
    tables = {}
    for name in TABLES:
        p = study / name
        if not p.exists():
            continue
        data = st.read_regular(p)
        rows = len(pd.read_csv(io.BytesIO(data), usecols=["config_hash"]))
        atomic_write_bytes(dest / f"{name}.gz", _gz(data))
        tables[name] = {"rows": rows, "sha256": hashlib.sha256(data).hexdigest()}
    _copy_specs(study / st.SPECS, dest / st.SPECS)
    manifest = {"study": state.get("id"), "name": state.get("name"), "exported": time.time(),
                "tables": tables,
                "experiments": [{k: e[k] for k in ("name", "status")}
                                for e in state["experiments"]]}
    if "refine" in state:  # its rounds as data; the spec stays home (sweep.runner.refine)
        manifest["refine"] = _as_data(state["refine"])
    st.write_json(dest / MANIFEST, manifest)
    return manifest


def _specs(src: Path) -> list[Path]:
    """The specs an import takes (*.toml, regular files directly in `src`): never a link,
    never a tree."""
    if not src.is_dir() or src.is_symlink():
        return []
    return [p for p in sorted(src.iterdir()) if p.suffix == ".toml" and p.is_file()
            and not p.is_symlink() and _NAME.match(p.stem)]


def _copy_specs(src: Path, dest: Path) -> None:
    """The specs of `_specs`, copied into `dest` (made when `src` is a directory)."""
    if not src.is_dir() or src.is_symlink():
        return
    dest.mkdir(parents=True, exist_ok=True)
    for p in _specs(src):
        atomic_write_bytes(dest / p.name, st.read_regular(p))


# What an import takes in: a published table is data from someone else, read with limits.
MAX_BYTES = 2 << 30  # uncompressed bytes per table
MAX_ROWS = 20_000_000  # rows per table
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")


def _inflate(p: Path, max_bytes: int) -> bytes:
    """A gzip file's content, stopping (one line) once it passes `max_bytes`."""
    out, n = io.BytesIO(), 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(st.read_regular(p))) as f:
            while chunk := f.read(1 << 20):
                n += len(chunk)
                if n > max_bytes:
                    raise SpecError(p.name, f"{p} inflates beyond {max_bytes:,} bytes; allowed: "
                                    f"tables of at most {max_bytes:,} bytes")
                out.write(chunk)
    except (OSError, EOFError, zlib.error) as e:
        raise SpecError(p.name, f"{p} is not a readable gzip file ({e})") from None
    return out.getvalue()


def _read(src: Path, name: str, manifest: dict[str, Any], max_bytes: int) -> bytes | None:
    """A published table's CSV bytes (from name or name.gz, regular files only), checked
    against the manifest."""
    p = next((q for q in (src / name, src / f"{name}.gz") if q.exists() or q.is_symlink()),
             None)
    if p is None:
        return None
    if p.is_symlink() or not p.is_file():
        raise SpecError(name, f"{p} is not a regular file (a link or a directory); allowed: "
                        "the files `wdsweep export` writes")
    if p.suffix == ".gz":
        data = _inflate(p, max_bytes)
    else:
        try:
            data = st.read_regular(p, max_bytes)
        except OSError as e:
            raise SpecError(name, f"{p} cannot be read ({e.strerror or e}); allowed: tables "
                            f"of at most {max_bytes:,} bytes") from None
    want = manifest.get("tables", {}).get(name)
    if want and hashlib.sha256(data).hexdigest() != want["sha256"]:
        raise SpecError(name, f"{p} differs from what {src / MANIFEST} records "
                        f"({want['rows']} rows): truncated or edited")
    return data


def _manifest(src: Path) -> dict[str, Any]:
    """published.json, checked for the shape `export` writes (absent: {})."""
    p = src / MANIFEST
    if not (p.exists() or p.is_symlink()):
        return {}
    try:
        m = json.loads(st.read_regular(p))
    except OSError as e:
        raise SpecError(MANIFEST, f"{p} cannot be read ({e.strerror or e}); allowed: a "
                        "regular file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise SpecError(MANIFEST, f"{p} is not JSON ({type(e).__name__})") from None
    tables = m.get("tables", {}) if isinstance(m, dict) else None
    if not isinstance(tables, dict) or not all(
            isinstance(t, dict) and isinstance(t.get("sha256"), str)
            and isinstance(t.get("rows"), int) for t in tables.values()):
        raise SpecError(MANIFEST, f"{p} is not a wdsweep manifest; allowed: an object whose "
                        "tables each record rows and sha256 (as `wdsweep export` writes)")
    return m


def safe_name(name: Any, fallback: str = "imported") -> str:
    """A study name from someone else's manifest (sweep.store.study.safe_id, 64 characters)."""
    return st.safe_id(str(name or ""), fallback, 64)


def import_(src: Path, study: Path, *, max_bytes: int = MAX_BYTES,
            max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """A new study whose tables are the published ones (checked), members as they were."""
    if not src.is_dir():
        raise SpecError("source", f"{src}: not a directory of published tables")
    if study.exists() and any(study.iterdir()):
        raise SpecError("--study", f"{study} exists and is not empty; import into a new "
                        "directory")
    manifest = _manifest(src)
    data = {name: _read(src, name, manifest, max_bytes) for name in TABLES}
    if data[st.RESULTS] is None:
        raise SpecError("source", f"{src} has no results.csv or results.csv.gz")
    frames = {name: _frame(src, name, b, max_rows) for name, b in data.items()}
    res = frames[st.RESULTS]
    if res["config_hash"].duplicated().any():
        raise SpecError(st.RESULTS, f"{src}: a config_hash appears twice; each member's "
                        "result must appear once")
    name = safe_name(manifest.get("name") or src.resolve().name)
    state = {"id": f"{name}-{uuid.uuid4().hex[:8]}", "name": name,
             "imported_from": str(src.resolve()),
             "experiments": [{"name": "imported", "uri": str(src.resolve()),
                              "status": "imported", "created": time.time(),
                              "members": res["config_hash"].tolist(), "trials": []}]}
    names = [*res.get("experiment", []), *(p.stem for p in _specs(src / st.SPECS))]
    if "refine" in manifest:  # the rounds that made the tables, as data (never a spec)
        rec = st.checked_refine(manifest["refine"])
        if rec is None or "spec" in rec or any("spec" in r for r in rec.get("earlier", [])):
            raise SpecError(MANIFEST, f"{src / MANIFEST}: its refine record is not one "
                            "`wdsweep export` writes")
        state["refine"] = rec
        names += [x["experiment"] for r in [rec, *rec.get("earlier", [])] for x in r["rounds"]]
    if (last := last_name(names)) is not None:  # a new name here is past it (.names)
        if number(last) >= LAST:
            raise SpecError(st.RESULTS, f"{src}: names an experiment {last}, which leaves no "
                            f"name for a new one; allowed: exp-000 ... exp-{LAST - 1}")
        state["experiments"][0]["last"] = last
    with st.locked(study):  # makes the study; its .lock marks it as one (sweep.cli.analyze)
        _copy_specs(src / st.SPECS, study / st.SPECS)
        st.write_tables(study, res, frames[st.HISTORY], state)
    done = int((res["status"] == "completed").sum())
    return {"members": len(res), "completed": done, "history_rows": len(frames[st.HISTORY])}


def _frame(src: Path, name: str, b: bytes | None, max_rows: int) -> pd.DataFrame:
    if b is None:
        return pd.DataFrame()
    if b.count(b"\n") > max_rows + 1:
        raise SpecError(name, f"{src / name} has more than {max_rows:,} rows; allowed: at "
                        f"most {max_rows:,}")
    try:
        df = pd.read_csv(io.BytesIO(b), dtype={"config_hash": str, "trial_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise SpecError(name, f"{src / name}: unreadable CSV ({e})") from None
    need = {"config_hash", "status"} if name == st.RESULTS else {"config_hash"}
    if not need <= set(df.columns):
        raise SpecError(name, f"{src / name}: missing {sorted(need)} columns")
    if df["config_hash"].isna().any() or not df["config_hash"].map(
            lambda h: isinstance(h, str) and h.isalnum()).all():
        raise SpecError(name, f"{src / name}: a config_hash that is not a hex id")
    return df


def _as_data(rec: dict[str, Any]) -> dict[str, Any]:
    """A refine record without the specs' texts (its own and its earlier ones')."""
    out = {k: v for k, v in rec.items() if k not in ("spec", "earlier")}
    if isinstance(rec.get("earlier"), list):
        out["earlier"] = [_as_data(r) for r in rec["earlier"] if isinstance(r, dict)]
    return out
