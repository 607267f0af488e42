"""Issue 9 on a real multi-node Ray (ray.cluster_utils.Cluster): a head without CPUs and
two worker nodes; a user module in a directory outside the repository reaches the
workers only through the spec's `code`. Run by test_user_model_sweep.py in its own
process; prints one JSON line of findings."""

import json
import sys
from pathlib import Path

import pandas as pd
from ray.cluster_utils import Cluster

import sweep
from sweep.plan.spec import load
from sweep.runner.raylogs import quiet


def main(spec_path: Path, study: Path) -> None:
    quiet()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    # wdsweep connects itself (no ray.init here), shipping `code` in the job's runtime_env
    sweep.run(load(spec_path), study, address=cluster.address)
    res = pd.read_csv(study / "results.csv")
    out = dict(workers=[w.node_id for w in workers], nodes=sorted(set(res.node)),
               completed=int((res.status == "completed").sum()),
               pack_sizes=sorted(res.groupby("trial_id").size().tolist()))
    print("RESULT " + json.dumps(out), flush=True)
    cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
