"""Run, extend and resume sweeps with Ray Tune (the Tuner API of Ray >= 2.10).

Each study has an id (its name plus a random suffix, in study.json); its Tune
experiments live at <storage>/<id>/exp-NNN, so studies sharing a storage root
(an NFS path, an S3 prefix) never write over each other.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from sweep import study as st
from sweep._collect import collect
from sweep._ray import check_resources, connected, quiet, ray_version, storage
from sweep._status import status
from sweep.plan import Plan, make_plan
from sweep.spec import Spec, SpecError


def _tuner(spec: Spec, plan: Plan, study: Path, uri: str, name: str):
    quiet()
    from ray import tune

    from sweep._progress import Progress
    from sweep._trainable import train_trial

    root, fs = storage(uri.rsplit("/", 1)[0])
    if tune.Tuner.can_restore(f"{root}/{name}", storage_filesystem=fs):
        raise SpecError("run.storage", f"{uri} already holds a Tune experiment; refusing to "
                        "overwrite it (use a new study directory)")
    member_steps = sum(m.total_steps for t in plan.trials for m in t.members)
    return tune.Tuner(
        tune.with_resources(train_trial, {"cpu": spec.cpus_per_trial, "gpu": spec.gpus_per_trial}),
        param_space={"trial": tune.grid_search([t.payload() for t in plan.trials])},
        tune_config=tune.TuneConfig(
            reuse_actors=True,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=name, storage_path=root, storage_filesystem=fs, verbose=0,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures, fail_fast=False),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[Progress(study.resolve(), name, member_steps)]))


def _trial_name(trial) -> str:
    return f"trial-{trial.config['trial']['key']}"


def run(spec: Spec, study: Path, *, address: str | None = None, dry_run: bool = False,
        log=print) -> dict[str, Any]:
    """Run the members of `spec` that `study` has not completed (new study or extension)."""
    plan = make_plan(spec, st.completed_hashes(study))  # validates every grid point
    log(plan.summary(spec.cpus_per_trial))
    if dry_run:
        return {"planned": len(plan.trials), "ran": 0}
    st.refuse_if_busy(study)
    _refuse_if_interrupted(study)
    if not plan.trials:
        log("nothing to run: every member of this spec is already completed")
        return {"planned": 0, "ran": 0}
    with connected(address):
        check_resources(spec, log)
        fresh = not study.exists()
        with st.locked(study):
            try:
                return _run_locked(spec, plan, study, log)
            except SpecError:
                if fresh:  # bad input found once Ray was up: leave no trace
                    shutil.rmtree(study)
                raise


def _refuse_if_interrupted(study: Path) -> None:
    stale = [e["name"] for e in st.read_state(study)["experiments"] if e["status"] == "running"]
    if stale:
        raise SpecError("--study", f"{study} has an interrupted experiment ({stale[0]}); "
                        f"run `wdsweep resume {study}` first")


def _run_locked(spec: Spec, plan: Plan, study: Path, log) -> dict[str, Any]:
    _refuse_if_interrupted(study)  # again, now that no one else can change the study
    state = st.read_state(study)
    state.setdefault("id", f"{spec.name}-{uuid.uuid4().hex[:8]}")
    name = f"exp-{len(state['experiments']):03d}"
    uri = f"{spec.storage_uri(study).rstrip('/')}/{state['id']}/{name}"
    try:  # build the Tuner (it writes tuner.pkl) before the study records the experiment
        tuner = _tuner(spec, plan, study, uri, name)
    except OSError as e:
        raise SpecError("run.storage", f"cannot use {uri}: {e}") from None
    _save_spec(study, spec, name)
    state.update(name=spec.name, ray_version=ray_version())
    state["experiments"].append(dict(
        name=name, uri=uri, status="running", created=time.time(),
        trials=[t.key for t in plan.trials],
        members=[m.config_hash() for t in plan.trials for m in t.members],
        cpus_per_trial=spec.cpus_per_trial, gpus_per_trial=spec.gpus_per_trial))
    st.write_json(study / st.STATE, state)
    t0 = time.perf_counter()
    grid = tuner.fit()
    log(f"{name}: Tune ran {len(plan.trials)} trials in {time.perf_counter() - t0:.1f} s")
    return {**collect(study, name, grid, log), "ran": len(plan.trials)}


def resume(study: Path, *, retry_errored: bool = False, address: str | None = None,
           log=print) -> dict[str, Any]:
    """Restore interrupted (and, with retry_errored, errored) experiments and finish them."""
    from ray import tune

    from sweep._trainable import train_trial

    with st.locked(study):
        state, done = st.read_state(study), st.completed_hashes(study)
        todo = []
        for e in state["experiments"]:
            if e["status"] == "errored" and set(e["members"]) <= done:
                st.set_experiment_status(study, e["name"], "finished")  # completed since
            elif e["status"] == "running" or (retry_errored and e["status"] == "errored"):
                todo.append(e)
        if not todo:
            log("nothing to resume" + ("" if retry_errored else
                                       " (errored trials need --retry-errored)"))
            return {"resumed": 0}
        if state.get("ray_version") not in (None, ray_version()):
            log(f"WARNING: this study was run with Ray {state['ray_version']}, this is "
                f"{ray_version()}: experiments may not restore across versions")
        out = dict.fromkeys(("resumed", "completed", "errored", "errored_trials",
                             "unfinished_trials"), 0)
        with connected(address):
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
                got = collect(study, e["name"], tuner.fit(), log)
                for k in ("completed", "errored", "errored_trials", "unfinished_trials"):
                    out[k] += got[k]
                out["resumed"] += 1
        return out


def _save_spec(study: Path, spec: Spec, name: str) -> None:
    from trainer.fsutil import atomic_write_bytes

    (study / "specs").mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(study / "specs" / f"{name}.toml", spec.text.encode())
    atomic_write_bytes(study / "spec.toml", spec.text.encode())


__all__ = ["resume", "run", "status"]
