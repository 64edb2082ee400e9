"""``ray job submit`` of ``jobs/train.py`` and ``jobs/infer.py`` to a head with two worker nodes, as on a cluster.

The head and each worker node are ``ray start --block`` processes, each in its own process group with
its own ports and temp dir, ended by killing those groups.  The
head has no CPUs, so every task and actor of both jobs runs on a worker node, as on a cluster whose
head only schedules.  This module's ``ray_head`` replaces conftest's single-node one, so conftest's
``submit_job`` submits here.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from galaxy_ray.synthetic import synthesize

WORKER_NODES, CPUS_PER_NODE = 2, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _agent_ports() -> list[str]:
    # Own ports per node: the defaults (e.g. 52365) clash between the nodes of one machine and with other Rays.
    return [f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
            f"--metrics-export-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}",
            f"--node-manager-port={_free_port()}", f"--object-manager-port={_free_port()}"]


def _alive_nodes(address: str) -> list:
    """Ray's state API (the dashboard): the cluster's live nodes (``node_id``, ``is_head_node``)."""
    from ray.util.state import list_nodes

    try:
        return [n for n in list_nodes(address=address, raise_on_missing_output=False) if n.state == "ALIVE"]
    except Exception:  # the dashboard's state API is still starting
        return []


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # `ray start --block` takes its time over SIGTERM
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


def _start_nodes(logs: Path, temp_dir: str) -> tuple[list[subprocess.Popen], str]:
    """Start the head, wait for its dashboard, start the worker nodes, wait for them to join.

    Returns the processes (head first) and the dashboard address; ends them and raises
    ``RuntimeError`` when a node does not come up.
    """
    gcs_port, dash_port = _free_port(), _free_port()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    # as conftest's head: jobs' `python` is this interpreter; token authentication off on loopback
    env = dict(os.environ, RAY_AUTH_MODE="disabled",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("RAY_ADDRESS", None)
    common = ["--disable-usage-stats", "--block"]

    def start(name: str, args: list[str]) -> subprocess.Popen:
        with open(logs / f"{name}.log", "w") as log:
            return subprocess.Popen([ray_bin, "start", *args, *common, *_agent_ports()], stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, env=env)

    procs = [start("head", ["--head", f"--port={gcs_port}", f"--dashboard-port={dash_port}",
                            f"--ray-client-server-port={_free_port()}", "--dashboard-host=127.0.0.1",
                            "--num-cpus=0", "--include-dashboard=true", f"--temp-dir={temp_dir}"])]
    address = f"http://127.0.0.1:{dash_port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"{address}/api/version", timeout=2)
                break
            except Exception:
                if time.time() > deadline or procs[0].poll() is not None:
                    raise RuntimeError(f"ray head did not start; see {logs}/head.log")
                time.sleep(1)
        for k in range(WORKER_NODES):
            # its own temp dir: two nodes starting at once in one would both take the first free socket name
            procs.append(start(f"worker{k}", [f"--address=127.0.0.1:{gcs_port}", f"--num-cpus={CPUS_PER_NODE}",
                                              f"--temp-dir={temp_dir}/w{k}"]))
        while len(_alive_nodes(address)) < 1 + WORKER_NODES:
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"ray worker nodes did not join; see {logs}")
            time.sleep(1)
    except BaseException:
        _stop(procs)
        raise
    return procs, address


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A head (no CPUs) and two worker nodes, each a ``ray start --block`` in its own process group.

    Yields the dashboard address, ``http://127.0.0.1:PORT``, once both worker nodes have joined.
    Ray gives a raylet a fixed 30 s to register with the GCS; a loaded machine can miss it, so a
    cluster that does not come up is started afresh, three times at most.
    """
    for attempt in range(3):
        temp_dir = tempfile.mkdtemp(prefix="grjc-", dir="/tmp")  # short: Ray's socket paths are limited
        try:
            procs, address = _start_nodes(tmp_path_factory.mktemp("ray_nodes"), temp_dir)
            break
        except RuntimeError:
            shutil.rmtree(temp_dir, ignore_errors=True)
            if attempt == 2:
                raise
    yield address
    _stop(procs)
    shutil.rmtree(temp_dir, ignore_errors=True)


def _nodes_that_ran(address: str) -> tuple[set[str], set[str]]:
    """Node ids that ran the jobs' plain tasks (Ray Data's reads and decodes among them) and the Ray Train workers."""
    from ray.util.state import list_actors, list_tasks

    tasks = list_tasks(address=address, filters=[("type", "=", "NORMAL_TASK")], limit=10000,
                       raise_on_missing_output=False)
    actors = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker")], limit=1000,
                         raise_on_missing_output=False)
    return {t.node_id for t in tasks if t.node_id}, {a.node_id for a in actors if a.node_id}


@pytest.mark.slow
def test_train_and_infer_jobs_on_a_head_with_two_worker_nodes(ray_head, submit_job, tmp_path):
    train, survey = str(tmp_path / "train"), str(tmp_path / "survey")
    synthesize(train, n=96, size=32, fmt="shards", seed=21, rows_per_shard=24, workers=1)
    synthesize(survey, n=120, size=32, fmt="shards", seed=22, rows_per_shard=20, workers=1)
    runs, out = tmp_path / "runs", tmp_path / "catalog"
    workers = {n.node_id for n in _alive_nodes(ray_head) if not n.is_head_node}
    assert len(workers) == WORKER_NODES

    log = submit_job("python", "jobs/train.py", "--source", train, "--task", "gz2", "--arch", "resnet18",
                     "--image-size", "32", "--epochs", "2", "--workers", "2", "--batch-size", "8",
                     "--name", "jc", "--storage", str(runs))
    assert "epoch 2/2" in log  # the workers' progress came back through the job's log
    with open(runs / "jc" / "metrics.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2]
    checkpoint = str(runs / "jc" / "model.pt")

    submit_job("python", "jobs/infer.py", "--checkpoint", checkpoint, "--source", survey, "--out", str(out),
               "--batch-size", "16", "--rows-per-file", "30")
    ids = [i for f in sorted(out.glob("part-*.parquet")) for i in pq.read_table(f, columns=["object_id"])["object_id"].to_pylist()]
    truth = pq.read_table(survey, columns=["object_id"])["object_id"].to_pylist()
    assert len(truth) == 120 and sorted(ids) == sorted(truth)  # every object once: none lost, none twice

    from ray.job_submission import JobStatus, JobSubmissionClient

    jobs = JobSubmissionClient(ray_head).list_jobs()  # the only jobs this cluster ran: both succeeded
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * 2, jobs
    tasks, trainers = _nodes_that_ran(ray_head)
    # both worker nodes ran tasks (the reads and decodes need a CPU, so they ran there; the head,
    # with no CPUs, can run only zero-CPU tasks)
    assert workers <= tasks, (tasks, workers)
    assert trainers and trainers <= workers, (trainers, workers)
