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

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sweep.store import study as st
from sweep.store.fs import PLANS, SPECS
from trainer.errors import SpecError

LAST = 999_999  # exp-NNNNNN: study.EXP_NAME's widest name


def number(name: str) -> int:
    """The NNN of an exp-NNN name (study.EXP_NAME)."""
    return int(name[4:])


def last_name(values: Iterable[Any]) -> str | None:
    """The highest-numbered exp-NNN among `values` (a table's column, file stems), if any."""
    names = [v for v in values if isinstance(v, str) and st.EXP_NAME.match(v)]
    return max(names, key=number) if names else None


def next_experiment(study: Path, state: dict[str, Any]) -> str:
    """The name of the study's next experiment: one past its experiments, the rounds its
    refine records name (this spec's, earlier ones', an imported study's), what an import
    recorded of its source (`last`; for a study imported before it was recorded, the
    tables' experiment column) and the names in plans/ and specs/."""
    names = [e["name"] for e in state["experiments"]]
    for e in state["experiments"]:
        names.append(e.get("last"))  # the highest name an import's source used (.publish)
    rec = state.get("refine")
    for r in [rec, *rec.get("earlier", [])] if isinstance(rec, dict) else []:
        names += [x["experiment"] for x in r.get("rounds", [])]
    if any(e["status"] == "imported" and "last" not in e for e in state["experiments"]):
        names += _column(study)
    for folder in (PLANS, SPECS):
        d = study / folder
        if d.is_dir() and not d.is_symlink():  # only names are read here, never a file
            names += [p.name.rsplit(".", 1)[0] for p in d.iterdir()]
    last = last_name(names)
    n = max(len(state["experiments"]) - 1, number(last) if last else -1) + 1
    if n > LAST:
        raise SpecError("--study", f"{study}: its records or imported tables use experiment "
                        f"names up to exp-{LAST}; no name is left for a new experiment "
                        "(start a new study)")
    return f"exp-{n:03d}"


def _column(study: Path) -> list[Any]:
    """The experiment column of results.csv (regular file only), for old imports."""
    res = st.read_results(study)
    return res["experiment"].dropna().unique().tolist() if "experiment" in res else []
