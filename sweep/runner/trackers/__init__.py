"""Experiment trackers that see members, not packs (driver side).

A Tune trial trains a pack of K members; Ray Tune's own tracker callbacks make one run
per trial with every member's metrics as `mKK/<metric>` and the member table as one
opaque parameter. A wdsweep tracker reads the trial's member table (`trial/table/mKK`,
sweep.plan.members) and each report's `mKK/<metric>` through trainer.schema's codec, and
gives the tracker one run per *member*: its member-table row (weight_decay,
decay_per_step, lambda_norm, seed, batch_size, train_size, total_steps, epochs_T, lr, the
task, the model's keys, each task_args.* / model_args.*, config_hash) as its params, its
metrics under their plain names (test_acc, train_acc, ...) at step = the training step.

* `MLflowTracker` (`[run] callbacks = ["mlflow"]`): tracking URI from the constructor,
  else $MLFLOW_TRACKING_URI, else a SQLite file inside the study, STUDY/mlflow/mlflow.db
  (MLflow 3 refuses its old `file:./mlruns` store); experiment from the constructor, else
  $MLFLOW_EXPERIMENT_NAME, else the study's name. A parent run per trial (`trial-<key>`:
  the pack's shared params and mean accuracies) with its members' runs nested under it
  (tag mlflow.parentRunId). A resumed member continues its run (found by its tags).
* `WandbTracker` (`[run] callbacks = ["wandb"]`): project from the constructor, else
  $WANDB_PROJECT, else the study's name; mode from the constructor or $WANDB_MODE
  (`offline` writes STUDY/wandb/ unless $WANDB_DIR says where); one run per member, its
  pack's trial as the run group (`trial-<key>`), the run id fixed by study and member so
  a resumed member continues its run.

The driver binds each tracker to the study (`prepare`) before the study records an
experiment: a tracker that cannot start (its package not installed, a store it refuses,
no W&B login) is bad input naming `run.callbacks`, and the study is left as it was. A
tracker that fails while the sweep runs logs one warning and records nothing more of that
experiment; the sweep goes on (a tracker failing is not a trial failing). The hooks only
hand their work to one writer thread per tracker, so a slow store never holds up Tune
(whose trials wait for the driver to take each report); the experiment's end waits for
the writer to finish.
"""

from sweep.runner.trackers._base import Tracker, prepare
from sweep.runner.trackers._mlflow import MLflowTracker
from sweep.runner.trackers._wandb import WandbTracker

__all__ = ["MLflowTracker", "Tracker", "WandbTracker", "prepare"]
