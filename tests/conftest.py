"""Shared fixtures: a real local Ray cluster, a real S3 server (moto) on loopback,
and the real SDSS/GZ2 sample when CI provides it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# S3 settings go into the environment before anything starts Ray, so that every
# Ray worker process inherits them and talks to the same moto server.
S3_PORT = _free_port()
os.environ.update(
    AWS_ENDPOINT_URL=f"http://127.0.0.1:{S3_PORT}",
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
)
# Keep Ray quiet and small on a 2-core machine.
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Ray Train's controller polls its workers every 2 s by default, and each step of a run (workers
# started, a report, the end) waits for the next poll; the ~20 training runs of the suite each wait
# less at 0.5 s.  A worker is only declared hung after RAY_TRAIN_WORKER_HEALTH_CHECK_TIMEOUT_S
# (10 min), not after one missed poll, so a loaded machine does not fail runs sooner.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")


_RAY_FIXTURES = {"ray_cluster", "ray_head", "submit_job"}
_S3_FIXTURES = {"s3_server", "s3_bucket"}


def pytest_collection_modifyitems(config, items):
    """Mark every test by what it starts, from the fixtures it uses: ``ray`` and ``s3``."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & _RAY_FIXTURES:
            item.add_marker(pytest.mark.ray)
        if used & _S3_FIXTURES:
            item.add_marker(pytest.mark.s3)


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster shared by the whole session (4 logical CPUs on 2 cores, so that
    Ray Train workers and the Ray Data tasks feeding them can run side by side)."""
    import ray

    for attempt in range(3):
        if ray.is_initialized():
            break
        try:
            ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
        except Exception as exc:  # Ray gives its raylet a fixed 30 s to register; a loaded machine can miss it
            ray.shutdown()
            if attempt == 2 or "timed out during startup" not in str(exc):
                raise
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server on loopback, in its own process group, for the session.

    Yields the endpoint URL; the variables above already point at it.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(S3_PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except Exception:
            if time.time() > deadline or proc.poll() is not None:
                os.killpg(proc.pid, signal.SIGKILL)
                raise RuntimeError("moto S3 server did not start")
            time.sleep(0.2)
    yield endpoint
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


_bucket_counter = iter(range(10**6))


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh, empty bucket; yields its ``s3://`` URI."""
    import boto3

    name = f"test-bucket-{os.getpid()}-{next(_bucket_counter)}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def gz2_sample() -> Path:
    """The real 450-galaxy SDSS/GZ2 sample (set GALAXY_RAY_GZ2_SAMPLE to its folder)."""
    path = os.environ.get("GALAXY_RAY_GZ2_SAMPLE")
    if not path or not Path(path, "catalog.csv").exists():
        pytest.skip("real SDSS/GZ2 sample not available: set GALAXY_RAY_GZ2_SAMPLE to its folder")
    return Path(path)


# --------------------------------------------------------------------------- shared builders


def _write_shards(table, out: str, rows_per_shard: int) -> list[str]:
    import io

    import pyarrow.parquet as pq

    from galaxy_ray.io import layout, storage

    uris = []
    for k, start in enumerate(range(0, table.num_rows, rows_per_shard)):
        buf = io.BytesIO()
        pq.write_table(table.slice(start, rows_per_shard), buf)
        uri = storage.join(out, layout.part_name(k))
        storage.write_bytes_atomic(uri, buf.getvalue())
        uris.append(uri)
    return uris


def _tiny_checkpoint(out: str, task: str = "gz2", size: int = 32, seed: int = 0) -> str:
    import torch

    from galaxy_ray import model, schema
    from galaxy_ray.data.transforms import PreprocessConfig

    torch.manual_seed(seed)
    pre = PreprocessConfig(size)
    if task == "gz2":
        spec = model.ModelSpec.for_gz2("resnet18", pre)
    elif task == "votes":
        spec = model.ModelSpec.for_votes("resnet18", "decals-dr8", pre)
    else:
        spec = model.ModelSpec("resnet18", "classes", list(schema.GALAXY10_CLASSES), pre,
                               schema.GALAXY10_MERGER_CLASS)
    return model.save_checkpoint(out, model.build_model(spec), spec)


@pytest.fixture(scope="session")
def write_shards():
    """``write_shards(table, out, rows_per_shard) -> [uri]``: a cutout table as packed Parquet shards."""
    return _write_shards


@pytest.fixture(scope="session")
def tiny_checkpoint():
    """``tiny_checkpoint(out, task="gz2", size=32, seed=0) -> uri``: an untrained ResNet-18 checkpoint
    (task ``gz2``, ``votes`` on the GZ DESI tree, or ``classes`` on the Galaxy10 classes)."""
    return _tiny_checkpoint
