"""A driver on a real multi-node Ray (ray.cluster_utils.Cluster): a head and two
worker nodes, one declaring a GPU. Run by test_multinode.py in its own process
(one Ray per process); prints one JSON line of findings for the test to check."""

import json
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import ray
from ray.cluster_utils import Cluster

import sweep
from sweep.plan.spec import parse
from sweep.runner.raylogs import quiet

SPEC = """
name = "{name}"
preset = "tiny"
[fixed]
epochs = {epochs}
train_size = 256
[grid]
weight_decay = {wds}
[resources]
cpus_per_trial = 1
gpus_per_trial = {gpus}
[run]
pack = 1
checkpoint_every = 16
max_failures = 3
"""


def spec(name, wds, epochs=6, gpus=0):
    return parse(SPEC.format(name=name, wds=list(wds), epochs=epochs, gpus=gpus))


def main(work: Path) -> None:
    quiet()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cpu_node = cluster.add_node(num_cpus=1)
    gpu_node = cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    out: dict = {"nodes": {"head": cluster.head_node.node_id, "cpu": cpu_node.node_id,
                           "gpu": gpu_node.node_id}}

    # 1. CPU trials spread over the nodes. Each long enough (~2 s) that the other nodes'
    # workers are up before one reused actor could have run them all (a loaded machine
    # starts workers slowly: 0.3-s trials all landed on one node).
    sweep.run(spec("spread", [0.0, 0.01, 0.03, 0.1, 0.3, 1.0], epochs=48), work / "spread")
    res = pd.read_csv(work / "spread" / "results.csv")
    out["spread_nodes"] = sorted(set(res.node))
    out["spread_completed"] = int((res.status == "completed").sum())

    # 2. GPU trials land on the node that has a GPU.
    sweep.run(spec("gpu", [0.0, 0.1], gpus=1), work / "gpu")
    res = pd.read_csv(work / "gpu" / "results.csv")
    out["gpu_nodes"] = sorted(set(res.node))

    # 3. Losing a worker node mid-trial: the trial finishes from its checkpoint elsewhere.
    study = work / "loss"
    removed: dict = {}

    def remove_when_running() -> None:
        status = study / "status.json"
        while not removed:
            time.sleep(0.2)
            if not status.exists():
                continue
            for t in json.loads(status.read_text()).get("per_trial", []):
                if t["status"] == "running" and t["step"] >= 48 and t["node"] == \
                        cpu_node.node_id:
                    cluster.remove_node(cpu_node)
                    removed.update(node=t["node"], step=t["step"])
                    return

    threading.Thread(target=remove_when_running, daemon=True).start()
    # Long trials (~10 s), one per CPU node, so one is surely running on the CPU worker.
    sweep.run(spec("loss", [0.1, 0.3, 1.0], epochs=600), study)
    res = pd.read_csv(study / "results.csv")
    out["removed"] = removed
    out["loss_rows"] = res[["config_hash", "status", "node", "resumed_from"]].to_dict("records")
    print("RESULT " + json.dumps(out), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
