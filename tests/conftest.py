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


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head node started with ``ray start --head --block`` for ``ray job submit`` tests.

    It runs in its own process group with its own temp dir and ports, and is ended (at the
    end of the test module that asked for it) by killing that group, so no other Ray on the machine is touched.
    Yields the dashboard address, ``http://127.0.0.1:PORT``.
    """
    import shutil
    import tempfile

    temp_dir = tempfile.mkdtemp(prefix="grh-", dir="/tmp")  # short: Ray's socket paths are limited
    gcs_port, dash_port, client_port = _free_port(), _free_port(), _free_port()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    log = open(tmp_path_factory.mktemp("ray_head") / "head.log", "w")
    # Job entrypoints say `python`: make it this interpreter, as an activated venv would.
    # Token authentication off for this loopback-only head: an earlier ray.init in this
    # process sets RAY_AUTH_MODE=token, and a head inheriting it answers probes with 401.
    env = dict(os.environ, RAY_AUTH_MODE="disabled",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", f"--port={gcs_port}", f"--dashboard-port={dash_port}",
         f"--ray-client-server-port={client_port}", "--dashboard-host=127.0.0.1", f"--temp-dir={temp_dir}",
         "--num-cpus=4", "--include-dashboard=true", "--disable-usage-stats",
         # Own agent ports: the defaults (e.g. 52365) clash with any other Ray on the
         # machine, and a head whose agent cannot bind answers "No available agent".
         f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
         f"--metrics-export-port={_free_port()}", f"--runtime-env-agent-port={_free_port()}"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
    )
    address = f"http://127.0.0.1:{dash_port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{address}/api/version", timeout=2)
            break
        except Exception:
            if time.time() > deadline or proc.poll() is not None:
                os.killpg(proc.pid, signal.SIGKILL)
                raise RuntimeError(f"ray head did not start; see {log.name}")
            time.sleep(1)
    yield address
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        # `ray start --block` takes its time over SIGTERM (it waited out 30 s here); the group dies anyway
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def submit_job(ray_head):
    """``submit_job(*entrypoint) -> output``: ``ray job submit`` to the ``ray_head`` node.

    Retries while the head's job agent is still starting ("No available agent"),
    which it reports for a while after the dashboard answers.
    """
    root = Path(__file__).resolve().parents[1]
    ray_bin = str(Path(sys.executable).with_name("ray"))
    env = dict(os.environ, RAY_AUTH_MODE="disabled")  # as the head was started
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
