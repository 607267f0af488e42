"""Reading the three input kinds into one raw table (I/O only, no science).

* a study directory written by ``wdsweep run``: ``results.csv`` (+ ``history.csv``),
  either possibly gzipped (``.csv.gz``, as published studies keep them);
* a plain Ray Tune experiment directory: ``<trial>/params.json`` with
  ``progress.csv`` or ``result.json`` -- read with pandas and json, never ray;
* a CSV or Parquet table, or a DataFrame handed in directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis._capped import open_inflated
from analysis._schema import BOOKKEEPING, FINAL, LAST, AnalysisError
from trainer.schema import parse_member_id, split_member_key, trial_table

_TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq")


@dataclass
class Raw:
    frame: pd.DataFrame
    kind: str  # "study", "tune", "table"
    notes: list[str] = field(default_factory=list)


def read(src: str | Path | pd.DataFrame) -> Raw:
    if isinstance(src, pd.DataFrame):
        return Raw(src.copy(), "table")
    p = Path(src)
    if not p.exists():
        raise AnalysisError(f"{p}: no such file or directory")
    if p.is_dir():
        if _table_in(p, "results") is not None:
            return _study(p)
        trials = sorted({q.parent for q in (*p.glob("*/params.json"), *p.glob("*/*/params.json"))})
        if trials:
            return _tune(trials)
        raise AnalysisError(f"{p}: not a study (no results.csv) nor a Ray Tune experiment "
                            "(no <trial>/params.json)")
    if not p.name.lower().endswith(_TABLE_SUFFIXES):
        raise AnalysisError(f"{p}: unsupported file type; give a study or Ray Tune directory, "
                            "or a .csv / .parquet table")
    return Raw(_table(p), "table")


def _csv(p: Path) -> pd.DataFrame:
    sep = "\t" if p.name.endswith((".tsv", ".tsv.gz")) else ","
    try:
        if p.name.endswith(".gz"):  # bounded: a published table is someone else's data
            with open_inflated(p) as f:
                return pd.read_csv(f, sep=sep)
        return pd.read_csv(p, sep=sep)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise AnalysisError(f"{p}: not a readable CSV ({str(e).splitlines()[0]})") from e


def _table(p: Path) -> pd.DataFrame:
    if p.suffix.lower() in (".parquet", ".pq"):
        try:
            return pd.read_parquet(p)
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise AnalysisError(f"{p}: not a readable Parquet file ({e})") from e
    return _csv(p)


def _table_in(p: Path, name: str) -> Path | None:
    """STUDY/name.csv, or its gzipped copy (published studies keep their tables gzipped)."""
    return next((q for q in (p / f"{name}.csv", p / f"{name}.csv.gz") if q.exists()), None)


def _study(p: Path) -> Raw:
    rp = _table_in(p, "results")
    res = _csv(rp)
    if res.empty:
        raise AnalysisError(f"{rp}: no runs recorded yet")
    hp = _table_in(p, "history")
    hist = _csv(hp) if hp is not None else pd.DataFrame()
    if hist.empty or "config_hash" not in hist or "config_hash" not in res:
        return Raw(res, "study", ["no history.csv: final metrics only (no curves)"])
    # Config from results.csv, metrics from history.csv, joined on config_hash.
    finals = [c for c in res.columns if c.startswith((LAST, FINAL))]
    cfg = res.drop(columns=finals)
    metric_cols = ["config_hash", *[c for c in hist.columns if c not in cfg.columns]]
    per_eval = cfg.merge(hist[metric_cols], on="config_hash", how="inner")
    # Completed runs missing from history keep their final metrics as one evaluation.
    lone = res[~res["config_hash"].isin(hist["config_hash"])]
    notes = []
    if len(lone) and "status" in lone and (lone["status"] == "completed").any():
        notes.append(f"{int((lone['status'] == 'completed').sum())} completed runs have no "
                     "history rows: their final metrics are used")
    return Raw(pd.concat([per_eval, lone], ignore_index=True), "study", notes)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}/"))
        elif isinstance(v, (list, tuple)):
            out[key] = ",".join(str(x) for x in v)  # as the study writes train_digits
        else:
            out[key] = v
    # Nested param spaces: use leaf names where that is unambiguous.
    leaves = [k.rsplit("/", 1)[-1] for k in out]
    return {(leaf if leaves.count(leaf) == 1 else k): v for k, leaf, v in
            zip(out, leaves, out.values())}


def _metrics(trial: Path) -> pd.DataFrame:
    prog = trial / "progress.csv"
    df = _csv(prog) if prog.exists() else pd.DataFrame()
    if df.empty and (trial / "result.json").exists():
        lines = (trial / "result.json").read_text().splitlines()
        rows = [json.loads(s) for s in lines if s.strip()]
        df = pd.json_normalize(rows, sep="/") if rows else pd.DataFrame()
    drop = [c for c in df.columns if str(c).startswith("config/") or c == "config"
            or (c in BOOKKEEPING and c != "trial_id")]
    return df.drop(columns=drop) if drop else df


def _members(params: dict[str, Any], m: pd.DataFrame, errored: bool) -> pd.DataFrame | None:
    """A wdsweep trial's reports unpacked: member KK's metrics are `mKK/<metric>`, the
    config's `trial/table/mKK` says which member that is (the codec: trainer.schema).
    None for any other trainable."""
    table = trial_table(params)
    if table is None or m.empty:
        return None
    at = "eval_step" if "eval_step" in m else "step"
    done = bool(m["finished"].fillna(False).astype(bool).iloc[-1]) if "finished" in m else True
    status = "errored" if errored else "completed" if done else "running"
    per: dict[int, dict[str, str]] = {}  # member -> {its metric column: the metric}
    for c in m.columns:
        if (split := split_member_key(str(c))) is not None:
            per.setdefault(split[0], {})[c] = split[1]
    frames = []
    for key, hp in table.items():
        k = parse_member_id(key)  # None: not a member's row
        cols = per.get(k, {}) if k is not None else {}
        if not cols or at not in m:
            continue
        f = m[[at, *cols]].rename(columns={**cols, at: "step"})
        f = f.dropna(subset=["step"]).drop_duplicates("step", keep="last")
        frames.append(f.assign(**hp, run=str(hp.get("config_hash", key)), status=status))
    return pd.concat(frames, ignore_index=True) if frames else None


def _tune(trials: list[Path]) -> Raw:
    frames, plain, configs = [], [], []
    for t in trials:
        try:
            raw = json.loads((t / "params.json").read_text())
            cfg = _flatten(raw)
        except (OSError, json.JSONDecodeError) as e:
            raise AnalysisError(f"{t / 'params.json'}: unreadable ({e})") from e
        m = _metrics(t)
        errored = (t / "error.txt").exists() or (t / "error.pkl").exists()
        packed = _members(raw, m, errored)
        if packed is not None:  # a wdsweep trial: one run per member, not the pack's mean
            frames.append(packed)
            continue
        reported = not m.empty
        # Ray 2.60 writes done=False even in a finished trial's last row, so a trial that
        # reported is taken as finished; one stopped early cannot be told apart here.
        status = "errored" if errored else ("completed" if reported else "pending")
        plain.append(m if reported else pd.DataFrame([{}]))
        configs.append({**cfg, "run": t.name, "status": status})
    if plain:
        frames.append(_with_config(plain, configs))
    df = pd.concat(frames, ignore_index=True)
    df = df.drop(columns=["trial_id"], errors="ignore")
    return Raw(df, "tune")


def _with_config(metrics: list[pd.DataFrame], configs: list[dict[str, Any]]) -> pd.DataFrame:
    """Each trial's config on each of its rows, joined once for all trials (a column set
    per trial was most of the load at 10^3 trials). Where a trial reports a config key as
    a metric too, the config's value wins, as it is what the trial ran with."""
    m = pd.concat(metrics, ignore_index=True)
    cfg = pd.DataFrame(configs)
    cfg = cfg.iloc[np.repeat(np.arange(len(cfg)), [len(x) for x in metrics])]
    cfg = cfg.reset_index(drop=True)
    both = [c for c in cfg.columns if c in m.columns]
    for c in both:
        cfg[c] = cfg[c].combine_first(m[c])
    return pd.concat([m.drop(columns=both), cfg], axis=1)
