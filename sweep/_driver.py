"""Run, extend and resume sweeps with Ray Tune (the Tuner API of Ray >= 2.10)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from sweep import study as st
from sweep.plan import Plan, make_plan, member_from_dict
from sweep.spec import Spec, SpecError


@contextmanager
def connected(address: str | None) -> Iterator[None]:
    """A local Ray sized to the machine, or a cluster at `address`; an existing
    connection (a notebook, the tests) is used as is and left open."""
    import ray

    if ray.is_initialized():
        yield
        return
    quiet()
    # Trials print nothing; their errors reach error.txt and the progress view.
    kw = dict(configure_logging=True, logging_level="WARNING", log_to_driver=False)
    if address is None:
        ray.init(include_dashboard=False, **kw)
    else:
        ray.init(address=address, **kw)
    try:
        yield
    finally:
        ray.shutdown()


def quiet() -> None:
    """Ray's own tables and per-checkpoint warnings would bury the progress view."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def check_resources(spec: Spec) -> None:
    import ray

    have = ray.cluster_resources()
    if spec.gpus_per_trial > 0 and have.get("GPU", 0) < spec.gpus_per_trial:
        raise SpecError("resources.gpus_per_trial",
                        f"got {spec.gpus_per_trial} but the cluster has {have.get('GPU', 0):g} "
                        "GPUs; allowed: 0 here, or run on a cluster with GPUs")
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and spec.storage is None:
        print(f"WARNING: {len(nodes)} Ray nodes and no run.storage: the study's experiments "
              "directory must be on storage every node shares (NFS), or set "
              "run.storage = 's3://...'")
    if have.get("CPU", 0) < spec.cpus_per_trial:
        raise SpecError("resources.cpus_per_trial",
                        f"got {spec.cpus_per_trial:g} but the cluster has {have.get('CPU', 0):g}"
                        " CPUs")


def storage(uri: str) -> tuple[str, Any]:
    """Tune's (storage_path, storage_filesystem): local paths, or s3:// via pyarrow."""
    if uri.startswith("s3://"):
        from pyarrow import fs

        endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3")
        kw = {"endpoint_override": endpoint} if endpoint else {}
        if endpoint and endpoint.startswith("http://"):
            kw["scheme"] = "http"
        return uri.removeprefix("s3://"), fs.S3FileSystem(**kw)
    Path(uri).mkdir(parents=True, exist_ok=True)
    return uri, None


def _tuner(spec: Spec, plan: Plan, study: Path, name: str, root: str):
    quiet()
    from ray import tune

    from sweep._progress import Progress
    from sweep._trainable import train_trial

    path, fs = storage(root)
    member_steps = sum(m.total_steps for t in plan.trials for m in t.members)
    return tune.Tuner(
        tune.with_resources(train_trial, {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial}),
        param_space={"trial": tune.grid_search([t.payload() for t in plan.trials])},
        tune_config=tune.TuneConfig(
            reuse_actors=True,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=name, storage_path=path, storage_filesystem=fs, verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures, fail_fast=False),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[Progress(study, name, member_steps)]))


def _trial_name(trial) -> str:
    return f"trial-{trial.config['trial']['key']}"


def run(spec: Spec, study: Path, *, address: str | None = None, dry_run: bool = False,
        log=print) -> dict[str, Any]:
    """Run the members of `spec` that `study` has not completed (new study or extension)."""
    plan = make_plan(spec, st.completed_hashes(study))  # validates every grid point
    log(plan.summary(spec.cpus_per_trial))
    if dry_run:
        return {"planned": len(plan.trials), "ran": 0}
    fresh = not study.exists()
    try:
        return _run_locked(spec, plan, study, address, log)
    except SpecError:
        if fresh and study.exists():  # bad input found once Ray was up: leave no trace
            shutil.rmtree(study)
        raise


def _run_locked(spec: Spec, plan: Plan, study: Path, address: str | None,
                log) -> dict[str, Any]:
    with st.locked(study):
        state = st.read_state(study)
        stale = [e["name"] for e in state["experiments"] if e["status"] == "running"]
        if stale:
            raise SpecError("--study", f"{study} has an interrupted experiment ({stale[0]}); "
                            f"run `wdsweep resume {study}` first")
        if not plan.trials:
            log("nothing to run: every member of this spec is already completed")
            return {"planned": 0, "ran": 0}
        with connected(address):
            check_resources(spec)
            name = f"exp-{len(state['experiments']):03d}"
            root = spec.storage_uri(study)
            uri = f"{root.rstrip('/')}/{name}"
            _save_spec(study, spec, name)
            state.update(name=spec.name, ray_version=_ray_version())
            state["experiments"].append(dict(
                name=name, uri=uri, status="running", created=time.time(),
                trials=[t.key for t in plan.trials],
                members=[m.config_hash() for t in plan.trials for m in t.members],
                cpus_per_trial=spec.cpus_per_trial, gpus_per_trial=spec.gpus_per_trial))
            st.write_json(study / st.STATE, state)
            tuner = _tuner(spec, plan, study, name, root)
            t0 = time.perf_counter()
            grid = tuner.fit()
            log(f"{name}: Tune ran {len(plan.trials)} trials in {time.perf_counter() - t0:.1f} s")
            return _finish(study, name, grid, log)


def resume(study: Path, *, retry_errored: bool = False, address: str | None = None,
           log=print) -> dict[str, Any]:
    """Restore interrupted (and, with retry_errored, errored) experiments and finish them."""
    from ray import tune

    from sweep._trainable import train_trial

    with st.locked(study):
        state = st.read_state(study)
        todo = [e for e in state["experiments"]
                if e["status"] == "running" or (retry_errored and e["status"] == "errored")]
        if not todo:
            log("nothing to resume" + ("" if retry_errored else
                                       " (errored trials need --retry-errored)"))
            return {"resumed": 0}
        if state.get("ray_version") not in (None, _ray_version()):
            log(f"WARNING: this study was run with Ray {state['ray_version']}, this is "
                f"{_ray_version()}: experiments may not restore across versions")
        with connected(address):
            out = dict.fromkeys(("resumed", "completed", "errored", "errored_trials"), 0)
            for e in todo:
                path, fs = storage(e["uri"])
                if not tune.Tuner.can_restore(path, storage_filesystem=fs):
                    raise SpecError("--study", f"experiment {e['name']} at {e['uri']} cannot be "
                                    "restored (its tuner.pkl is missing or damaged)")
                res = {"cpu": e["cpus_per_trial"], "gpu": e["gpus_per_trial"]}
                tuner = tune.Tuner.restore(path, tune.with_resources(train_trial, res),
                                           resume_unfinished=True, resume_errored=retry_errored,
                                           restart_errored=False, storage_filesystem=fs)
                log(f"resuming {e['name']}")
                got = _finish(study, e["name"], tuner.fit(), log)
                out = {k: v + got.get(k, 1 if k == "resumed" else 0) for k, v in out.items()}
            return out


def _finish(study: Path, name: str, grid, log) -> dict[str, Any]:
    """Collect a finished Tune run into the study's tables; mark the experiment."""
    rows, hist, errored = [], [], 0
    for r in grid:
        members = [member_from_dict(d) for d in r.config["trial"]["members"]]
        key = r.config["trial"]["key"]
        if r.error is None and r.checkpoint is not None:
            with r.checkpoint.as_directory() as d:
                h = pd.read_csv(Path(d) / "metrics.csv")
            hist.append(h)
            last = h[h.step == h.step.max()].set_index("config_hash")
            info = {k: (r.metrics or {}).get(k)
                    for k in ("node", "resumed_from", "train_seconds")}
            for m in members:
                f = last.loc[m.config_hash()]
                rows.append(dict(_row(m, key, name, "completed"), **info,
                                 **{f"final_{c}": f[c] for c in _FINAL}))
        else:
            errored += 1
            err = _error_text(r)
            rows += [dict(_row(m, key, name, "errored"), error=err) for m in members]
    history = pd.concat(hist, ignore_index=True) if hist else pd.DataFrame()
    st.merge_results(study, rows, history)
    state = st.read_state(study)
    for e in state["experiments"]:
        if e["name"] == name:
            e["status"] = "errored" if errored else "finished"
    st.write_json(study / st.STATE, state)
    n_done = sum(r["status"] == "completed" for r in rows)
    log(f"{name}: {n_done} members completed, {len(rows) - n_done} errored "
        f"({errored} trials); results in {study / st.RESULTS}")
    return {"completed": n_done, "errored": len(rows) - n_done, "errored_trials": errored}


_FINAL = ("train_acc", "test_acc", "val_acc", "train_loss", "test_loss", "weight_norm")


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


def _save_spec(study: Path, spec: Spec, name: str) -> None:
    from trainer.fsutil import atomic_write_bytes

    (study / "specs").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(study / "specs" / f"{name}.toml", spec.text.encode())
    atomic_write_bytes(study / "spec.toml", spec.text.encode())


def _ray_version() -> str:
    import ray

    return ray.__version__


def status(study: Path) -> dict[str, Any]:
    """Counts in members: total, completed, running, pending, errored (+ per trial)."""
    if not (study / st.STATE).exists():
        raise SpecError("study", f"{study} is not a wdsweep study (no {st.STATE})")
    state = st.read_state(study)
    res = st.read_results(study)
    done = set() if res.empty else set(res.loc[res.status == "completed", "config_hash"])
    failed = set() if res.empty else set(res.loc[res.status == "errored", "config_hash"]) - done
    planned = {h for e in state["experiments"] for h in e["members"]} | done | failed
    live = json.loads((study / st.STATUS).read_text()) if (study / st.STATUS).exists() else {}
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
