"""A worker node killed mid-run does not stop ``infer``: every object is in the catalog exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.synthetic import synthetic_table

SCRIPT = Path(__file__).with_name("multinode_infer.py")
SIZE = 32


@pytest.mark.slow
def test_infer_finishes_when_a_worker_node_dies_mid_run(tmp_path, tiny_checkpoint, write_shards):
    checkpoint = tiny_checkpoint(str(tmp_path / "model.pt"), size=SIZE)
    table = synthetic_table(48, size=SIZE, seed=5)
    source, out = str(tmp_path / "survey"), tmp_path / "catalog"
    write_shards(table, source, rows_per_shard=6)
    temp_dir = tempfile.mkdtemp(prefix="grmn-", dir="/tmp")  # short: Ray's socket paths are limited
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # the head, both worker nodes and the job run in this process group, ended by its id
    proc = subprocess.Popen([sys.executable, str(SCRIPT), checkpoint, source, str(out), temp_dir, "--actors", "1,2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=env, cwd=str(tmp_path))
    try:
        stdout, stderr = proc.communicate(timeout=420)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
    assert stdout.strip(), f"the script printed no report; its stderr ends:\n{stderr[-3000:]}"
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["error"] is None and not report["alive"], report
    assert 1 <= report["files_when_killed"] < 8, "the node should have died part-way"
    assert report["rows"] == 48 and report["files"] == 8
    ids = [i for f in sorted(out.glob("part-*.parquet")) for i in pq.read_table(f, columns=[C.OBJECT_ID])[C.OBJECT_ID].to_pylist()]
    assert sorted(ids) == sorted(table[C.OBJECT_ID].to_pylist())  # every object once: none lost, none twice
