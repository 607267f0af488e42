"""Table cells for the report: "—" for a missing value, yes/no, numbers to 4 digits,
intervals, and the one order of every per-cell table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from analysis._verdict import MISSING, g, interval


def cell(v: Any) -> str:
    """A table cell: "—" for missing, yes/no for booleans, numbers to 4 digits."""
    if v is None or v is pd.NA or (isinstance(v, float) and not math.isfinite(v)):
        return MISSING
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return "yes" if v else "no"
    if isinstance(v, (int, float)) or pd.api.types.is_number(v):
        return g(float(v), 4)
    return str(v) if str(v) not in ("nan", "None", "NaT", "<NA>") else MISSING


def table(df: pd.DataFrame) -> dict[str, Any]:
    return {"head": [str(c) for c in df.columns],
            "rows": [[cell(v) for v in row] for row in df.itertuples(index=False)]}


def _sort_key(v: Any) -> tuple[int, float, str]:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return (1, 0.0, str(v))
    return (0, x, "") if math.isfinite(x) else (1, 0.0, str(v))


def ordered(cells: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The cells sorted by their axes (the cell keys in order, numbers as numbers), then
    by label: the order of every per-cell table."""
    ks = [k for k in keys if k in cells] + ["cell"]
    order = sorted(range(len(cells)), key=lambda i: [_sort_key(cells[k].iloc[i]) for k in ks])
    return cells.iloc[order]


def with_ci(df: pd.DataFrame, col: str, missing: str = MISSING) -> list[str]:
    if col not in df:
        return [missing] * len(df)
    return [interval({"estimate": e, "ci_low": lo, "ci_high": hi}, missing=missing)
            for e, lo, hi in zip(df[col], df.get(f"{col}_ci_low", df[col] * math.nan),
                                 df.get(f"{col}_ci_high", df[col] * math.nan))]




def true(v: Any) -> bool:
    return isinstance(v, bool) and v or type(v).__name__ == "bool_" and bool(v)
