"""One canonical per-evaluation table from any raw input.

Canonical columns: ``run`` (id), ``seed``, ``lam`` (the decay in ``Frame.unit``),
the three decay units where computable, ``lr``, ``batch_size`` (b), ``train_size``
(B), ``T`` (epochs, fractional), ``step``, the metrics, and ``cell`` (a label of
the cell keys: every config column that varies, except λ, seeds and execution).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import _runs
from analysis._load import Raw
from analysis._schema import (
    AXES,
    BOOKKEEPING,
    CURVE_KEYS,
    DECAY_UNITS,
    FINAL,
    KNOWN_CONFIG,
    LAST,
    METRICS,
    NOT_CELL,
    AnalysisError,
)
from trainer import units
from trainer.config import FIELDS
from trainer.schedule import SCHEDULES, Schedule, warmup_steps

_DONE = ("completed", "terminated")


@dataclass
class Frame:
    hist: pd.DataFrame  # one row per run per evaluation (one per run without curves)
    keys: list[str]  # cell keys, scaling axes first
    unit: str  # which decay unit `lam` is in
    curves: bool  # runs have several evaluations along `step`
    kind: str
    warnings: list[str] = field(default_factory=list)


def normalize(raw: Raw, run_col: str | None = None, ignore: Sequence[str] = ()) -> Frame:
    """`run_col`: the column naming runs (else found by name, see `_runs`); `ignore`:
    columns left out of the analysis altogether."""
    # The loader owns raw.frame (a DataFrame handed in is copied there): changed in place,
    # never copied again -- at 10^4 runs the history is the memory.
    df, notes = raw.frame, list(raw.notes)
    if df.empty or not len(df.columns):
        raise AnalysisError("the input has no rows")
    df = _runs.identify(_finals_as_metrics(df), run_col, ignore, notes)
    if "precision" in df:  # the trainer leaves its default (fp32) out of the tables
        df["precision"] = df["precision"].fillna(FIELDS["precision"].default)
    cfg = _config_columns(df)
    df = _run_ids(df, cfg, notes)
    df = _completed(df, notes)
    _require_accuracy(df)
    _length(df, notes)
    _decay_steps(df)
    df, unit = _decay(df, notes)
    curves = _steps(df, notes)
    keys = _cell_keys(df, cfg)
    runs = df.drop_duplicates("run")  # label runs, not every evaluation
    _runs.refuse_run_names(runs, keys)
    df["cell"] = df["run"].map(dict(zip(runs["run"], labels(runs, keys))))
    _runs.refuse_single_lambda(df.drop_duplicates("run"), keys)
    return Frame(df.reset_index(drop=True), keys, unit, curves, raw.kind, notes)


def fmt(v: object) -> str:
    """A value as it appears in cell labels: floats to 6 significant digits."""
    if isinstance(v, (float, np.floating)):
        return "nan" if not math.isfinite(v) else f"{v:.6g}"
    return str(v)


def labels(df: pd.DataFrame, keys: list[str]) -> pd.Series:
    """'b=64, T=100' per row. Each distinct value is formatted once and the parts joined
    as arrays: a row-wise join was seconds at 10^4 runs."""
    if not keys:
        return pd.Series("all runs", index=df.index)
    out = None
    for k in keys:
        codes, uniq = pd.factorize(df[k], use_na_sentinel=False)  # NaN is a value here
        part = np.array([f"{AXES.get(k, k)}={fmt(v)}" for v in uniq], dtype=object)[codes]
        out = part if out is None else out + ", " + part
    return pd.Series(out, index=df.index)


def _num(df: pd.DataFrame, c: str) -> pd.Series:
    if c not in df:
        return pd.Series(np.nan, index=df.index)
    return pd.to_numeric(df[c], errors="coerce").astype(float)


def _finals_as_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """last_X / final_X columns stand in for X where a run has no evaluation rows."""
    # final_ first, then last_: where both exist, the value at the last evaluation wins.
    finals = {c: c[len(p):] for p in (FINAL, LAST) for c in df.columns if c.startswith(p)}
    no_history = df["step"].isna() if "step" in df else pd.Series(True, index=df.index)
    for c, m in finals.items():
        df[m] = df[m].where(~no_history, df[c]) if m in df else df[c]
    return df.drop(columns=list(finals))


def _config_columns(df: pd.DataFrame) -> list[str]:
    """Columns that describe a run: not metrics, not bookkeeping, constant within a run."""
    cand = [c for c in df.columns if c not in BOOKKEEPING and c not in METRICS
            and c not in CURVE_KEYS and not c.startswith((LAST, FINAL))]
    by = "run" if "run" in df else "config_hash" if "config_hash" in df else None
    known = [c for c in cand if c in KNOWN_CONFIG]
    if by is None and not (known and any(k in df for k in CURVE_KEYS)):
        return cand
    g = df.groupby(by if by else known, dropna=False)
    extra = [c for c in cand if c not in known]
    return known + [c for c in extra if (g[c].nunique(dropna=False) <= 1).all()]


def _run_ids(df: pd.DataFrame, cfg: list[str], notes: list[str]) -> pd.DataFrame:
    if "run" not in df:
        if "config_hash" in df and df["config_hash"].notna().all():
            df["run"] = df["config_hash"].astype(str)
        else:
            # One id per distinct config, vectorized (a row-wise string join was minutes
            # at 10^5 runs); dropna=False keeps configs with missing values apart.
            ids = (df.groupby(cfg, dropna=False, sort=False).ngroup() if cfg else
                   pd.Series(range(len(df)), index=df.index))
            df["run"] = "run" + ids.astype(str)
    per_eval = any(k in df for k in CURVE_KEYS)
    if not per_eval and df["run"].duplicated().any():
        rep = df.groupby("run").cumcount()
        df["run"] = df["run"] + "#" + rep.astype(str)
        if "seed" not in df:
            df["seed"] = rep
            notes.append("no seed column: rows with identical configs are taken as seeds")
    if "seed" not in df:
        df["seed"] = _replicates(df, [c for c in cfg if c in df and c != "run"], notes)
    df["seed"] = df["seed"].fillna(0)
    return df


def _replicates(df: pd.DataFrame, cfg: list[str], notes: list[str]) -> pd.Series | int:
    """Without a seed column, named runs (run_id, ...) of one config are its replicates:
    numbered 0, 1, ... in order, never averaged into one seed."""
    if not cfg:
        return 0
    runs = df.drop_duplicates("run")
    rep = runs.groupby(cfg, dropna=False, sort=False).cumcount()
    if not rep.any():
        return 0
    notes.append("no seed column: runs with identical configs are taken as seeds")
    return df["run"].map(dict(zip(runs["run"], rep)))


def _completed(df: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    if "status" not in df:
        return df
    st = df.drop_duplicates("run")["status"].fillna("unknown").astype(str).str.lower()
    ok = st.isin(_DONE)
    if not ok.any():
        if (st == "errored").all():
            raise AnalysisError(f"all {len(st)} runs errored: nothing to analyze")
        counts = ", ".join(f"{n} {s}" for s, n in st.value_counts().items())
        raise AnalysisError(f"no completed runs ({counts}): nothing to analyze yet")
    if not ok.all():
        counts = ", ".join(f"{n} {s}" for s, n in st[~ok].value_counts().items())
        notes.append(f"left out {int((~ok).sum())} runs that did not complete ({counts})")
    keep = df["status"].fillna("").astype(str).str.lower().isin(_DONE)
    return df if keep.all() else df[keep].copy()  # no second copy of a whole history


def _require_accuracy(df: pd.DataFrame) -> None:
    if "test_acc" not in df:
        found = ", ".join(map(str, df.columns[:15])) + (", ..." if len(df.columns) > 15 else "")
        raise AnalysisError("missing column test_acc (or final_test_acc): the analysis needs "
                            f"a test accuracy per run; found: {found}")
    if not np.isfinite(_num(df, "test_acc")).any():
        n = df["run"].nunique()
        raise AnalysisError(f"test_acc is NaN in all {n} runs: no accuracy to analyze "
                            "(did every run diverge?)")


def _length(df: pd.DataFrame, notes: list[str]) -> None:
    """T (epochs, fractional), one value per run: epochs_T, else epochs, else steps /
    floor(B/b), else d/λ_norm; where none says (λ = 0 runs of a per-evaluation table have
    d = λ_norm = 0), the run's last step / floor(B/b)."""
    b, B = _num(df, "batch_size"), _num(df, "train_size")
    spe = np.floor(B / b)
    T = _num(df, "epochs_T").fillna(_num(df, "epochs"))
    T = T.fillna(_num(df, "steps") / spe).fillna(_num(df, "total_steps") / spe)
    # The trainer's metrics.csv has no length but both d and λ_norm: d/λ_norm = sqrt(b/(B·T)),
    # i.e. the T at which norm_factor(b, B, T) = k; norm_factor(b, B, 1) / k squared.
    k = _num(df, "decay_per_step") / _num(df, "lambda_norm")
    T = T.fillna(((units.norm_factor(b, B, 1.0) / k) ** 2).where(np.isfinite(k) & (k > 0)))
    # A run has one length: a column that grows along it (a tracker's current epoch) gives
    # its last value, and every evaluation of the run converts its decay at that one T.
    T = T.groupby(df["run"]).transform("max")
    last = _num(df, "step").groupby(df["run"]).transform("max") / spe
    gap = T.isna() & last.notna()
    if gap.any():
        T = T.fillna(last)
        notes.append(f"{df.loc[gap, 'run'].nunique()} runs have no length column (nor both "
                     "d and λ_norm): their T is their last step / floor(B/b)")
    df["T"], df["batch_size"], df["train_size"] = _sig(T), b, B
    missing = [n for n, s in (("batch_size", b), ("train_size", B), ("epochs or steps", T))
               if not s.notna().any()]
    if missing:
        notes.append(f"missing {', '.join(missing)}: λ_norm, τ_epoch and the scaling-rule fit "
                     "need b, B and T; per-cell best λ is still reported")


def _decay_steps(df: pd.DataFrame) -> None:
    """`decay_steps` per run: Σ_k f(k) of its learning-rate schedule over its S steps
    (trainer.schedule; S for the constant schedule), so the run's integrated decay is
    D = d·decay_steps (trainer.units.integrated_decay). Schedule columns absent from a
    table are the trainer's defaults (constant, no warmup); S is total_steps, else
    T·floor(B/b)."""
    S = _num(df, "total_steps").fillna(
        (df["T"] * np.floor(df["train_size"] / df["batch_size"])).round())
    kind = df["lr_schedule"].fillna("constant") if "lr_schedule" in df else \
        pd.Series("constant", index=df.index)
    w, m = _num(df, "warmup").fillna(0.0), _num(df, "lr_min").fillna(0.0)
    key = pd.DataFrame({"k": kind.astype(str), "S": S, "w": w, "m": m})
    out = pd.Series(np.nan, index=df.index)
    for (k, s, wu, lm), idx in key.groupby(["k", "S", "w", "m"], dropna=True).groups.items():
        if k in SCHEDULES and s >= 1 and math.isfinite(s):
            sched = Schedule(k, int(s), warmup_steps(wu, int(s)), lm)
            out[idx] = sched.integral()
    df["decay_steps"] = out


def _sig(x: pd.Series, digits: int = 10) -> pd.Series:
    """x to `digits` significant digits: T from sqrt(b/(B·T)) comes back as 384.99999999995,
    which must be the same T (and the same cell) as the 385 given elsewhere."""
    v = x.to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 10.0 ** (digits - 1 - np.floor(np.log10(np.abs(v))))
        out = np.where(np.isfinite(scale) & (v != 0), np.round(v * scale) / scale, v)
    return pd.Series(out, index=x.index)


def _decay(df: pd.DataFrame, notes: list[str]) -> tuple[pd.DataFrame, str]:
    have = [u for u in DECAY_UNITS if _num(df, u).notna().any()]
    if not have:
        raise AnalysisError("missing a weight-decay column: need numbers in one of "
                            f"{', '.join(DECAY_UNITS)} (in the config or the table)")
    lr = _num(df, "lr")
    b, B, T = df["batch_size"], df["train_size"], df["T"]
    lam = _num(df, "lambda_norm")
    # Each unit converts through trainer.units, the one place the formulas live.
    d = (lr * _num(df, "weight_decay")).fillna(_num(df, "decay_per_step"))
    d = d.fillna(lam * units.norm_factor(b, B, T))
    df["weight_decay"] = _num(df, "weight_decay").fillna(d / lr)
    df["decay_per_step"], df["lr"] = d, lr
    df["lambda_norm"] = lam.fillna(units.to_lambda_norm(d, b, B, T))
    if "weight_decay" in have and not lr.notna().any():
        notes.append("missing lr: the per-step decay d = lr·weight_decay is unknown, so no "
                     "scaling-rule fit; per-cell best weight_decay is still reported")
    # Analyse in the first unit every run has (PyTorch's, when lr is known).
    counts = {u: int(df[u].notna().sum()) for u in DECAY_UNITS}
    unit = max(DECAY_UNITS, key=lambda u: (counts[u], -DECAY_UNITS.index(u)))
    df["lam"] = df[unit]
    bad = df["lam"].isna() | (df["lam"] < 0)
    if bad.any():
        notes.append(f"left out {df.loc[bad, 'run'].nunique()} runs without a valid {unit}")
        df = df[~bad].copy()
    return df, unit


def _steps(df: pd.DataFrame, notes: list[str]) -> bool:
    df["step"] = _num(df, "step")
    if (df.groupby("run").size() <= 1).all():
        return False
    if df["step"].isna().all():
        if "training_iteration" in df:
            df["step"] = _num(df, "training_iteration")
            notes.append("no step metric: curves use Tune's training_iteration as the step")
        else:
            df["step"] = df.groupby("run").cumcount() + 1.0
            notes.append("no step column: curves use the row order within a run as the step")
    return True


def _cell_keys(df: pd.DataFrame, cfg: list[str]) -> list[str]:
    runs = df.drop_duplicates("run")
    cand = [*AXES, *sorted(c for c in cfg if c not in NOT_CELL and c not in AXES)]
    return [c for c in cand if c in runs and runs[c].map(fmt).nunique() > 1]
