"""Run, extend and resume sweeps with Ray Tune (the Tuner API of Ray >= 2.10).

Each study has an id (its name plus a random suffix, in study.json); its Tune
experiments live at <storage>/<id>/exp-NNN, so studies sharing a storage root
(an NFS path, an S3 prefix) never write over each other.

Every experiment is a fresh Tune run: `run` starts one for the members the study
has not completed, and `resume` starts one for the trials left unfinished (or
errored, with retry_errored), each from its pack's newest verified trainer
checkpoint (sweep.store.records). No Tune state is ever restored: nothing a study's
storage holds is unpickled.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweep.plan.bounds import (
    check_compute,
    check_grid_size,
    check_members,
    check_plan,
    plan_core_hours,
)
from sweep.plan.code import check_outside, check_pinned, record
from sweep.plan.packs import make_plan
from sweep.plan.spec import Spec, SpecError
from sweep.plan.trial import ExpState, MemberState, Resources, Trial
from sweep.runner import refine as _refine
from sweep.runner.callbacks import saved_callbacks as _saved_callbacks
from sweep.runner.callbacks import setup_error, setup_guard
from sweep.runner.callbacks import spec_callbacks as _spec_callbacks
from sweep.runner.collect import collect
from sweep.runner.guard import check_code, require_trust
from sweep.runner.session import before_import, check_resources, connected
from sweep.runner.startup import before_the_record, record_experiment
from sweep.runner.tuner import make_tuner
from sweep.store import records as _records
from sweep.store import study as st
from sweep.store.names import next_experiment
from sweep.store.status import status
from trainer.errors import MACHINE_FAULTS, BadInput, Fault, not_started

log = logging.getLogger(__name__)


def run(spec: Spec, study: Path, *, address: str | None = None, dry_run: bool = False,
        yes: bool = False, callbacks: list[Any] = (), trust_code: bool = False,
        refine_record: dict[str, Any] | None = None,
        refine_round: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the members of `spec` that `study` has not completed (new study or extension).
    `callbacks`: Ray Tune Callback instances (MLflow, W&B, ...) added to the spec's
    `run.callbacks`. A dry run returns the plan (`plan`) and runs nothing. Your code
    directories must hold what the study recorded when it used them (`trust_code`
    accepts a changed tree, saying what changed). A spec with `[refine]` runs its grid,
    then rounds of proposed points (sweep.runner.refine); the loop hands its grid here
    with `refine_record`, written in the same study.json as the grid's experiment (a
    driver killed in the grid leaves a study `wdsweep refine` continues); a round's
    experiment, with `refine_round`, its record in the refine rounds, in the same write
    (so a round is recorded exactly when its experiment is, under the name it got)."""
    if spec.refine is not None and not dry_run:
        return _refine.run(spec, study, _RUNNER, address=address, yes=yes,
                           callbacks=callbacks, trust_code=trust_code)
    check_grid_size(spec, yes)  # before expanding: a huge grid is refused in milliseconds
    state = st.check(study)
    require_trust(study, state, trust_code)  # an extension seals the study's record again
    check_outside(spec.code, study)  # before the plan imports it (sweep.plan.code)
    check_pinned(state.get("code"), spec.code, trust_code)
    plan = make_plan(spec, st.completed_hashes(study))  # validates every grid point
    check_plan(plan, spec, yes)  # first: a refused plan is one line, not the plan and a line
    if not dry_run:  # a dry run prints it with the plan, on stdout
        log.info("%s", plan.summary(spec.cpus_per_trial))
    if spec.callbacks:  # imports ray: keep an embedded Ray on loopback (sweep.runner.session)
        before_import(address)
    cbs = [*_spec_callbacks(spec), *callbacks]
    if dry_run:
        summary = plan.summary(spec.cpus_per_trial) + _refine.dry_run_note(spec)
        return {"planned": len(plan.trials), "ran": 0, "plan": dict(
            plan.record(spec.cpus_per_trial), summary=summary,
            refine=spec.refine.as_dict() if spec.refine else None)}
    st.refuse_if_busy(study)
    _refuse_if_interrupted(study)
    if not plan.trials:
        log.info("nothing to run: every member of this spec is already completed")
        return {"planned": 0, "ran": 0}
    fresh = not study.exists()
    # The lock first, then Ray: a second driver gives up before it starts a Ray (or
    # touches the first one's record of its Ray processes).
    with st.locked(study):
        try:
            with before_the_record(study), connected(address, study, code=spec.code):
                check_resources(spec)
                return _run_locked(spec, plan, study, cbs, refine_record, refine_round)
        except (BadInput, Fault, KeyboardInterrupt):
            if fresh and not (study / st.STATE).exists():  # nothing started: no trace
                shutil.rmtree(study)
            raise


def _run_locked(spec: Spec, plan, study: Path, cbs: list[Any],
                refine_record: dict[str, Any] | None = None,
                refine_round: dict[str, Any] | None = None) -> dict[str, Any]:
    _refuse_if_interrupted(study)  # again, now that no one else can change the study
    state = st.check(study)
    if refine_record is not None:
        _refine.adopt(state, refine_record)
    state.setdefault("id", f"{spec.name}-{uuid.uuid4().hex[:8]}")
    state["name"] = spec.name
    # What the study's code is (digests, task/model names): data for the read-only
    # commands, and the pin that run/resume check (sweep.plan.code, sweep.store.trust).
    state["code"] = record(spec.code, [m for t in plan.trials for m in t.members],
                           state.get("code"))
    state["callbacks"] = list(spec.callbacks)  # what `resume` loads again (sealed)
    root = f"{spec.storage_uri(study).rstrip('/')}/{state['id']}"
    # spec.code is recorded for resume, which ships it again (sweep.plan.code)
    out = _launch(study, state, root, list(plan.trials), spec.resources, cbs,
                  code=spec.code, spec=spec, refine_round=refine_round)
    return {**out, "ran": len(plan.trials)}


def _refuse_if_interrupted(study: Path) -> None:
    stale = [e["name"] for e in st.read_state(study)["experiments"]
             if e["status"] == ExpState.RUNNING]
    if stale:
        raise SpecError("--study", f"{study} has an interrupted experiment ({stale[0]}); "
                        f"run `wdsweep resume {study}` first")


def _launch(study: Path, state: dict[str, Any], root: str, trials: list[Trial],
            res: Resources, cbs: list[Any], *, code: Sequence[str] = (),
            spec: Spec | None = None, continues: Sequence[str] = (),
            refine_round: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start experiment exp-NNN under `root` with `trials`, record it (and the refine
    round it is, if one), run it, collect it."""
    name = next_experiment(study, state)
    if refine_round is not None:  # written with the experiment's entry (record_experiment)
        state["refine"]["rounds"].append({"experiment": name, **refine_round})
    uri = f"{root}/{name}"
    if "://" not in root:  # local or NFS storage: Tune must write nowhere a link points
        st.check_tree(study, Path(root))
    from sweep.runner.trackers import prepare  # lazy: Ray only when a sweep runs

    undo = _records.Undo.take(study)  # before the record: what a refused start puts back
    prepare(cbs, study.resolve(), state, name)  # MLflow set up (or refused) before the record
    try:  # build the Tuner before the study records the experiment
        tuner, progress, live = make_tuner(trials, study, uri, name, res, cbs)
    except OSError as e:
        if e.errno in MACHINE_FAULTS:  # a full disk is no fault of the storage named
            undo.restore(name, uri)
            raise not_started(e) from None
        raise SpecError("run.storage", f"cannot use {uri}: {e}") from None
    try:
        record_experiment(study, state, name, uri, trials, res, code, spec, continues)
    except OSError as e:  # a full disk before Tune started: the study as it was
        undo.restore(name, uri)
        raise not_started(e) from None
    t0 = time.perf_counter()
    with setup_guard(cbs) as failed:
        try:
            grid = tuner.fit()
        except Exception:
            if not failed:
                raise
            # a user callback's setup refused before any trial: undo the record
            undo.restore(name, uri)
            raise setup_error(*failed[0]) from None
    log.info("%s: Tune ran %d trials in %.1f s", name, len(trials), time.perf_counter() - t0)
    fault = progress.fault or live.fault
    try:
        out = collect(study, name, trials, grid, merged=live.merged)
    except OSError as e:  # the disk that stopped the sweep, or a fault found only now
        where = f" ({e.filename})" if e.filename else ""
        fault = fault or f"{e.strerror or e}{where}"
    if fault is not None:
        raise Fault(f"{fault}; the sweep stopped: free space, then "
                         f"`wdsweep resume {study}`")
    return {**out, "experiment": name}


def resume(study: Path, *, retry_errored: bool = False, address: str | None = None,
           callbacks: list[Any] = (), trust_code: bool = False, yes: bool = False
           ) -> dict[str, Any]:
    """Finish the trials a study left unfinished (and, with retry_errored, the errored
    ones) in a new experiment, each from its newest verified trainer checkpoint.
    Code and paths outside the study are used only from a study this user's wdsweep
    sealed, or with `trust_code` (sweep.store.trust)."""
    with st.locked(study), before_the_record(study):
        state = st.check(study)
        require_trust(study, state, trust_code)  # before anything is written or signed
        res_df = st.read_results(study)
        _settle(state, res_df)
        done = set() if res_df.empty else set(res_df.loc[res_df.status == MemberState.COMPLETED,
                                                         "config_hash"])
        failed = set() if res_df.empty else set(res_df.config_hash) - done
        trials: dict[str, Trial] = {}
        sources: dict[str, dict[str, Any]] = {}
        for e in state["experiments"]:
            if e["status"] == ExpState.ERRORED and set(e["members"]) <= done:
                e["status"] = ExpState.FINISHED  # completed since
            if e["status"] not in (ExpState.RUNNING, ExpState.ERRORED, ExpState.CONTINUED):
                continue  # a continued one: its errored trials are still its own
            for t in _records.read_plan(study, e):
                hashes = set(t.hashes)
                if hashes <= done or (hashes & failed and not retry_errored):
                    continue
                trials[t.key] = t.resumed(())
                sources[t.key] = e
        st.write_state(study, state)
        if not trials:
            errored = [e["name"] for e in state["experiments"]
                       if e["status"] == ExpState.ERRORED]
            log.info("nothing to resume" + (" (errored trials need --retry-errored)"
                                            if errored and not retry_errored else ""))
            return {"resumed": 0}
        continues = sorted({e["name"] for e in sources.values()})
        first = sources[next(iter(trials))]
        check_code(study, state, first, trust_code)
        res = Resources.of(first)
        _check_bounds(list(trials.values()), res, yes)  # the plans are read, not trusted
        for key, t in trials.items():
            trials[key] = t.resumed(f.uri for f in _records.checkpoints(state, key))
        started = sum(bool(t.init) for t in trials.values())
        log.info("resuming %d trials of %s (%d from a checkpoint)", len(trials),
                 ", ".join(continues), started)
        code = first.get("code") or ()  # your modules (sweep.plan.code), shipped again
        with connected(address, study, code=code):
            out = _launch(study, state, first["uri"].rsplit("/", 1)[0], list(trials.values()),
                          res, [*_saved_callbacks(state), *callbacks], code=code,
                          continues=continues)
        return {**out, "resumed": len(trials)}


def _check_bounds(trials: list[Trial], res: Resources, yes: bool) -> None:
    """The bounds `run` applies, on what `resume` is about to train: its plans' members
    (each pack's memory, per-step decay, seeds) and their compute (--yes beyond it)."""
    packs = [list(t.members) for t in trials]
    for ms in packs:
        check_members(ms, prefix="plan: ", on_device=res.on_gpu)
    check_compute(plan_core_hours(packs, res.cpus_per_trial), "--yes", yes)


def _settle(state: dict[str, Any], res_df) -> None:
    """An experiment recorded as running whose members all have a row (its driver was
    killed after Tune finished, before it recorded the outcome) is over: say so, so
    that `run` no longer waits for a resume that has nothing to do."""
    rows = set() if res_df.empty else set(res_df.config_hash)
    done = set() if res_df.empty else set(res_df.loc[res_df.status == MemberState.COMPLETED,
                                                     "config_hash"])
    for e in state["experiments"]:
        if e["status"] == ExpState.RUNNING and e["members"] and set(e["members"]) <= rows:
            e["status"] = ExpState.FINISHED if set(e["members"]) <= done else ExpState.ERRORED
            log.info("%s: every member has its result; recorded as %s", e["name"],
                     e["status"])


__all__ = ["refine", "resume", "run", "status"]


def refine(study: Path, *, rounds: int | None = None, budget: float | None = None,
           address: str | None = None, callbacks: list[Any] = (), trust_code: bool = False,
           yes: bool = False) -> dict[str, Any]:
    """More refinement rounds on a study run with `[refine]` (`wdsweep refine STUDY`):
    `rounds` more than it has, `budget` a new total of member-steps."""
    return _refine.more(study, _RUNNER, rounds=rounds, budget=budget, address=address,
                        callbacks=callbacks, trust_code=trust_code, yes=yes)


_RUNNER = _refine.Runner(run=run, resume=resume, require_trust=require_trust)
