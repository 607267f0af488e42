"""Which rows make one run, and the checks that keep run names out of the cell keys.

A results table exported from a tracker (W&B, MLflow, Optuna, Ray Tune) names its runs
in a column -- ``run_id``, ``name``, ``trial_id``, ... Taken for a config axis, such a
column makes every run its own cell: no λ curve, no fit, and no error. So:

* a column named like a run id (`RUN_NAMES`) that is constant within a run (every known
  config column has one value per name) and distinct across runs (no step repeats
  within a name) becomes the run key; other run-id columns that are constant within a
  run are labels, never cell keys;
* ``run_col`` names the key explicitly; ``ignore`` drops columns before anything else;
* after the cells are formed, a column the analysis does not know that holds a different
  value in every run is refused, naming the two options, and so is a table whose cells
  each hold a single λ although it has several.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from analysis._schema import AXES, CURVE_KEYS, KNOWN_CONFIG, LENGTH_KEYS, AnalysisError

# Spellings of a run's name or id in the exports we know of, most specific first.
RUN_NAMES = ("run", "run_id", "run_name", "runid", "run_uuid", "trial_id", "trial_name",
             "trial_number", "config_hash", "experiment_key", "uuid", "id", "name", "number")
# Known config columns that may legitimately change along a run (a current epoch counter).
_MAY_GROW = frozenset(LENGTH_KEYS)


def _norm(name: object) -> str:
    """'Run ID', 'run-id' and 'run_id' are one spelling."""
    return re.sub(r"[\s\-.]+", "_", str(name).strip().lower())


def _found(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns[:20])) + (", ..." if len(df.columns) > 20 else "")
        raise AnalysisError(f"{what}: no column named {', '.join(missing)} (columns: {have})")


def _violation(df: pd.DataFrame, key: str, steps: bool = True) -> str | None:
    """Why `key` cannot be the run key (None when it can): a known config column that
    varies within one of its values, or (with `steps`) a step that repeats within one."""
    codes = pd.Series(pd.factorize(df[key])[0], index=df.index)  # ints group fast
    g = df.groupby(codes, sort=False)
    for c in (c for c in df.columns if c in KNOWN_CONFIG and c not in _MAY_GROW):
        n = g[c].nunique(dropna=True)
        if (n > 1).any():
            return f"{c} varies within {key} = {df[key].iloc[(codes == n.idxmax()).argmax()]!r}"
    if not steps:
        return None
    step = next((c for c in CURVE_KEYS if c in df), None)
    if step is None:
        return f"{key} repeats in a table with one row per run" if codes.duplicated().any() \
            else None
    at = pd.DataFrame({"k": codes, "s": df[step]}).dropna()
    return f"{step} repeats within one {key}" if at.duplicated().any() else None


def identify(df: pd.DataFrame, run_col: str | None, ignore: Sequence[str],
             notes: list[str]) -> pd.DataFrame:
    """`df` with `ignore` dropped and, where a run key is found, its values in `run`
    (other run-id columns dropped: they label runs, they are never cell axes)."""
    if ignore:
        _found(df, list(ignore), "--ignore")
        df = df.drop(columns=list(ignore))
    spelled = {_norm(c): c for c in df.columns}
    if run_col is not None:
        _found(df, [run_col], "--run-col")
        why = _violation(df, run_col, steps=False)  # asked for: only the config must hold
        if why:
            raise AnalysisError(f"--run-col {run_col}: not a run key ({why})")
        key = run_col
    elif "run" in df:
        key = "run"
    else:
        named = [spelled[n] for n in RUN_NAMES if n in spelled and spelled[n] != "config_hash"]
        key = next((c for c in named if df[c].notna().all() and _violation(df, c) is None),
                   None)
        if key is None:
            return df  # config_hash or the config itself identify runs (_normalize)
        notes.append(f"runs are identified by the column {key!r}")
    if key != "run":
        df = df.assign(run=df[key].astype(str))
    labels = [c for n, c in spelled.items() if n in RUN_NAMES and c not in (key, "run",
              "config_hash") and df.groupby("run")[c].nunique(dropna=False).max() <= 1]
    return df.drop(columns=[c for c in [key, *labels] if c != "run"])


def refuse_run_names(runs: pd.DataFrame, keys: list[str]) -> None:
    """One line when a cell key the analysis does not know holds a different value in
    every run (a run name or a per-run measurement): each cell would hold one run."""
    if len(runs) < 2:
        return
    odd = [k for k in keys if k not in AXES and k not in KNOWN_CONFIG
           and runs[k].nunique(dropna=False) == len(runs)]
    # A text column is likelier the run's name, a number a per-run measurement: name it first.
    odd.sort(key=lambda k: pd.api.types.is_numeric_dtype(runs[k]))
    if odd:
        c = odd[0]
        others = f" (also {', '.join(odd[1:])})" if len(odd) > 1 else ""
        raise AnalysisError(
            f"column {c!r} has a different value in each of the {len(runs)} runs{others}, "
            f"so every cell would hold one run: if it names runs pass --run-col {c} "
            f"(run_col={c!r}), else leave it out with --ignore {' '.join(odd)} "
            f"(ignore={odd!r})")


def refuse_single_lambda(runs: pd.DataFrame, keys: list[str]) -> None:
    """One line when the table has several λ > 0 but every cell holds at most one and the
    cells split on a column the analysis does not know: it moves with λ (a label of the
    decay, a run tag), and the report would be empty. A design of known axes with one λ
    per cell (λ_norm fixed, T varied) is legitimate: `_analysis` warns about it instead."""
    pos = runs[runs["lam"] > 0]
    per_cell = pos.groupby("cell")["lam"].nunique()
    suspects = [k for k in keys if k not in AXES and k not in KNOWN_CONFIG]
    if not suspects or pos["lam"].nunique() < 2 or per_cell.empty or per_cell.max() > 1:
        return
    raise AnalysisError(
        f"each of the {len(per_cell)} cells holds a single λ > 0 although the table has "
        f"{pos['lam'].nunique()}: the cells split on {', '.join(suspects)}; if one of these "
        "names runs pass --run-col COL, if it is not a config axis pass --ignore COL")
