"""Atomic, verified checkpoints that load with torch.load(weights_only=True).

Each checkpoint is `state-<step>.pt` plus a `.sha256` sidecar, written to a
temporary name, fsynced and renamed into place, so a crash leaves either the
old file or the new one. The newest two are kept: when the newest fails its
checksum or will not load, the one before it is used and the failure reported.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from trainer.fsutil import atomic_write_bytes

KEEP = 2
_NAME = re.compile(r"^state-([0-9]+)\.pt\Z")


def save(ckpt_dir: Path, step: int, state: dict[str, Any]) -> Path:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"state-{step:09d}.pt"
    tmp = ckpt_dir / f".{path.name}.tmp-{os.getpid()}"
    torch.save(state, tmp)
    data = tmp.read_bytes()
    tmp.unlink()
    # The sidecar goes first: a data file without a matching sidecar is never trusted.
    atomic_write_bytes(path.with_suffix(".sha256"), hashlib.sha256(data).hexdigest().encode())
    atomic_write_bytes(path, data)
    for old in list_checkpoints(ckpt_dir)[KEEP:]:
        old.unlink()
        old.with_suffix(".sha256").unlink(missing_ok=True)
    return path


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Newest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir() if _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)), reverse=True)  # type: ignore[union-attr]


def load_latest(ckpt_dir: Path, warn: Callable[[str], None]) -> dict[str, Any] | None:
    """The newest checkpoint that verifies and loads; None when there is none."""
    paths = list_checkpoints(ckpt_dir)
    for i, path in enumerate(paths):
        try:
            return _load_verified(path)
        except (OSError, RuntimeError, ValueError, EOFError, KeyError) as e:
            fallback = f"falling back to {paths[i + 1].name}" if i + 1 < len(paths) else (
                "no earlier checkpoint: starting from step 0")
            warn(f"WARNING: checkpoint {path} is unusable ({type(e).__name__}: {e}); {fallback}")
    return None


def _load_verified(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    side = path.with_suffix(".sha256")
    if not side.exists() or side.read_text().strip() != hashlib.sha256(data).hexdigest():
        raise ValueError("checksum mismatch (truncated or corrupt)")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)  # the bytes checked
    if not isinstance(state, dict) or "step" not in state:
        raise ValueError("not a wdsweep checkpoint")
    return state
