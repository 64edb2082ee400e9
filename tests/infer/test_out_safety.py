"""infer never destroys or mixes a catalog or its inputs (issue 33, section 1).

* an ``--out`` that is, holds or lies inside its source is refused before anything is written;
* ``--overwrite`` removes only the files a run key lists, and the plain rerun after it resumes;
* one writer per ``--out`` (an atomic lock; a dead run's lock does not block);
* an input rewritten in place under the same name is seen on rerun.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from galaxy_ray import cli, infer
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import layout, storage
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.synthetic import synthetic_table
from builders import noise_png

ROOT = Path(__file__).resolve().parents[2]
SIZE = 32
#: The lock file an infer run holds in its --out (docs/contracts.md).
LOCK_NAME = "_infer.lock"


def _quiet(_line: str) -> None:
    pass


def _run(checkpoint: str, source: str, out: str, log=_quiet, **options) -> dict:
    return infer.run_inference(checkpoint, source, out, batch_size=6, rows_per_file=6, num_actors=1, log=log,
                               progress=False, **options)


def _tree(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_checkpoint) -> str:
    return tiny_checkpoint(str(tmp_path_factory.mktemp("model") / "model.pt"), size=SIZE)


@pytest.fixture()
def shards(tmp_path, write_shards) -> str:
    source = str(tmp_path / "survey")
    write_shards(synthetic_table(12, size=SIZE, seed=3), source, rows_per_shard=6)
    return source


# --------------------------------------------------------------------------- --out apart from the source


def test_an_out_that_is_holds_or_lies_inside_the_source_is_one_line_and_touches_nothing(model, shards, capsys):
    before = _tree(shards)
    for out in (shards, str(Path(shards).parent), str(Path(shards) / "catalog"), shards + "/"):
        argv = ["infer", "--checkpoint", model, "--source", shards, "--out", out, "--overwrite"]
        assert cli.main(argv) == 2, out
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("galaxy-ray: error:")]
        assert len(errors) == 1 and "Traceback" not in err, err[-2000:]
        assert "is, holds or lies inside the source" in errors[0] and shards in errors[0]
    assert _tree(shards) == before  # the packed survey is whole: no catalog file, no run key, nothing removed
    assert not (Path(shards) / "catalog").exists()


def test_an_out_reached_through_a_symlink_to_the_source_is_refused(model, shards, tmp_path):
    link = tmp_path / "same_survey"
    link.symlink_to(shards)
    with pytest.raises(GalaxyRayError, match="is, holds or lies inside the source"):
        _run(model, shards, str(link))
    assert not (Path(shards) / layout.RUN_KEY).exists()


def test_an_s3_out_inside_or_equal_to_an_s3_source_is_refused(model, s3_bucket):
    source = f"{s3_bucket}/survey"
    for out in (source, f"{source}/catalog", s3_bucket):
        with pytest.raises(GalaxyRayError, match="is, holds or lies inside the source"):
            _run(model, source, out)
    assert not storage.exists(f"{source}/{layout.RUN_KEY}")
    # a sibling prefix that only starts with the same letters is not inside it
    assert not storage.same_or_within(source, f"{s3_bucket}/survey-catalog")


def test_an_out_holding_the_cutouts_a_manifest_names_is_refused(ray_cluster, model, tmp_path):
    """Variant not in the issue: the manifest lies elsewhere, its cutouts in the folder given as --out."""
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        (images / f"g{i}.png").write_bytes(noise_png(seed=i, side=SIZE))
    manifest = tmp_path / "tables" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("object_id,path\n" + "".join(f"g{i},{images}/g{i}.png\n" for i in range(3)))
    before = _tree(images)
    with pytest.raises(GalaxyRayError, match=r"is or holds .*images, a folder of the cutouts"):
        _run(model, str(manifest), str(images), source_options={"allow_outside_paths": True})
    assert _tree(images) == before


# --------------------------------------------------------------------------- --overwrite


@pytest.mark.slow
def test_overwrite_then_the_plain_rerun_resumes(ray_cluster, model, shards, tmp_path):
    out = str(tmp_path / "catalog")
    _run(model, shards, out)
    replaced = _run(model, shards, out, overwrite=True)
    assert replaced["files_this_run"] == 2
    key = json.loads(Path(out, layout.RUN_KEY).read_text())
    assert key["files"] == sorted(p.name for p in Path(out).glob("part-*.parquet"))
    again = _run(model, shards, out)  # refused on HEAD: the key was gone
    assert again["files_this_run"] == 0 and again["files_skipped"] == 2 and again["rows"] == 12


@pytest.mark.slow
def test_overwrite_never_removes_part_files_no_run_key_lists(ray_cluster, model, shards, tmp_path, write_shards):
    out = tmp_path / "catalog"
    _run(model, shards, str(out))
    ours = _tree(out)
    # a packed survey and a Spark file beside the catalog: part-*.parquet that galaxy-ray infer did not write
    other = tmp_path / "other"
    write_shards(synthetic_table(4, size=SIZE, seed=9), str(other), rows_per_shard=4)
    shutil.copy(other / "part-00000.parquet", out / "part-00000.parquet")
    (out / "part-00000-c000.snappy.parquet").write_bytes(b"spark")
    with pytest.raises(GalaxyRayError, match=r"2 part file\(s\) no galaxy-ray run key lists .*move them away"):
        _run(model, shards, str(out), merger_threshold=0.9, overwrite=True)
    after = _tree(out)
    assert {n: after[n] for n in ours} == ours  # refused before anything was removed
    assert after["part-00000.parquet"] == (other / "part-00000.parquet").read_bytes()

    (out / "part-00000.parquet").unlink()
    (out / "part-00000-c000.snappy.parquet").unlink()
    (out / "notes.txt").write_text("mine")
    lines: list[str] = []
    _run(model, shards, str(out), merger_threshold=0.9, overwrite=True, log=lines.append)
    assert any("removed the 2 catalog file(s) galaxy-ray wrote" in s for s in lines)
    assert (out / "notes.txt").read_text() == "mine"


def test_overwrite_of_a_catalog_without_a_files_list_removes_only_parts_carrying_infers_provenance(tmp_path):
    from galaxy_ray.catalog.write import write_catalog_file
    from galaxy_ray.infer.run_key import owned_files

    table = synthetic_table(2, size=16, seed=1).select([C.OBJECT_ID, C.RA, C.DEC])
    table = table.append_column("prob_x", table[C.RA].cast("float32"))
    for name, value in ((C.MORPHOLOGY, None), (C.P_MERGER, None), (C.IS_MERGER, None), (C.ERROR, None)):
        table = table.append_column(name, [[value] * 2])
    write_catalog_file(table, str(tmp_path / "part-r000000000-000000001.parquet"),
                       {"output_columns": ["prob_x"], "file": "part-r000000000-000000001.parquet"})
    write_catalog_file(table, str(tmp_path / "part-00007.parquet"), {"output_columns": ["prob_x"]})
    pq.write_table(table, tmp_path / "part-00008.parquet")
    published = {"part-r000000000-000000001.parquet", "part-00007.parquet", "part-00008.parquet"}
    assert owned_files(str(tmp_path), None, published) == ["part-r000000000-000000001.parquet"]
    assert owned_files(str(tmp_path), {"files": ["part-00008.parquet", "part-9.parquet"]},
                       published) == ["part-00008.parquet"]


# --------------------------------------------------------------------------- one writer per --out


def _try_create(path: str, barrier, results) -> None:
    from galaxy_ray.io.lock import create_exclusive

    barrier.wait()
    results.put(create_exclusive(path, str(os.getpid()).encode()))


@pytest.mark.slow
def test_of_many_processes_creating_the_lock_at_once_exactly_one_gets_it(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    path = str(tmp_path / LOCK_NAME)
    procs = [ctx.Process(target=_try_create, args=(path, barrier, results)) for _ in range(6)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sorted(got) == [False] * 5 + [True]
    assert int(Path(path).read_text()) in {p.pid for p in procs}


def test_a_lock_held_by_a_live_run_refuses_and_a_dead_runs_lock_is_taken_over(tmp_path):
    from galaxy_ray.io.lock import OutputLock

    out = str(tmp_path / "catalog")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        holder = {"host": socket.gethostname(), "pid": sleeper.pid, "started": "2026-01-01T00:00:00Z", "token": "t"}
        os.makedirs(out)
        Path(out, LOCK_NAME).write_text(json.dumps(holder))
        with pytest.raises(GalaxyRayError, match=rf"another galaxy-ray infer is writing this catalog \(pid "
                                                 rf"{sleeper.pid} on .*delete .*{LOCK_NAME}"):
            OutputLock(out, log=_quiet).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    lines: list[str] = []
    with OutputLock(out, log=lines.append):  # the same pid, now dead: stale, removed with a line
        mine = json.loads(Path(out, LOCK_NAME).read_text())
        assert mine["pid"] == os.getpid()
    assert any("removed the stale lock" in s and str(sleeper.pid) in s for s in lines)
    assert not Path(out, LOCK_NAME).exists()  # released at the end


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    from galaxy_ray.io.lock import OutputLock

    out = str(tmp_path)
    Path(out, LOCK_NAME).write_text(json.dumps({"host": "elsewhere.example", "pid": 1, "started": "x"}))
    with pytest.raises(GalaxyRayError, match=r"pid 1 on elsewhere.example"):
        OutputLock(out, log=_quiet).acquire()
    assert json.loads(Path(out, LOCK_NAME).read_text())["host"] == "elsewhere.example"


def test_an_s3_lock_is_a_conditional_put_only_one_run_gets(s3_bucket):
    """Variant not in the issue: the lock on an S3 --out (If-None-Match: * on moto)."""
    from galaxy_ray.io.lock import OutputLock

    out = f"{s3_bucket}/catalog"
    first = OutputLock(out, log=_quiet)
    first.acquire()
    second = OutputLock(out, log=_quiet)
    second.owner["host"] = "another-host"  # a run elsewhere: its pid cannot be checked from here
    with pytest.raises(GalaxyRayError, match="another galaxy-ray infer is writing this catalog"):
        second.acquire()
    first.release()
    assert not storage.exists(f"{out}/{LOCK_NAME}")
    second.acquire()
    second.release()


@pytest.mark.slow
def test_a_second_run_on_one_out_while_the_first_writes_is_refused_and_the_catalog_stays_whole(
        ray_cluster, model, tmp_path, write_shards):
    first_source, second_source = str(tmp_path / "a"), str(tmp_path / "b")
    write_shards(synthetic_table(36, size=SIZE, seed=5), first_source, rows_per_shard=6)
    write_shards(synthetic_table(36, size=SIZE, seed=6), second_source, rows_per_shard=6)
    out = str(tmp_path / "catalog")
    env = dict(os.environ, RAY_ADDRESS=ray_cluster.get_runtime_context().gcs_address, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(ROOT / "jobs" / "infer.py"), "--checkpoint", model, "--source", first_source,
           "--out", out, "--rows-per-file", "6", "--batch-size", "2", "--num-actors", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True, env=env, cwd=str(tmp_path))
    try:
        deadline = time.time() + 240
        for line in proc.stdout:
            if line.startswith("published ") or time.time() > deadline:
                break
        os.killpg(proc.pid, signal.SIGSTOP)  # the first run is mid-way: paused, it still holds the lock
        # a scheduler's retry of the same job, then someone else's survey: both refused, neither writes
        for source in (first_source, second_source):
            with pytest.raises(GalaxyRayError, match=rf"another galaxy-ray infer is writing this catalog \(pid {proc.pid}"):
                infer.run_inference(model, source, out, batch_size=2, rows_per_file=6, num_actors=1, log=_quiet,
                                    progress=False)
        os.killpg(proc.pid, signal.SIGCONT)
        proc.stdout.read()
        assert proc.wait(timeout=300) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    ids = []
    for part in Path(out).glob("part-*.parquet"):
        ids += pq.read_table(part, columns=[C.OBJECT_ID])[C.OBJECT_ID].to_pylist()
    expected = synthetic_table(36, size=SIZE, seed=5)[C.OBJECT_ID].to_pylist()
    summary = json.loads(Path(out, layout.CATALOG_SUMMARY).read_text())
    assert sorted(ids) == sorted(expected) and summary["rows"] == 36 and summary["source"] == first_source
    assert not Path(out, LOCK_NAME).exists()


# --------------------------------------------------------------------------- inputs rewritten in place


@pytest.mark.slow
def test_a_cutout_rewritten_in_place_under_the_same_name_is_refused_on_rerun(ray_cluster, model, tmp_path):
    folder = tmp_path / "survey"
    folder.mkdir()
    for i in range(4):
        (folder / f"g{i}.png").write_bytes(noise_png(seed=i, side=SIZE))
    (folder / "manifest.csv").write_text("object_id,path\n" + "".join(f"g{i},g{i}.png\n" for i in range(4)))
    out = str(tmp_path / "catalog")
    _run(model, str(folder / "manifest.csv"), out)
    assert _run(model, str(folder / "manifest.csv"), out)["files_this_run"] == 0  # unchanged: resumes
    (folder / "g2.png").write_bytes(noise_png(seed=99, side=SIZE))  # other pixels, the same name and row
    stat = (folder / "g2.png").stat()
    os.utime(folder / "g2.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # the clock moved on
    with pytest.raises(GalaxyRayError, match=r"made by another run \(input_files .*rewritten"):
        _run(model, str(folder / "manifest.csv"), out)


@pytest.mark.slow
def test_a_shard_rewritten_in_place_with_the_same_ids_is_refused_on_rerun(ray_cluster, model, tmp_path, write_shards):
    """Variant not in the issue: the same ids and row counts (the old fingerprint), other pixels."""
    source, out = str(tmp_path / "survey"), str(tmp_path / "catalog")
    table = synthetic_table(12, size=SIZE, seed=3)
    write_shards(table, source, rows_per_shard=6)
    _run(model, source, out)
    other = synthetic_table(12, size=SIZE, seed=4)
    other = other.set_column(other.column_names.index(C.OBJECT_ID), C.OBJECT_ID, table[C.OBJECT_ID])
    shard = Path(source, "part-00001.parquet")
    mtime = shard.stat().st_mtime_ns
    write_shards(other, source, rows_per_shard=6)
    os.utime(shard, ns=(mtime + 1_000_000_000, mtime + 1_000_000_000))
    with pytest.raises(GalaxyRayError, match=r"another run \(input_files"):
        _run(model, source, out)


def test_overwrite_replaces_an_unreadable_run_key_and_records_the_new_one(tmp_path):
    """Variant not in the issue: a _run_key.json damaged on copy; the refusal says --overwrite, which must work."""
    from galaxy_ray.infer.run_key import check_run_key, run_key

    prov = {"checkpoint_sha256": "ab" * 32, "source": "s", "source_format": "shards", "preprocess": {"image_size": 32},
            "tta": False, "merger_threshold": 0.5, "output_columns": ["a"], "tree_columns": [],
            "source_fingerprint": "f", "input_files": "g"}
    Path(tmp_path, layout.RUN_KEY).write_bytes(b"\x00{not json")
    with pytest.raises(GalaxyRayError, match="unreadable run key .*pass --overwrite"):
        check_run_key(str(tmp_path), run_key(prov), set(), overwrite=False, log=_quiet, files=["part-00000-00000.parquet"])
    check_run_key(str(tmp_path), run_key(prov), set(), overwrite=True, log=_quiet, files=["part-00000-00000.parquet"])
    stored = json.loads(Path(tmp_path, layout.RUN_KEY).read_text())
    assert stored["checkpoint_sha256"] == "ab" * 32 and stored["files"] == ["part-00000-00000.parquet"]
    # the plain rerun of the same key now goes through
    check_run_key(str(tmp_path), run_key(prov), set(), overwrite=False, log=_quiet, files=["part-00000-00000.parquet"])
