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
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from sweep import study as st
from sweep.spec import SpecError

MANIFEST = "published.json"
TABLES = (st.RESULTS, st.HISTORY)


def _gz(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:  # mtime 0: same bytes twice
        f.write(data)
    return buf.getvalue()


def export(study: Path, dest: Path) -> dict[str, Any]:
    """Write the study's tables (checked first), specs and a manifest into `dest`."""
    state = st.check(study)
    if not (study / st.RESULTS).exists():
        raise SpecError("study", f"{study} has no results yet: nothing to export")
    if dest.exists() and not dest.is_dir():
        raise SpecError("dest", f"{dest} exists and is not a directory")
    dest.mkdir(parents=True, exist_ok=True)
    tables = {}
    for name in TABLES:
        p = study / name
        if not p.exists():
            continue
        data = p.read_bytes()
        rows = len(pd.read_csv(io.BytesIO(data), usecols=["config_hash"]))
        (dest / f"{name}.gz").write_bytes(_gz(data))
        tables[name] = {"rows": rows, "sha256": hashlib.sha256(data).hexdigest()}
    if (study / "specs").is_dir():
        shutil.copytree(study / "specs", dest / "specs", dirs_exist_ok=True)
    manifest = {"study": state.get("id"), "name": state.get("name"), "exported": time.time(),
                "tables": tables,
                "experiments": [{k: e[k] for k in ("name", "status")}
                                for e in state["experiments"]]}
    st.write_json(dest / MANIFEST, manifest)
    return manifest


def _read(src: Path, name: str, manifest: dict[str, Any]) -> bytes | None:
    """A published table's CSV bytes (from name or name.gz), checked against the manifest."""
    p = next((q for q in (src / name, src / f"{name}.gz") if q.exists()), None)
    if p is None:
        return None
    try:
        data = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
    except (OSError, EOFError) as e:
        raise SpecError(name, f"{p} is not a readable gzip file ({e})") from None
    want = manifest.get("tables", {}).get(name)
    if want and hashlib.sha256(data).hexdigest() != want["sha256"]:
        raise SpecError(name, f"{p} differs from what {src / MANIFEST} records "
                        f"({want['rows']} rows): truncated or edited")
    return data


def import_(src: Path, study: Path) -> dict[str, Any]:
    """A new study whose tables are the published ones (checked), members as they were."""
    if not src.is_dir():
        raise SpecError("source", f"{src}: not a directory of published tables")
    if study.exists() and any(study.iterdir()):
        raise SpecError("--study", f"{study} exists and is not empty; import into a new "
                        "directory")
    manifest: dict[str, Any] = {}
    if (src / MANIFEST).exists():
        try:
            manifest = json.loads((src / MANIFEST).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SpecError(MANIFEST, f"{src / MANIFEST} is not JSON ({e})") from None
    data = {name: _read(src, name, manifest) for name in TABLES}
    if data[st.RESULTS] is None:
        raise SpecError("source", f"{src} has no results.csv or results.csv.gz")
    frames = {}
    for name, b in data.items():
        if b is None:
            frames[name] = pd.DataFrame()
            continue
        try:
            frames[name] = pd.read_csv(io.BytesIO(b), dtype={"config_hash": str,
                                                             "trial_id": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise SpecError(name, f"{src / name}: unreadable CSV ({e})") from None
        need = {"config_hash", "status"} if name == st.RESULTS else {"config_hash"}
        if not need <= set(frames[name].columns):
            raise SpecError(name, f"{src / name}: missing {sorted(need)} columns")
    res = frames[st.RESULTS]
    if res["config_hash"].duplicated().any():
        raise SpecError(st.RESULTS, f"{src}: a config_hash appears twice; each member's "
                        "result must appear once")
    name = manifest.get("name") or src.name
    state = {"id": f"{name}-{uuid.uuid4().hex[:8]}", "name": name,
             "imported_from": str(src.resolve()),
             "experiments": [{"name": "imported", "uri": str(src.resolve()),
                              "status": "imported", "created": time.time(),
                              "members": res["config_hash"].tolist(), "trials": []}]}
    study.mkdir(parents=True, exist_ok=True)
    if (src / "specs").is_dir():
        shutil.copytree(src / "specs", study / "specs", dirs_exist_ok=True)
    st.write_tables(study, res, frames[st.HISTORY], state)
    done = int((res["status"] == "completed").sum())
    return {"members": len(res), "completed": done, "history_rows": len(frames[st.HISTORY])}
