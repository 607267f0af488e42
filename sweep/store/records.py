"""wdsweep's own records of what a study ran, and where its packs' checkpoints are.

Resume and repair read only these: JSON plan records (checksummed in study.json)
and the trainer checkpoints inside the Tune experiments (`state-<step>.pt` with
its sha256 sidecar, loaded by the trainer with `weights_only=True`). Nothing
Tune pickled (tuner.pkl, params.pkl, experiment state) is ever read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweep.plan.bounds import check_grid_size
from sweep.plan.packs import expand, make_plan
from sweep.plan.spec import load
from sweep.plan.trial import Trial
from sweep.store import study as st
from trainer.fsutil import atomic_write_bytes

log = logging.getLogger(__name__)

PLANS, SPECS, SPEC = st.PLANS, st.SPECS, st.SPEC  # the study's records (sweep.store.fs)
_STATE = re.compile(r"^state-([0-9]+)\.pt\Z")


def write_plan(study: Path, name: str, trials: Sequence[Trial], **record: Any) -> str:
    """STUDY/plans/<name>.json: the trials' payloads and `record` (uri, resources), enough
    for `wdsweep repair` to rebuild study.json; returns its sha256 for study.json."""
    if not st.EXP_NAME.match(name):
        raise st.StudyUnsafe(study, PLANS, f"would get a record named {name[:40]!r}; allowed: "
                             "exp-NNN")
    data = json.dumps({"experiment": name, **record, "trials": [t.to_json() for t in trials]},
                      indent=1).encode()
    (study / PLANS).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(study / PLANS / f"{name}.json", data)
    return hashlib.sha256(data).hexdigest()


def read_plan(study: Path, exp: dict[str, Any]) -> list[Trial]:
    """The experiment's trials, checked against study.json's checksum. Members
    imported from published tables (sweep.store.publish) were planned elsewhere: none."""
    if exp.get("status") == "imported":
        return []
    rel = f"{PLANS}/{exp['name']}.json"
    if not isinstance(exp.get("plan_sha256"), str):
        raise st.StudyLegacy(study)  # `repair --migrate` re-plans it (`legacy_plan`)
    try:
        data = st.read_regular(study / rel, st.TABLE)
    except OSError as e:
        raise st.StudyDamaged(study, rel, f"cannot read it ({e.strerror or e})") from None
    if hashlib.sha256(data).hexdigest() != exp["plan_sha256"]:
        raise st.StudyDamaged(study, rel, "its checksum differs from study.json's")
    try:
        return checked_trials(json.loads(data)["trials"])
    except (ValueError, KeyError, TypeError, RecursionError) as e:  # ConfigError: a ValueError
        raise st.StudyDamaged(study, rel, f"not a plan record ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:80] if str(e) else ''})") from None


def checked_trials(trials: Any) -> list[Trial]:
    """A plan's trials from their JSON: each a valid key and members that are configs (a
    plan record is read, never trusted: TypeError / ValueError otherwise)."""
    if not isinstance(trials, list):
        raise TypeError("trials is not a list")
    return [Trial.from_json(t) for t in trials]


def legacy_plan(study: Path, exp: dict[str, Any]) -> list[Trial]:
    """A study from before plan records: plan its saved spec again (TOML only) and
    accept it only when it gives exactly the recorded trials and members. A spec with
    your own task or model is refused: planning it would import the study's code."""

    rel = f"specs/{exp['name']}.toml"
    spec = load(study / rel)
    check_grid_size(spec, False)  # before expanding a grid someone else wrote
    if spec.code or spec.user or any(":" in str(v) for k in ("task", "model")
                                     for v in [spec.fixed.get(k), *spec.grid.get(k, [])]):
        raise st.StudyUnsafe(study, rel, "plans your own task or model; a study from "
                             "before plan records cannot be migrated without running its "
                             "code: run the spec again into a new study")
    others = {m.config_hash() for m in expand(spec)} - set(exp["members"])
    plan = make_plan(spec, others)
    if [t.key for t in plan.trials] != exp.get("trials"):
        raise st.StudyDamaged(study, rel, f"it no longer plans the trials study.json records "
                              f"for {exp['name']}")
    return list(plan.trials)


def filesystem(uri: str) -> tuple[str, Any]:
    """(path, pyarrow filesystem) for a local path or s3:// URI, creating nothing."""
    from pyarrow import fs  # lazy: pyarrow costs ~0.3 s, and only resume/repair read here

    if "://" in uri:
        return storage(uri)
    return uri, fs.LocalFileSystem()


def storage(uri: str) -> tuple[str, Any]:
    """Tune's (storage_path, storage_filesystem): local paths, or s3:// via pyarrow."""
    if uri.startswith("s3://"):
        from pyarrow import fs  # lazy: pyarrow only for storage

        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
        kw = {"endpoint_override": endpoint} if endpoint else {}
        if endpoint and endpoint.startswith("http://"):
            kw["scheme"] = "http"
        return uri.removeprefix("s3://"), fs.S3FileSystem(**kw)
    Path(uri).mkdir(parents=True, exist_ok=True)
    return uri, None


@dataclass(frozen=True)
class Undo:
    """What recording a new experiment changes in a study (study.json, spec.toml, the
    plan and spec records, Tune's directory), to put back when Tune refuses to start it
    (a user callback's setup failed) or the disk fills before it starts: the files' bytes
    as they were, so the study.json put back keeps its seal."""

    study: Path
    state: bytes | None  # None: there was none (a new study)
    spec: bytes | None

    @classmethod
    def take(cls, study: Path) -> Undo:
        def old(rel: str) -> bytes | None:
            p = study / rel
            return p.read_bytes() if p.is_file() and not p.is_symlink() else None
        return cls(study, old(st.STATE), old(SPEC))

    def restore(self, name: str, uri: str) -> None:
        for rel in (f"{PLANS}/{name}.json", f"{SPECS}/{name}.toml"):
            (self.study / rel).unlink(missing_ok=True)
        for rel, data in ((SPEC, self.spec), (st.STATE, self.state)):
            p = self.study / rel
            if data is None:
                p.unlink(missing_ok=True)
            elif not (p.is_file() and not p.is_symlink() and p.read_bytes() == data):
                atomic_write_bytes(p, data)  # (unchanged: nothing written, on a full disk too)
        if self.state is None:  # a new study: its record folders, made by this start
            for rel in (PLANS, SPECS):
                d = self.study / rel
                if d.is_dir() and not d.is_symlink() and not any(d.iterdir()):
                    d.rmdir()
        from pyarrow import fs as pafs  # lazy: pyarrow only for storage

        root, fs = filesystem(uri)
        if fs.get_file_info(root).type == pafs.FileType.Directory:  # (on a link: the link goes)
            fs.delete_dir(root)
        parent = root.rstrip("/").rsplit("/", 1)[0]  # <storage>/<study id>/
        if self.state is None and fs.get_file_info(parent).type == pafs.FileType.Directory \
                and not fs.get_file_info(pafs.FileSelector(parent)):
            fs.delete_dir(parent)  # a new study's id: made by this start, and empty


@dataclass(frozen=True)
class Found:
    step: int
    uri: str  # a Tune checkpoint directory holding checkpoints/state-<step>.pt


def checkpoints(state: dict[str, Any], key: str, keep: int = 2) -> list[Found]:
    """The newest `keep` trainer checkpoints of trial `key` whose bytes match their
    sha256 sidecar, newest first, across every experiment that ran the trial."""
    from pyarrow import fs as pafs  # lazy: pyarrow only for storage

    cands: list[tuple[int, str, str, Any]] = []
    for e in state["experiments"]:
        if e["status"] == "imported" or key not in e.get("trials", []):
            continue  # an import holds tables, never checkpoints
        root, fs = filesystem(e["uri"])
        tdir = f"{root.rstrip('/')}/trial-{key}"
        if fs.get_file_info(tdir).type != pafs.FileType.Directory:
            continue
        for info in fs.get_file_info(pafs.FileSelector(tdir, recursive=True)):
            m = _STATE.match(info.base_name)
            if m and info.path.rsplit("/", 2)[-2] == "checkpoints":
                ckpt_dir = info.path.rsplit("/", 2)[0]
                scheme = e["uri"].split("://", 1)[0] + "://" if "://" in e["uri"] else ""
                cands.append((int(m.group(1)), scheme + ckpt_dir, info.path, fs))
    found: list[Found] = []
    for step, uri, path, fs in sorted(cands, key=lambda c: -c[0]):
        if len(found) == keep:
            break
        if _verified(fs, path):
            found.append(Found(step, uri))
        else:
            log.warning("skipping %s: its sha256 sidecar is missing or differs", path)
    return found


def _verified(fs: Any, path: str) -> bool:
    side = path[: -len(".pt")] + ".sha256"
    try:
        with fs.open_input_stream(side) as f:
            want = f.read().decode().strip()
        with fs.open_input_stream(path) as f:
            data = f.read()
    except (OSError, UnicodeDecodeError):
        return False
    return hashlib.sha256(data).hexdigest() == want


def fetch(uri: str, dest: Path, files: tuple[str, ...] = ("config.json", "metrics.csv")) -> None:
    """Copy a Tune checkpoint's trainer files (only those: never a pickle) into `dest`:
    checkpoints/state-*.pt with sidecars, and `files` when present."""
    from pyarrow import fs as pafs  # lazy: pyarrow only for storage

    root, fs = filesystem(uri)
    (dest / "checkpoints").mkdir(parents=True, exist_ok=True)
    want = []
    for info in fs.get_file_info(pafs.FileSelector(f"{root}/checkpoints")):
        n = info.base_name
        if _STATE.match(n) or (n.endswith(".sha256") and _STATE.match(n[:-7] + ".pt")):
            want.append((info.path, dest / "checkpoints" / n))
    want += [(f"{root}/{n}", dest / n) for n in files
             if fs.get_file_info(f"{root}/{n}").type == pafs.FileType.File]
    for src, dst in want:
        with fs.open_input_stream(src) as f:
            atomic_write_bytes(dst, f.read())
