"""W&B: one run per member, grouped by its pack's trial (the package docstring)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from sweep.plan.members import run_name
from sweep.plan.spec import SpecError
from sweep.runner.trackers._base import (
    FINISHED,
    Tracker,
    _first_line,
    _missing,
    _study_dir,
    log,
)
from trainer.schema import parse_member_id


class WandbTracker(Tracker):
    """One W&B run per member, grouped by its pack's trial (the package docstring)."""

    kind = "wandb"
    DIR = "wandb"  # STUDY/wandb/: offline runs, unless $WANDB_DIR says where
    _LIVE = (*Tracker._LIVE, "_runs")

    def __init__(self, project: str | None = None, mode: str | None = None,
                 dir: str | None = None) -> None:  # (wandb.init's names)
        try:
            import wandb  # noqa: F401 -- checked now: a missing wandb is the spec's
        except ImportError as e:
            raise _missing("wandb", e) from None
        super().__init__()
        self.project, self.mode, self.dir = project, mode, dir
        self._runs: dict[str, Any] = {}  # config hash -> the member's open wandb Run
        self._last: dict[str, int] = {}  # config hash -> the last step logged
        self._init: dict[str, Any] = {}

    def _setup(self, study: Path, name: str, study_id: str, experiment: str) -> None:
        import wandb  # lazy: wandb only when a sweep uses it

        mode = self.mode or os.environ.get("WANDB_MODE") or "online"
        where = self.dir or os.environ.get("WANDB_DIR") or None
        if where is None and mode != "disabled":
            # wandb writes <dir>/wandb/, and its own links there
            where = str(_study_dir(study, self.DIR, links=True).parent)
        if mode not in ("offline", "disabled", "dryrun"):
            try:
                ok = wandb.login(prompt=False, verify=True, timeout=20)
            except Exception as e:  # noqa: BLE001 -- whatever W&B raises, the spec's
                raise SpecError("run.callbacks", f"wandb cannot log in ({type(e).__name__}: "
                                f"{_first_line(e)}); allowed: a valid $WANDB_API_KEY, or "
                                "WANDB_MODE=offline") from None
            if not ok:
                raise SpecError("run.callbacks", "wandb is not logged in; allowed: "
                                "$WANDB_API_KEY (or `wandb login`), or WANDB_MODE=offline")
        self._init = dict(project=self.project or os.environ.get("WANDB_PROJECT") or name,
                          mode=mode, dir=where, study_id=study_id, experiment=experiment)
        self._runs, self._last = {}, {}
        log.info("wandb: project %r (%s), one run per member", self._init["project"], mode)

    def _begin(self, key: str, table: dict[str, dict[str, Any]]) -> None:
        import wandb  # lazy: wandb

        i = self._init
        for mid, row in table.items():
            h = str(row["config_hash"])
            if h in self._runs:
                continue
            # One id per study and member: a resumed member continues its run.
            rid = f"{h}-{hashlib.sha256(i['study_id'].encode()).hexdigest()[:8]}"
            self._runs[h] = wandb.init(
                project=i["project"], mode=i["mode"], dir=i["dir"], id=rid,
                name=run_name(row), group=f"trial-{key}", job_type="member",
                config=dict(row, **{"wdsweep.study_id": i["study_id"],
                                    "wdsweep.experiment": i["experiment"],
                                    "wdsweep.trial": key, "wdsweep.member": mid}),
                reinit="create_new", resume="allow", allow_val_change=True,
                settings=wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                        save_code=False))

    def _metrics(self, key: str, table: dict[str, dict[str, Any]], step: int,
                 per: dict[int, dict[str, float]], pack: dict[str, float]) -> None:
        for mid, row in table.items():
            h, k = str(row["config_hash"]), parse_member_id(mid)
            run = self._runs.get(h)
            if run is not None and k in per and step > self._last.get(h, -1):
                run.log(per[k], step=step)
                self._last[h] = step

    def _finish(self, key: str, table: dict[str, dict[str, Any]], status: str) -> None:
        for row in table.values():
            run = self._runs.pop(str(row["config_hash"]), None)
            if run is not None:
                run.finish(exit_code=0 if status == FINISHED else 1)

    def _close(self) -> None:
        for h in sorted(self._runs):  # a trial Tune never ended: left to `resume`
            self._runs.pop(h).finish(exit_code=1)

