"""Experiment names: a new experiment never takes a name the study already knows.

An experiment's name is the key of its records (plans/<name>.json, specs/<name>.toml) and
of its members' `experiment` column. A study started by `wdsweep import` holds the names
of the study it came from -- in its tables' `experiment` column, its copied specs and its
refine record -- under one experiment, "imported"; numbering new experiments by their
count (exp-001 after an import) would give an imported name a second meaning and write
the new spec over the imported one. So the next name is one past every exp-NNN the
study's record, its record folders and its imported names use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sweep.store.fs import PLANS, SPECS
from trainer.errors import StudyDamaged

_NUM = re.compile(r"^exp-(\d{3,6})$")
_LAST = 999_999  # exp-NNNNNN: study.EXP_NAME's widest name


def last_name(values: Iterable[Any]) -> str | None:
    """The highest-numbered exp-NNN among `values` (a table's column, file stems), if any."""
    nums = [int(m.group(1)) for v in values if isinstance(v, str) and (m := _NUM.match(v))]
    return f"exp-{max(nums):03d}" if nums else None


def next_experiment(study: Path, state: dict[str, Any]) -> str:
    """The name of the study's next experiment. The current refine record's rounds are
    not counted: they name this study's own experiments, or the one about to start
    (sweep.runner.refine records a round's name just before the driver starts it);
    earlier records' rounds are (they may name an imported study's experiments)."""
    names = [e["name"] for e in state["experiments"]]
    for e in state["experiments"]:
        names.append(e.get("last"))  # the highest name an import's source used (.publish)
    rec = state.get("refine")
    for r in rec.get("earlier", []) if isinstance(rec, dict) else []:
        names += [x["experiment"] for x in r.get("rounds", [])]
    for folder in (PLANS, SPECS):
        d = study / folder
        if d.is_dir() and not d.is_symlink():  # only names are read here, never a file
            names += [p.name.rsplit(".", 1)[0] for p in d.iterdir()]
    nums = [int(m.group(1)) for n in names if isinstance(n, str) and (m := _NUM.match(n))]
    n = max([len(state["experiments"]) - 1, *nums]) + 1
    if n > _LAST:
        raise StudyDamaged(study, "study.json", f"uses experiment names up to exp-{_LAST}; "
                           "no name is left for a new experiment (start a new study)")
    return f"exp-{n:03d}"
