"""The Tune experiment for one planned experiment of a study: a function trainable per
pack (sweep.runner.trainable) with the pack's resources, a grid over the trials' configs
(each carrying its member table), wdsweep's progress view, live results and the spec's
callbacks; never a restore of an existing Tune experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweep.plan.members import member_table
from sweep.plan.spec import SpecError
from sweep.plan.trial import Resources, Trial
from sweep.runner.raylogs import quiet
from sweep.store import records as _records


def make_tuner(trials: list[Trial], study: Path, uri: str, name: str, res: Resources,
               callbacks: list[Any]):
    """(tuner, progress, live) for experiment `name` at `uri`; SpecError if a Tune
    experiment is there already."""
    quiet()
    from ray import tune  # lazy: Ray only when a sweep runs

    from sweep.runner.progress import Progress  # lazy: Ray only when a sweep runs
    from sweep.runner.recorder import Live  # lazy: Ray only when a sweep runs
    from sweep.runner.trainable import train_trial  # lazy: Ray only when a sweep runs

    root, fs = _records.storage(uri.rsplit("/", 1)[0])
    if tune.Tuner.can_restore(f"{root}/{name}", storage_filesystem=fs):
        raise SpecError("run.storage", f"{uri} already holds a Tune experiment; refusing to "
                        "overwrite it (use a new study directory)")
    progress = Progress(study.resolve(), name, sum(t.member_steps for t in trials))
    live = Live(study.resolve(), name)
    # Each trial's config carries its member table (trial/table/mKK: λ, seed, b, B, T, ...),
    # naming the mKK/<metric> keys its reports carry.
    space = [dict(t.to_json(), table=member_table(t.members)) for t in trials]
    tuner = tune.Tuner(
        tune.with_resources(train_trial, {"cpu": res.cpus_per_trial,
                                          "gpu": res.gpus_per_trial}),
        param_space={"trial": tune.grid_search(space)},
        tune_config=tune.TuneConfig(
            reuse_actors=True,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=name, storage_path=root, storage_filesystem=fs, verbose=0, stop=progress,
            failure_config=tune.FailureConfig(max_failures=res.max_failures,
                                              fail_fast=False),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[live, progress, *callbacks]))  # a trial's rows before its status
    return tuner, progress, live


def _trial_name(trial) -> str:
    return f"trial-{trial.config['trial']['key']}"
