"""Issue 33, section 3: a full disk during ``pack`` (the error is raised inside a Ray task) is one line.

The disk is real: a tmpfs of a few pages mounted in a private mount namespace
(``unshare -m``; it needs root, or CAP_SYS_ADMIN) that only the ``galaxy-ray
pack`` subprocess, its local Ray and their workers see.  Where it cannot be
mounted the tests skip and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from galaxy_ray.synthetic import synthetic_table

SIZE = 32


def _namespace_mounts(tmp_path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                           f"mount -t tmpfs -o size=64k tmpfs {probe}"], capture_output=True)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """``run(script)``: a shell script run where ``tmp_path/disk`` is a tmpfs of ``$SIZE`` bytes (env)."""
    if not _namespace_mounts(tmp_path):
        pytest.skip("mounting a small tmpfs needs root or CAP_SYS_ADMIN and unshare(1)")
    disk = tmp_path / "disk"
    disk.mkdir()

    def run(script: str, size: str) -> subprocess.CompletedProcess:
        body = f"mount -t tmpfs -o size={size} tmpfs {disk} && {script}"
        return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", body],
                              capture_output=True, text=True, timeout=900)
    return disk, run


def _pack_command(src, out) -> str:
    return f"{sys.executable} -m galaxy_ray.cli pack {src} {out} --rows-per-shard 10 --json"


@pytest.mark.slow
def test_a_full_disk_during_pack_is_one_line_naming_the_file_and_what_to_do(tmp_path, write_shards, small_disk):
    disk, run = small_disk
    write_shards(synthetic_table(40, size=SIZE, seed=1), str(tmp_path / "src"), 10)
    out = disk / "out"
    done = run(_pack_command(tmp_path / "src", out) + "; echo rc=$?", "12k")  # _pack.json fits, no shard does
    assert done.stdout.strip().splitlines()[-1] == "rc=2", done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1] == (f"galaxy-ray: error: {out}/part-00000.parquet: no space left on the device; free space or "
                         "write to another --out, then rerun the same command to finish"), done.stderr[-2000:]
    assert not any("Traceback" in line or "ERROR" in line for line in lines), done.stderr[-2000:]


@pytest.mark.slow
def test_a_disk_that_fills_part_way_keeps_the_written_shards_and_the_rerun_finishes(tmp_path, write_shards,
                                                                                    small_disk):
    """A variant: the disk fills after some shards are published; freed, the same command finishes the pack."""
    disk, run = small_disk
    write_shards(synthetic_table(60, size=SIZE, seed=2), str(tmp_path / "src"), 10)  # ~34 kB a shard
    out, first = disk / "out", tmp_path / "first"
    pack = _pack_command(tmp_path / "src", out)
    done = run(f"{pack}; echo rc=$?; cp -r {out} {first}; mount -o remount,size=4m {disk} && {pack}", "100k")
    assert done.stdout.startswith("rc=2\n"), done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("galaxy-ray: error: ")]
    assert len(errors) == 1, done.stderr[-2000:]
    assert re.fullmatch(rf"galaxy-ray: error: {out}/part-0000[0-5]\.parquet: no space left on the device; free "
                        r"space or write to another --out, then rerun the same command to finish"
                        r"( \([1-5] of 6 shards written; a rerun keeps them\))?", errors[0]), errors[0]
    written = sorted(p.name for p in first.iterdir() if p.name != "_pack.json")
    assert 0 < len(written) < 6  # some shards fitted before the disk filled ...
    for name in written:  # ... each published whole, and no temporary file is left beside them
        assert re.fullmatch(r"part-0000[0-5]\.parquet", name) and pq.read_table(first / name).num_rows == 10
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["rows"] == 60 and summary["shards"] == 6
    assert summary["skipped"] == len(written) and summary["written"] == 6 - len(written)
