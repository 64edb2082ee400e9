"""Failures to read inputs or write outputs end in one line, and the rerun after the fix completes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from galaxy_ray import cli
from galaxy_ray.synthetic import synthetic_table

ROOT = Path(__file__).resolve().parents[2]
SIZE = 32


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("galaxy-ray: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_checkpoint) -> str:
    return tiny_checkpoint(str(tmp_path_factory.mktemp("model") / "model.pt"), size=SIZE)


@pytest.fixture(scope="module")
def shard_source(tmp_path_factory, write_shards) -> str:
    out = str(tmp_path_factory.mktemp("survey"))
    write_shards(synthetic_table(12, size=SIZE, seed=3), out, rows_per_shard=4)
    return out


def test_an_out_that_is_a_file_is_one_line_in_infer_pack_and_report(ray_cluster, checkpoint, shard_source, tmp_path,
                                                                    capsys):
    in_the_way = tmp_path / "catalog"
    in_the_way.write_text("not a folder")
    commands = {
        "infer": ["infer", "--checkpoint", checkpoint, "--source", shard_source, "--out", str(in_the_way)],
        "pack": ["pack", shard_source, str(in_the_way)],
        "report": ["report", shard_source, str(in_the_way)],
    }
    for name, argv in commands.items():
        assert cli.main(argv) == 2, name
        line = _one_error_line(capsys.readouterr().err)
        assert str(in_the_way) in line and "give a folder path" in line, (name, line)
    assert in_the_way.read_text() == "not a folder"


def test_a_checkpoint_whose_spec_lacks_keys_is_one_line(checkpoint, tmp_path, capsys):
    stored = torch.load(checkpoint, weights_only=True)
    del stored["spec"]["task"]
    damaged = tmp_path / "damaged.pt"
    torch.save(stored, damaged)
    png = tmp_path / "galaxy.png"
    png.write_bytes(synthetic_table(1, size=SIZE, seed=1)["image"][0].as_py())
    assert cli.main(["predict", str(damaged), str(png)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "model spec without task" in line


def _mount_small_tmpfs(where: Path) -> bool:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


@pytest.mark.slow
def test_a_full_disk_during_infer_is_one_line_leaves_no_partial_file_and_the_rerun_completes(
        ray_cluster, checkpoint, shard_source, tmp_path):
    disk = tmp_path / "small_disk"
    if not _mount_small_tmpfs(disk):
        pytest.skip("cannot mount a small tmpfs here (needs root); the full-disk case is not exercised")
    try:
        out = disk / "catalog"
        out.mkdir()
        filler = disk / "filler"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler.write_bytes(b"\0" * (free - 8 * 1024))  # room for the run key, not for the catalog files
        env = dict(os.environ, RAY_ADDRESS=ray_cluster.get_runtime_context().gcs_address)
        cmd = [sys.executable, str(ROOT / "jobs" / "infer.py"), "--checkpoint", checkpoint, "--source", shard_source,
               "--out", str(out), "--rows-per-file", "4", "--batch-size", "4", "--num-actors", "1"]
        full = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert full.returncode == 2
        line = _one_error_line(full.stderr)
        assert "no space left" in line and "rerun the same command" in line and str(out) in line
        assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]
        filler.unlink()
        rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert "catalog " in rerun.stdout and " 12 rows in 3 file(s)" in rerun.stdout
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
