"""What `sweep.run` / `sweep.resume` return: the outcome (a dict, as before) that also
opens the study's tables and commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


class SweepResult(dict):
    """The run's outcome (`completed`, `errored`, `ran`, ...; a dry run's `plan`) plus:

    * `.study` -- the study directory;
    * `.results` -- results.csv as a DataFrame (one row per member: resolved config,
      `last_<metric>`, status); `.history` -- history.csv (one row per member per
      evaluation); both read fresh on each access, checked against study.json;
    * `.status()` -- as `wdsweep status --json` (counts and the per-member table);
    * `.analyze(out=None, **kw)` -- `analysis.analyze` on the study: an Analysis with
      DataFrames (.runs, .cells, .seeds, .curves) and the fit as a dict (.fit); with
      `out`, the report is written there too.
    """

    def __init__(self, study: Path, outcome: dict[str, Any]) -> None:
        super().__init__(outcome)
        self.study = Path(study)

    def _table(self, name: str) -> pd.DataFrame:
        from sweep.store import study as st  # lazy: `import sweep` stays light until it is used

        st.check(self.study)
        return st._read_table(self.study, name)

    @property
    def results(self) -> pd.DataFrame:
        from sweep.store.study import RESULTS  # lazy: `import sweep` stays light until it is used

        return self._table(RESULTS)

    @property
    def history(self) -> pd.DataFrame:
        from sweep.store.study import HISTORY  # lazy: `import sweep` stays light until it is used

        return self._table(HISTORY)

    def status(self) -> dict[str, Any]:
        from sweep.store.status import status  # lazy: `import sweep` stays light until it is used

        return status(self.study)

    def analyze(self, out: str | Path | None = None, **kw: Any):
        from analysis import analyze  # lazy: matplotlib only for a report

        return analyze(self.study, out, **kw)
