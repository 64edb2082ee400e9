"""Run ``galaxy-ray train`` on a head and three worker nodes, kill a node holding a training worker mid-epoch.

Usage: ``python multinode_train.py RUN_DIR TEMP_DIR [--no-kill] -- TRAIN_ARGS...``.  Started by
``test_multinode_train.py`` in its own process group.  The nodes are separate raylets
(``ray.cluster_utils.Cluster``, the utility of Ray's own fault-tolerance tests), each with its own
CPU and object store.  The head has no CPUs and every worker node one, so the two single-CPU
training workers (``--workers 2``) land on two different worker nodes and the third node's CPU
is left to Ray Data's decoding.  Once Ray Train has registered the first epoch's checkpoint
(``checkpoint_manager_snapshot.json`` in the run directory names it), one node that holds a
training worker is removed without warning (``allow_graceful=False``: its raylet and workers are
killed) and a fresh one-CPU node is added in its place.  Prints one JSON line: the exit, the
training workers' nodes before the kill and after the recovery, the node killed, and what the run
directory held when it died.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import threading
import time
from pathlib import Path

SNAPSHOT = "checkpoint_manager_snapshot.json"  # ray.train.v2._internal.constants.CHECKPOINT_MANAGER_SNAPSHOT_FILENAME
NODE_ARGS = dict(num_cpus=1, object_store_memory=80 << 20)


def training_nodes() -> list[str]:
    """The node ids of the training workers: the bundles of Ray Train's (only) created placement group."""
    from ray.util import placement_group_table

    for pg in placement_group_table().values():
        if pg.get("state") == "CREATED" and len(pg.get("bundles", {})) == 2:
            return sorted(pg["bundles_to_node_id"].values())
    return []


def epochs_done(run_dir: Path) -> list[int]:
    try:
        with open(run_dir / "metrics.csv") as f:
            return [int(r["epoch"]) for r in csv.DictReader(f)]
    except (OSError, ValueError, KeyError):
        return []


def kill_and_replace(cluster, nodes: dict, run_dir: Path, out: dict, running) -> None:
    """Wait for epoch 1's registered checkpoint, remove a training worker's node, add a replacement.

    On the main thread: ``Cluster.add_node`` installs a signal handler.
    """
    snapshot = run_dir / SNAPSHOT
    while running():
        try:
            registered = "checkpoint_epoch_0001" in snapshot.read_text()
        except OSError:
            registered = False
        where = training_nodes() if registered else []
        if len(where) == 2:
            out["workers_before"] = [nodes[n][0] if n in nodes else "head" for n in where]
            victim = next(n for n in where if n in nodes)
            out["epochs_when_killed"] = epochs_done(run_dir)
            cluster.remove_node(nodes[victim][1], allow_graceful=False)
            out["killed"] = nodes.pop(victim)[0]
            node = cluster.add_node(**NODE_ARGS)
            nodes[node.node_id] = ("replacement", node)
            break
        time.sleep(0.2)
    # the recovered run's placement group, once Ray Train has made a new one without the dead node
    while running() and out.get("killed"):
        where = training_nodes()
        if len(where) == 2 and all(n in nodes for n in where):
            out["workers_after"] = [nodes[n][0] for n in where]
            break
        time.sleep(0.2)


def main() -> int:
    run_dir, temp_dir = Path(sys.argv[1]), sys.argv[2]
    kill = "--no-kill" not in sys.argv[3:sys.argv.index("--")]
    train_args = sys.argv[sys.argv.index("--") + 1:]
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args=dict(num_cpus=0, temp_dir=temp_dir, include_dashboard=False,
                                          object_store_memory=80 << 20))
    nodes = {}
    for k in range(3):
        node = cluster.add_node(**NODE_ARGS)
        nodes[node.node_id] = (f"worker{k}", node)
    cluster.wait_for_nodes()
    os.environ["RAY_ADDRESS"] = cluster.address

    import ray

    from galaxy_ray.train import main as train_main

    ray.init(address=cluster.address)  # before the killer asks for placement groups; the run finds it connected
    out: dict = {"error": None}

    def train() -> None:
        try:
            out["exit"] = train_main(train_args)
        except BaseException as exc:  # reported in the JSON line, for the test to show
            out["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1:]}"

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    if kill:
        kill_and_replace(cluster, nodes, run_dir, out, thread.is_alive)
    thread.join(timeout=400)
    out["alive"] = thread.is_alive()
    print(json.dumps(out), flush=True)
    os._exit(0)  # the cluster's processes are in this process group: the test ends it


if __name__ == "__main__":
    sys.exit(main())
