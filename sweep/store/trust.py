"""Who wrote a study's record, and what of it may run or be written to.

study.json carries a seal: the sha256 of its own content (damage: a bit flip, a torn
copy, an edit by hand) and an HMAC of the same bytes under a key that only the local
user can read (`~/.config/wdsweep/key`, or `$WDSWEEP_CONFIG_DIR/key`, made 0600 on
first use). Anyone who can write the study can recompute the sha256, nobody else can
make the HMAC: a study whose HMAC verifies was last written by this user's wdsweep.

What needs that trust (sweep.runner.driver, sweep.store.repair): importing the study's code
(its user task or model, the code directories it ships) and touching any path
outside the study directory (an experiment `uri` elsewhere, an S3 prefix). Without it
those commands stop with one line; `--trust-code` accepts the study as it is, says
what it accepted, and seals it under this user's key. Everything else a study holds
is data: read as JSON/CSV, written only inside the study.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from pathlib import Path
from typing import Any

from trainer.errors import SpecError

log = logging.getLogger(__name__)

SEAL = "seal"
KEY_ENV = "WDSWEEP_CONFIG_DIR"


def canonical(state: dict[str, Any]) -> bytes:
    """The bytes the seal covers: the state without its seal, keys sorted, as JSON
    reads it back (so a value written with default=str hashes the same on reading)."""
    body = {k: v for k, v in state.items() if k != SEAL}
    return json.dumps(json.loads(json.dumps(body, default=str)), sort_keys=True,
                      separators=(",", ":")).encode()


def _key_dir() -> Path:
    d = os.environ.get(KEY_ENV)
    if d:
        return Path(d)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wdsweep"


def key(create: bool = True) -> bytes | None:
    """This user's key (32 random bytes), made on first use; None when it cannot be
    read or made (then nothing this user writes is trusted later, and says so)."""
    d = _key_dir()
    p = d / "key"
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(p, os.O_RDONLY | nofollow)
    except FileNotFoundError:
        if not create:
            return None
        try:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Whole under a private name, then linked into place: a process that starts
            # meanwhile finds no key or all of it, never an empty file.
            tmp = d / f".key.{os.getpid()}.{os.urandom(4).hex()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | nofollow, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(os.urandom(32))
                os.link(tmp, p)
            finally:
                tmp.unlink(missing_ok=True)
        except FileExistsError:  # another process made it meanwhile
            pass
        except OSError as e:
            log.warning("cannot make the key %s (%s): studies written now will need "
                        "--trust-code to resume their code", p, e.strerror or e)
            return None
        return key(create=False)
    except OSError as e:
        log.warning("cannot read the key %s (%s)", p, e.strerror or e)
        return None
    with os.fdopen(fd, "rb") as f:
        k = f.read()
    return k if len(k) >= 32 else None


def seal(state: dict[str, Any], sign: bool = True) -> dict[str, Any]:
    """The state with its seal: the sha256, and (with `sign`) the HMAC under this
    user's key. Sign only a state that was this user's already or that was checked
    (sweep.runner.guard.require_trust): a signature vouches for everything in it."""
    body = canonical(state)
    s = {"sha256": hashlib.sha256(body).hexdigest()}
    k = key() if sign else None
    if k is not None:
        s["hmac"] = hmac.new(k, body, hashlib.sha256).hexdigest()
    return {**{k2: v for k2, v in state.items() if k2 != SEAL}, SEAL: s}


def intact(state: dict[str, Any]) -> bool | None:
    """True when the seal's sha256 matches, False when it differs, None without a seal."""
    s = state.get(SEAL)
    if not isinstance(s, dict) or not isinstance(s.get("sha256"), str):
        return None
    return hmac.compare_digest(s["sha256"], hashlib.sha256(canonical(state)).hexdigest())


def mine(state: dict[str, Any]) -> bool:
    """Was this state sealed by this user's wdsweep (its HMAC verifies)?"""
    s = state.get(SEAL)
    k = key(create=False)
    if k is None or not isinstance(s, dict) or not isinstance(s.get("hmac"), str):
        return False
    want = hmac.new(k, canonical(state), hashlib.sha256).hexdigest()
    return hmac.compare_digest(s["hmac"], want)


def outside(state: dict[str, Any], study: Path) -> list[str]:
    """The experiment URIs (imports aside: they hold no checkpoints) outside the study."""
    return sorted({e["uri"] for e in state["experiments"]
                   if e["status"] != "imported" and not inside(e["uri"], study)})


def refuse_unless(study: Path, state: dict[str, Any], names: str, trust: bool) -> None:
    """`names` (what the record makes a command run or touch outside the study; "" for
    nothing) is used only from a study this user sealed, or with `trust` (a warning)."""
    if not names or mine(state):
        return
    if not trust:
        raise SpecError("--trust-code", f"{study} was not written by your wdsweep (another "
                        f"user's, a copy, or edited) and names {names}; allowed: check "
                        "them, then run the command again with --trust-code")
    log.warning("trusting %s (--trust-code): %s", study, names)


def inside(path: str, study: Path) -> bool:
    """Is `path` (a local path, no URI) inside the study directory, links resolved?"""
    if "://" in path:
        return False
    try:
        return Path(path).resolve().is_relative_to(study.resolve())
    except (OSError, ValueError):
        return False
