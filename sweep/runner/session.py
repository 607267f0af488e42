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

# Ray's switch for a local-only Ray (its default on Windows and macOS): every Ray
# process then listens on 127.0.0.1 only. Never set for a cluster (--address).
LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# `wdsweep --ray-logs` (show_ray_logs): the trials' own output (stdout, stderr, warnings)
# reaches the driver, and Ray's messages are shown whole.
_OPTIONS = {"ray_logs": False}


def show_ray_logs(on: bool = True) -> None:
    _OPTIONS["ray_logs"] = on

_log = logging.getLogger(__name__)


def quiet() -> None:
    """Ray's own tables and per-checkpoint warnings would bury the progress view."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


class _FirstLine(logging.Filter):
    """Ray's own messages one line each on the terminal: a fault that stops a sweep is
    wdsweep's one line, not the last of a page of Ray's tracebacks (--ray-logs shows
    them whole; a trial's own traceback is in its error.txt and results.csv)."""

    def filter(self, record: logging.LogRecord) -> bool:
        lines = record.getMessage().strip().splitlines() or [""]
        more = len(lines) > 1 or record.exc_info is not None
        record.msg = lines[0] + (" [... --ray-logs shows the rest]" if more else "")
        record.args, record.exc_info, record.exc_text, record.stack_info = (), None, None, None
        return True


class _Drop(logging.Filter):
    """Ray's records that contradict wdsweep or that wdsweep says itself, in one line:
    Tune's advice to `Tuner.restore(...)` (a study continues with `wdsweep resume`; always
    dropped, --ray-logs too), and unless --ray-logs Tune's page per failed trial (wdsweep's
    line names the trial by its key, its members and the error: sweep.runner.progress) and
    its closing list of the trials that did not complete (the outcome line counts them)."""

    RESTORE = ("Tuner.restore(", "Resume experiment with:", "Resume training with:")
    SAID = ("Trial task failed for trial", "Trials did not complete")

    def __init__(self, whole: bool) -> None:
        super().__init__()
        self.drop = self.RESTORE if whole else self.RESTORE + self.SAID

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: not one of these
            return True
        return not any(s in msg for s in self.drop)


_RAY_LOGGERS = ("ray", "ray.tune", "ray.train", "ray.data")


def one_line_ray_logs() -> list[tuple[logging.Handler, logging.Filter]]:
    """Put `_Drop` and (unless --ray-logs) `_FirstLine` on the handlers Ray's loggers
    write to; returns what it added, for `quiet_ray_records` to take off again."""
    added = []
    for name in _RAY_LOGGERS:
        for h in logging.getLogger(name).handlers:
            want = [_Drop(_OPTIONS["ray_logs"])] + ([] if _OPTIONS["ray_logs"] else [_FirstLine()])
            for f in want:  # in this order: drop first, then cut what is left to a line
                if not any(type(g) is type(f) for g in h.filters):
                    h.addFilter(f)
                    added.append((h, f))
    return added


@contextmanager
def quiet_ray_records() -> Iterator[None]:
    """`one_line_ray_logs` while a sweep runs, taken off after it (a notebook's own Ray
    use afterwards sees Ray's records as Ray writes them)."""
    added = one_line_ray_logs()
    try:
        yield
    finally:
        for h, f in added:
            h.removeFilter(f)


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
                              log_to_driver=_OPTIONS["ray_logs"])
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
                        "auto, host:port, ray://host:port") from None
    try:
        yield address is None
    finally:
        ray.shutdown()
        if address is None and study is not None:

            _reap.forget(study)


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """Ray retries an unreachable GCS for minutes; a host:port that refuses a TCP
    connection is bad input now."""
    if address is None or address == "auto" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise SpecError("--address", f"got {address!r}; allowed: auto, host:port, "
                        "ray://host:port")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise SpecError("--address", f"cannot reach Ray at {address} ({e.strerror or e}); "
                        "allowed: auto, host:port, ray://host:port") from None


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
