"""Shared pieces of the adversarial suite: an attacker's edits -- who can write the study
and recompute any checksum in it, but cannot read this user's key (sweep.store.trust).
The finished tiny study to attack (`finished_study`, copied per test as `study`) is
tests/conftest.py's, shared with the store's unit tests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweep.store import trust as _trust
from tests.sweep._helpers import spec_text

TINY = spec_text()  # the hardening tests' tiny study: 2 λ × 2 seeds, two packs

EVIL = "import pathlib\npathlib.Path({marker!r}).write_text('ran')\n" \
       "def task(seed, **kw):\n    raise SystemExit\ndef model(**kw):\n    raise SystemExit\n"


def evil_module(d: Path, name: str, marker: Path) -> Path:
    """d/name.py: a module that writes `marker` when imported."""
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.py").write_text(EVIL.format(marker=str(marker)))
    return d


def forge(study: Path, edit: Callable[[dict[str, Any]], None] | None = None,
          plan_edit: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Edit study.json (and exp-000's plan) as an attacker can: every sha256 made to
    match again, the HMAC left as it was (nobody but the user can make it)."""
    state = json.loads((study / "study.json").read_text())
    if plan_edit is not None:
        p = study / "plans" / "exp-000.json"
        plan = json.loads(p.read_text())
        plan_edit(plan)
        data = json.dumps(plan).encode()
        p.write_bytes(data)
        state["experiments"][0]["plan_sha256"] = hashlib.sha256(data).hexdigest()
    if edit is not None:
        edit(state)
    seal = state.get("seal", {})
    seal["sha256"] = hashlib.sha256(_trust.canonical(state)).hexdigest()
    state["seal"] = seal
    (study / "study.json").write_text(json.dumps(state))


def one_line(r, *needles: str) -> str:
    """The command failed with exit 2 and one line on stderr holding every needle."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]
