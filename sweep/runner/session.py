"""Ray-facing helpers: the connection, what the cluster can run, where Tune stores."""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sweep.plan.code import check_connected, runtime_env
from sweep.plan.spec import Spec, SpecError
from sweep.runner import reap as _reap
from sweep.runner.raylogs import quiet, quiet_ray_records, ray_logs, stderr_quiet

_log = logging.getLogger(__name__)

# Ray's switch for a local-only Ray (its default on Windows and macOS): every Ray
# process then listens on 127.0.0.1 only. Never set for a cluster (--address).
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def before_import(address: str | None) -> None:
    """Call before anything imports `ray`: an embedded Ray (no address) is then
    loopback-only (see `connected`)."""
    if address is None and "ray" not in sys.modules:
        os.environ.setdefault(LOCAL_ONLY_ENV, "0")


@contextmanager
def connected(address: str | None, study: Path | None = None,
              code: Sequence[str] = ()) -> Iterator[bool]:
    """A local Ray sized to the machine, or a cluster at `address`; an existing
    connection (a notebook, the tests) is used as is and left open.

    A local Ray is always a new instance (`address="local"`), embedded on loopback
    only, and its processes are recorded in the study so that the next command reaps
    them if this driver is killed (sweep.runner.reap; call with the study locked). Yields
    whether it started a local Ray.

    Loopback: `ray.init(_node_ip_address="127.0.0.1")` is not enough (Ray turns a
    loopback node IP into the host's address, and its gRPC servers bind every
    interface); Ray's local-only mode (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read
    when `ray` is first imported and inherited by Ray's processes) binds them all,
    agents included, to 127.0.0.1. docs/security.md."""
    before_import(address)
    import ray  # lazy: Ray only when a sweep runs

    if ray.is_initialized():
        if ray.util.client.ray.is_connected():  # a notebook's ray.init("ray://...")
            raise SpecError("--address", "this process is connected to Ray through Ray "
                            "Client, which runs Tune's controller on the head, not in this "
                            "driver; allowed: a driver on the cluster (ray.init('auto') on "
                            "a node, or `ray job submit`: docs/cluster.md)")
        check_connected(code)  # its job must already ship the code (sweep.plan.code)
        with quiet_ray_records():
            yield False
        return
    quiet()
    with quiet_ray_records():
        _check_reachable(address)
        yield from _connect(ray, address, study, code)


def _connect(ray: Any, address: str | None, study: Path | None,
             code: Sequence[str]) -> Iterator[bool]:
    # Trials print nothing; their errors reach error.txt and the progress view.
    kw: dict[str, Any] = dict(configure_logging=True, logging_level="WARNING",
                              log_to_driver=ray_logs())
    if code:  # your modules, shipped to every worker (sweep.plan.code)
        kw["runtime_env"] = runtime_env(code)
    try:
        if address is None:

            if study is not None and study.is_dir():
                _reap.reap(study)  # the caller holds the study's lock
            _reap.new_owner()  # inherited by every Ray process started now (sweep.runner.reap)
            # "local": always a new instance, never whatever cluster RAY_ADDRESS or
            # Ray's current-cluster file names (joining one takes --address).
            ray.init(address="local", include_dashboard=False, **kw)
            if study is not None and study.is_dir():
                _reap.record(study)
        else:
            ray.init(address=address, **kw)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = address or "a new local instance"
        raise SpecError("--address", f"cannot connect to Ray at {where}: {first}; allowed: "
                        "auto, host:port") from None
    try:
        yield address is None
    finally:
        ray.shutdown()
        if address is None and study is not None:

            _reap.forget(study)


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """An --address (or, for `auto`, the RAY_ADDRESS it stands for) checked before Ray is
    asked: Ray retries an unreachable or refusing GCS for a minute and then says only
    that it failed to connect. A dashboard URL (http://...:8265, the job API's address),
    a host:port that refuses a TCP connection, and a cluster whose token authentication
    refuses this driver are each one line now."""
    if address is None:
        return
    target, key = address, "--address"
    if address == "auto":
        # Ray's `auto` is RAY_ADDRESS when that is set (an explicit address: Ray then sends
        # a token only under RAY_AUTH_MODE=token); else the cluster `ray start` left on
        # this machine, whose token Ray finds itself.
        target, key = os.environ.get("RAY_ADDRESS", "").strip(), "RAY_ADDRESS"
        if target in ("", "auto", "local"):
            _check_token(None, timeout_s)
            return
    _check_address_form(target, key)
    host, _, port = target.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise SpecError(key, f"cannot reach Ray at {target} ({e.strerror or e}); "
                        f"allowed: {_ADDRESS_FORMS}") from None
    _check_token(target, timeout_s)


def _largest_node() -> dict[str, float]:
    import ray  # lazy: Ray only when a sweep runs

    best: dict[str, float] = {"CPU": 0.0, "GPU": 0.0}
    for n in ray.nodes():
        if n.get("Alive"):
            for k in best:
                best[k] = max(best[k], n["Resources"].get(k, 0.0))
    return best


def _autoscaler_max() -> dict[str, float] | None:
    """What an autoscaling cluster could grow to (None when it does not autoscale)."""
    try:  # private API: absent or moved in other Ray versions -> treat as fixed-size
        from ray._private.state import state  # lazy: Ray only when a sweep runs

        return state.get_max_resources_from_cluster_config()
    except (ImportError, AttributeError):
        return None


def check_resources(spec: Spec) -> None:
    """A trial must fit on one node: bad input when no node (present or, on an
    autoscaling cluster, launchable) can hold it."""
    import ray  # lazy: Ray only when a sweep runs

    node, grow = _largest_node(), _autoscaler_max()
    for key, field, unit in (("GPU", "resources.gpus_per_trial", "GPUs"),
                             ("CPU", "resources.cpus_per_trial", "CPUs")):
        want = spec.gpus_per_trial if key == "GPU" else spec.cpus_per_trial
        if want <= node[key]:
            continue
        if grow is not None and grow.get(key, 0) >= want:
            _log.warning("no node has %g %s now; trials wait for the autoscaler", want, unit)
            continue
        raise SpecError(field, f"got {want:g} but the largest node has {node[key]:g} {unit}; "
                        f"allowed: at most {node[key]:g} here, or a cluster with larger nodes")
    alive = [n for n in ray.nodes() if n.get("Alive")]
    if len(alive) > 1 and spec.storage is None:
        _log.warning("%d Ray nodes and no run.storage: the study's experiments directory "
                     "must be on storage every node shares (NFS), or set "
                     "run.storage = 's3://...'", len(alive))


def ray_version() -> str:
    import ray  # lazy: Ray only when a sweep runs

    return ray.__version__


# --- the cluster's address and token (_check_reachable) -----------------------------------

_ADDRESS_FORMS = ("auto, host:port (the head's GCS port: `ray start --head --port`, 6379 by "
                  "default)")
_TOKEN_HOW = ("RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN, in a file "
              "named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token (`ray get-auth-token` "
              "on the head prints it)")


def _check_address_form(address: str, key: str) -> None:
    """One of Ray's driver addresses, or one line naming `key` and the forms allowed."""
    got, allowed = repr(address), _ADDRESS_FORMS
    if key == "RAY_ADDRESS":
        got = f"RAY_ADDRESS={address!r}, which --address auto stands for"
        allowed = "RAY_ADDRESS unset, or " + _ADDRESS_FORMS.removeprefix("auto, ")
    scheme, sep, rest = address.partition("://")
    if sep:
        if scheme.lower() in ("http", "https"):
            raise SpecError(key, f"got {got}: a dashboard / job API address (`ray job submit "
                            f"--address`, RAY_API_SERVER_ADDRESS), not a driver's; allowed: "
                            f"{allowed}")
        if scheme == "ray":  # Ray Client: Tune's controller would run on the head, in an
            # actor, with wdsweep's recorder and stopper copies the driver never sees again
            raise SpecError(key, f"got {got}: Ray Client, which runs Tune's controller on "
                            "the head, not in this driver; allowed: "
                            f"{allowed}, or `ray job submit` to run the driver on the head "
                            "(docs/cluster.md)")
        raise SpecError(key, f"got {got}; allowed: {allowed}")
    host, sep, port = address.rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(key, f"got {got}; allowed: {allowed}")


def _check_token(address: str | None, timeout_s: float) -> None:
    """Under RAY_AUTH_MODE=token, that there is a token to send; then (given `address`,
    a host:port) ask the GCS there for its cluster id as ray.init will, with the same
    token or none: a refused token is one line saying so, not a minute of retries ending
    in "Failed to connect". Anything else is left to ray.init to report."""
    try:  # private API (Ray >= 2.52): without it, ray.init reports what it finds
        from ray._raylet import (
            AuthenticationMode,
            AuthenticationTokenLoader,
            InnerGcsClient,
            get_authentication_mode,
        )
        from ray.exceptions import AuthenticationError, RayError
    except ImportError:
        return
    token_mode = get_authentication_mode() == AuthenticationMode.TOKEN
    if token_mode:
        try:  # Ray raises where it finds none, or RAY_AUTH_TOKEN_PATH names no token
            found = AuthenticationTokenLoader.instance().has_token()
        except AuthenticationError:
            found = False
        if not found:
            path = os.environ.get("RAY_AUTH_TOKEN_PATH")
            if path and not os.environ.get("RAY_AUTH_TOKEN"):
                raise SpecError("RAY_AUTH_TOKEN_PATH", f"names {path}, which cannot be read "
                                f"or is empty; give {_TOKEN_HOW}")
            raise SpecError("RAY_AUTH_TOKEN", f"RAY_AUTH_MODE=token but no token is set "
                            f"to send to Ray at {address or 'auto'}; give {_TOKEN_HOW}")
    if address is None:
        return
    try:
        with stderr_quiet():  # Ray's C++ client logs each refusal on stderr
            InnerGcsClient.standalone(address, None, int(timeout_s * 1000))
    except AuthenticationError:
        if not token_mode:
            raise SpecError("RAY_AUTH_MODE", f"the Ray cluster at {address} requires token "
                            f"authentication and this driver sends no token; give "
                            f"{_TOKEN_HOW}") from None
        raise SpecError("RAY_AUTH_TOKEN", f"the Ray cluster at {address} refused the token "
                        f"from {_token_source()}; give {_TOKEN_HOW}") from None
    except (RayError, OSError, RuntimeError, ValueError):
        return  # not answering as a GCS (yet): ray.init waits for it and says what it finds


def _token_source() -> str:
    """Where Ray takes its token from (Ray's precedence)."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH ({os.environ['RAY_AUTH_TOKEN_PATH']})"
    return "~/.ray/auth_token"
