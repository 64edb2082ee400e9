"""Run ``galaxy-ray infer`` on a head and two worker nodes, and kill one worker node mid-run.

Usage: ``python multinode_infer.py CHECKPOINT SOURCE OUT TEMP_DIR [--actors MIN,MAX] [--no-kill]``.  Started by
``test_multinode.py`` in its own process group.  The nodes are separate raylets
(``ray.cluster_utils.Cluster``, the utility of Ray's own fault-tolerance tests), each with
its own CPUs and object store; the head has no CPUs, so every decode task and model actor
runs on a worker node.  Once the first catalog file is published, one worker node is removed
without warning (``allow_graceful=False``: its raylet and workers are killed).  Prints one JSON
line: the summary, and the node killed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path


def main() -> int:
    checkpoint, source, out, temp_dir = sys.argv[1:5]
    kill = "--no-kill" not in sys.argv
    actors = None  # infer's default pool
    if "--actors" in sys.argv:
        actors = tuple(int(n) for n in sys.argv[sys.argv.index("--actors") + 1].split(","))
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args=dict(num_cpus=0, temp_dir=temp_dir, include_dashboard=False,
                                          object_store_memory=80 << 20))
    workers = [cluster.add_node(num_cpus=3, object_store_memory=80 << 20) for _ in range(2)]
    cluster.wait_for_nodes()
    os.environ["RAY_ADDRESS"] = cluster.address

    from galaxy_ray.infer import run_inference

    result: dict = {}

    def infer() -> None:
        try:
            result["summary"] = run_inference(checkpoint, source, out, batch_size=2, rows_per_file=6,
                                              num_actors=actors, progress=False, log=lambda s: None)
        except BaseException as exc:  # reported in the JSON line, for the test to show
            result["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=infer)
    thread.start()
    killed = None
    deadline = time.time() + 150
    while kill and killed is None and thread.is_alive() and time.time() < deadline:
        if any(Path(out).glob("part-*.parquet")):
            cluster.remove_node(workers[0], allow_graceful=False)
            killed = len(list(Path(out).glob("part-*.parquet")))
        time.sleep(0.2)
    thread.join(timeout=240)
    summary = result.get("summary") or {}
    print(json.dumps({"error": result.get("error"), "alive": thread.is_alive(), "files_when_killed": killed,
                      "rows": summary.get("rows"), "files": summary.get("files"),
                      "files_this_run": summary.get("files_this_run"),
                      "retried_tasks": summary.get("retried_tasks")}), flush=True)
    os._exit(0)  # the cluster's processes are in this process group: the test ends it


if __name__ == "__main__":
    sys.exit(main())
