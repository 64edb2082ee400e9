"""A worker node killed mid-epoch does not stop ``train``: it resumes from its last checkpoint on a replacement node."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from galaxy_ray.synthetic import synthesize

SCRIPT = Path(__file__).with_name("multinode_train.py")
SIZE = 32


def run_script(tmp_path: Path, train_args: list[str]) -> dict:
    """``multinode_train.py`` in its own process group (head, nodes and run inside it, ended by its id); its JSON line."""
    temp_dir = tempfile.mkdtemp(prefix="grmt-", dir="/tmp")  # short: Ray's socket paths are limited
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(tmp_path / "runs" / "mn"), temp_dir, "--", *train_args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
                            env=env, cwd=str(tmp_path))
    try:
        stdout, _ = proc.communicate(timeout=600)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_train_resumes_on_a_replacement_node_when_a_worker_node_dies_mid_epoch(tmp_path):
    from galaxy_ray.model import load_checkpoint

    source = str(tmp_path / "train")
    synthesize(source, n=128, size=SIZE, fmt="shards", seed=7, rows_per_shard=32, workers=1)
    report = run_script(tmp_path, ["--source", source, "--task", "gz2", "--arch", "resnet18",
                                   "--image-size", str(SIZE), "--epochs", "2", "--workers", "2", "--batch-size", "8",
                                   "--name", "mn", "--storage", str(tmp_path / "runs"), "--max-failures", "2"])
    assert report["error"] is None and report["exit"] == 0 and not report["alive"], report
    # the two training workers were on two different worker nodes, and one of them was killed ...
    before = report["workers_before"]
    assert len(set(before)) == 2 and "head" not in before and report["killed"] in before, report
    assert report["epochs_when_killed"] == [1], "the node should have died in epoch 2, after epoch 1's checkpoint"
    # ... and the recovered workers run on live nodes only
    assert report["killed"] not in report["workers_after"] and len(set(report["workers_after"])) == 2, report
    run = tmp_path / "runs" / "mn"
    with open(run / "metrics.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2]  # each epoch once
    config = json.loads((run / "config.json").read_text())
    assert config["resumes"] == [1] and config["epochs_done"] == 2  # restored from epoch 1's checkpoint
    _, spec = load_checkpoint(run / "model.pt")
    assert spec.task == "gz2"
