"""The whole flow as on a real cluster: ``ray job submit`` of ``jobs/train.py`` and ``jobs/infer.py``
to a head with two worker nodes, every input, run directory and catalog on ``s3://``, then a query.

The head and each worker node are ``ray start --block`` processes, each in its own process group with
its own ports and temp dir, ended by killing those groups.  The head has no CPUs, so every task and
actor of both jobs runs on a worker node, as on a cluster whose head only schedules.  S3 is the moto
server on loopback; every node inherits its endpoint from the environment conftest sets.
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

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from galaxy_ray import catalog
from galaxy_ray.io import storage
from galaxy_ray.schema import GZ2_ANSWER_COLUMNS, tree_violation
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
            # its own temp dir: two nodes starting at once in one would both take the first free socket name.
            # One node at a time: each raylet has a fixed 30 s to register with the GCS (ray/_private/node.py),
            # which two nodes starting together on a loaded 2-core machine can both miss.
            procs.append(start(f"worker{k}", [f"--address=127.0.0.1:{gcs_port}", f"--num-cpus={CPUS_PER_NODE}",
                                              f"--temp-dir={temp_dir}/w{k}"]))
            while len(_alive_nodes(address)) < 2 + k:
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


@pytest.fixture(scope="module")
def submit_job(ray_head):
    """``submit_job(*entrypoint) -> output``: ``ray job submit`` to the ``ray_head`` cluster.

    Retries while the head's job agent is still starting ("No available agent"),
    which it reports for a while after the dashboard answers.
    """
    root = Path(__file__).resolve().parents[1]
    ray_bin = str(Path(sys.executable).with_name("ray"))
    env = dict(os.environ, RAY_AUTH_MODE="disabled")  # as the nodes were started
    env.pop("RAY_ADDRESS", None)

    def submit(*entrypoint: str, timeout: float = 900) -> str:
        cmd = [ray_bin, "job", "submit", "--address", ray_head, "--working-dir", str(root),
               "--runtime-env-json", '{"excludes": [".venv/", ".git/", "demo_output/"]}', "--", *entrypoint]
        for _ in range(20):
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=root, env=env)
            if out.returncode == 0 or "No available agent" not in out.stdout + out.stderr:
                break
            time.sleep(3)
        assert out.returncode == 0, (out.stdout[-4000:], out.stderr[-2000:])
        return out.stdout + out.stderr

    return submit


def _nodes_that_ran(address: str) -> tuple[set[str], set[str]]:
    """Node ids that ran the jobs' plain tasks (Ray Data's reads and decodes among them) and the Ray Train workers."""
    from ray.util.state import list_actors, list_tasks

    tasks = list_tasks(address=address, filters=[("type", "=", "NORMAL_TASK")], limit=10000,
                       raise_on_missing_output=False)
    actors = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker")], limit=1000,
                         raise_on_missing_output=False)
    return {t.node_id for t in tasks if t.node_id}, {a.node_id for a in actors if a.node_id}


def _check_run_directory(run: str, log: str) -> str:
    """The training job's progress came back through its log and its run directory is whole; its model.pt."""
    assert "epoch 1/1" in log and "validation" in log
    names = {p.rsplit("/", 1)[-1] for p in storage.list_files(run)}
    assert {"model.pt", "metrics.csv", "curves.png", "evaluation.json", "config.json",
            "validation_predictions.parquet", "rmse_per_answer.png"} <= names, names
    assert any(p.rsplit("/", 2)[-2].startswith("checkpoint_epoch_0001") for p in storage.list_files(run, recursive=True))
    rows = list(csv.DictReader(storage.read_bytes(storage.join(run, "metrics.csv")).decode().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [1]
    return storage.join(run, "model.pt")


def _check_catalog(out: str, survey: str) -> None:
    """Every survey galaxy once, with the RA/Dec it came with; the tree obeyed; a cone as brute force finds it."""
    prov = catalog.read_provenance(out)
    assert prov["rows"] == 120 and prov["error_rows"] == 0 and prov["task"] == "gz2"
    full = catalog.query(out)
    assert len(full) == 120 and full["object_id"].is_unique
    assert np.allclose(tree_violation(full[list(GZ2_ANSWER_COLUMNS)].to_numpy()), 0, atol=1e-5)
    fs, path = storage.pyarrow_filesystem(survey)
    truth = pq.read_table(path, filesystem=fs, columns=["object_id", "ra", "dec"]).to_pandas()
    merged = truth.merge(full[["object_id", "ra", "dec"]], on="object_id", suffixes=("_in", "_out"))
    assert len(merged) == len(truth) == 120  # none lost, none twice
    assert np.array_equal(merged["ra_in"], merged["ra_out"]) and np.array_equal(merged["dec_in"], merged["dec_out"])
    ra0, dec0 = float(full["ra"].iloc[0]), float(full["dec"].iloc[0])
    cone = catalog.cone_search(out, ra0, dec0, 20.0)
    sep = SkyCoord(full["ra"].to_numpy() * u.deg, full["dec"].to_numpy() * u.deg).separation(
        SkyCoord(ra0 * u.deg, dec0 * u.deg))
    assert len(cone) >= 1 and set(cone["object_id"]) == set(full.loc[sep.deg <= 20.0, "object_id"])


@pytest.mark.slow
def test_train_infer_query_over_s3_on_a_head_with_two_worker_nodes(ray_head, submit_job, s3_bucket):
    train, survey = f"{s3_bucket}/shards/train", f"{s3_bucket}/shards/survey"
    synthesize(train, n=96, size=32, fmt="shards", seed=21, rows_per_shard=24, workers=1)
    synthesize(survey, n=120, size=32, fmt="shards", seed=22, rows_per_shard=20, workers=1)
    runs, out = f"{s3_bucket}/runs", f"{s3_bucket}/catalogs/survey"
    workers = {n.node_id for n in _alive_nodes(ray_head) if not n.is_head_node}
    assert len(workers) == WORKER_NODES

    log = submit_job("python", "jobs/train.py", "--source", train, "--task", "gz2", "--arch", "resnet18",
                     "--image-size", "32", "--epochs", "1", "--workers", "2", "--batch-size", "8",
                     "--name", "jc", "--storage", runs)
    checkpoint = _check_run_directory(storage.join(runs, "jc"), log)
    submit_job("python", "jobs/infer.py", "--checkpoint", checkpoint, "--source", survey, "--out", out,
               "--batch-size", "16", "--rows-per-file", "30")
    _check_catalog(out, survey)

    from ray.job_submission import JobStatus, JobSubmissionClient

    jobs = JobSubmissionClient(ray_head).list_jobs()  # the only jobs this cluster ran: both succeeded
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * 2, jobs
    tasks, trainers = _nodes_that_ran(ray_head)
    # both worker nodes ran tasks (the reads and decodes need a CPU, so they ran there; the head,
    # with no CPUs, can run only zero-CPU tasks)
    assert workers <= tasks, (tasks, workers)
    assert trainers and trainers <= workers, (trainers, workers)
