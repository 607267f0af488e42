"""Column names shared by every layer: what the trainer writes per evaluation, what the
sweep folds into a study's results.csv, and what the analysis reads. Torch-free, so the
sweep driver and the analysis import it without loading torch.

Two prefixes, two meanings (never mixed):
* ``last_<metric>`` (results.csv): the member's value at its final evaluation;
* ``final_<metric>`` (the analysis's summary.csv): the mean over the final window of the
  run (by default its last 10% of steps), which is what accuracy-vs-λ plots.
"""

from __future__ import annotations

# Per-evaluation metrics, in the trainer's metrics.csv order.
METRICS = (
    "train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc", "bit_acc",
    "weight_norm", "weight_norm_sq",
)
# The trainer's metrics.csv (= a study's history.csv), one row per member per evaluation.
METRIC_COLUMNS = (
    "member", "config_hash", "seed", "lr", "weight_decay", "decay_per_step", "lambda_norm",
    "bn_eps", "batch_size", "train_size", "step", "epoch", *METRICS, "wall_time",
)
LAST = "last_"  # results.csv: value at the final evaluation
FINAL = "final_"  # summary.csv: mean over the final window
# Metrics results.csv carries per member (as LAST + name).
RESULT_METRICS = ("train_acc", "test_acc", "val_acc", "train_loss", "test_loss", "weight_norm")
