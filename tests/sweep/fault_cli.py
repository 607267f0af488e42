"""`python -m sweep.cli ARGS` with the tests' fault injector (tests/faults.py) in every Ray
worker: this process starts the local Ray with Ray's worker_process_setup_hook, as a
notebook user's own Ray would be started, and the CLI then uses that Ray as is."""

import os
import sys
from pathlib import Path

import ray

from tests.faults import FAULT_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]

if __name__ == "__main__":
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT),
                                       FAULT_DIR_ENV: os.environ.get(FAULT_DIR_ENV, "")},
                          "worker_process_setup_hook": "tests.faults.install"})
    from sweep.cli.main import main

    rc = main(sys.argv[1:])
    ray.shutdown()
    sys.exit(rc)
