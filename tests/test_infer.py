"""Catalog-scale inference on a real local Ray cluster, real models, real Parquet and S3 (moto)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from galaxy_ray import catalog, infer, schema
from galaxy_ray.io import storage
from galaxy_ray import model as model_mod
from galaxy_ray.data import sources
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.data.transforms import PreprocessConfig, preprocess_batch
from galaxy_ray.infer import pipeline
from galaxy_ray.merger.rule import MergerRule
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.synthetic import synthetic_table
from galaxy_ray.trees import GZ2

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32  # model input side, pixels: tiny and fast


# --------------------------------------------------------------------------- inputs


def _bad_cutouts() -> dict[str, bytes | None]:
    """Cutouts that cannot be classified, by the reason they should report."""
    from astropy.io import fits

    good_png = synthetic_table(1, size=SIZE, seed=9)[C.IMAGE][0].as_py()
    nan_fits = io.BytesIO()
    fits.PrimaryHDU(np.full((3, SIZE, SIZE), np.nan, dtype=np.float32)).writeto(nan_fits)
    wrong_shape = io.BytesIO()
    np.save(wrong_shape, np.zeros((4, 4, 4), dtype=np.uint8))
    return {
        "truncated": good_png[: len(good_png) // 3],
        "garbage": b"this is not an image",
        "missing": None,
        "nan_fits": nan_fits.getvalue(),
        "wrong_shape": wrong_shape.getvalue(),
    }


def _survey(n: int, seed: int, bad: bool) -> pa.Table:
    """A synthetic cutout table; with ``bad``, some rows replaced by broken cutouts and one without RA/Dec."""
    table = synthetic_table(n, size=SIZE, seed=seed)
    if not bad:
        return table
    images = table[C.IMAGE].to_pylist()
    ids = table[C.OBJECT_ID].to_pylist()
    for k, (reason, data) in enumerate(_bad_cutouts().items()):
        row = 2 + k * ((n - 2) // 5)
        images[row] = data
        ids[row] = f"bad-{reason}"
    ra = table[C.RA].to_pylist()
    ra[1] = None  # a good cutout without a position: kept, with a null _healpix_29
    table = table.set_column(table.column_names.index(C.IMAGE), C.IMAGE, pa.array(images, pa.binary()))
    table = table.set_column(table.column_names.index(C.OBJECT_ID), C.OBJECT_ID, pa.array(ids, pa.string()))
    return table.set_column(table.column_names.index(C.RA), C.RA, pa.array(ra, pa.float64()))


def _read_catalog(out: str) -> tuple[list[str], pa.Table]:
    files = [f for f in storage.list_files(out, (".parquet",))]
    tables = []
    for f in files:
        fs, path = storage.pyarrow_filesystem(f)
        tables.append(pq.read_table(path, filesystem=fs))
    return files, pa.concat_tables(tables)


def _quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def gz2_checkpoint(tmp_path_factory, tiny_checkpoint) -> str:
    return tiny_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "model.pt"), size=SIZE)


@pytest.fixture(scope="module")
def survey(tmp_path_factory, write_shards) -> tuple[str, pa.Table]:
    """40 cutouts (5 broken) in 4 shards of 10."""
    table = _survey(40, seed=3, bad=True)
    out = str(tmp_path_factory.mktemp("survey"))
    write_shards(table, out, rows_per_shard=10)
    return out, table


@pytest.fixture(scope="module")
def shard_run(ray_cluster, gz2_checkpoint, survey, tmp_path_factory) -> tuple[str, dict]:
    source, _ = survey
    out = str(tmp_path_factory.mktemp("catalog"))
    summary = infer.run_inference(gz2_checkpoint, source, out, batch_size=8, rows_per_file=15,
                                  num_actors=1, log=_quiet)
    return out, summary


# --------------------------------------------------------------------------- units (no Ray)


def test_shard_units_group_consecutive_shards_by_footer_counts():
    plan = infer.plan_shard_units([f"s3://b/part-{k:05d}.parquet" for k in range(6)], [10, 10, 0, 25, 3, 4], 20)
    assert [u.name for u in plan.units] == ["part-00000-00001.parquet", "part-00002-00003.parquet",
                                           "part-00004-00005.parquet"]
    assert [u.rows for u in plan.units] == [20, 25, 7]
    assert plan.shard_unit["part-00003.parquet"] == 1 and plan.rows == 52
    rows = infer.plan_row_units(25, 10)
    assert [u.row_range for u in rows.units] == [(0, 9), (10, 19), (20, 24)]
    with pytest.raises(GalaxyRayError, match="rows-per-file"):
        infer.plan_row_units(5, 0)


def test_object_store_budget_leaves_each_operator_room_for_two_decoded_batches():
    batch = 64 * 3 * 128 * 128 * 4  # float32 ResNet-18 batch, 12 MiB
    for actors in (1, 4):
        budget = infer.object_store_budget(batch, actors)
        # a twelfth of the budget: what Ray Data reserves for each operator's outputs with three operators
        assert budget / 12 >= 2 * batch
        assert budget >= 4 * actors * batch  # and a queue of batches for every model actor
    assert infer.object_store_budget(1 << 20, 1) == 256 << 20  # small batches: the floor
    # never beyond half the cluster's store, Ray Data's own default
    assert infer.object_store_budget(batch, 64, store_bytes=2 << 30) == 1 << 30
    assert infer.object_store_budget(batch, 1) == infer.object_store_budget(batch, 1, store_bytes=None)


def test_decode_stage_splits_a_block_into_model_batches_with_every_row():
    table = _survey(23, seed=4, bad=True)
    block = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
    block["_unit"] = np.zeros(23, dtype=np.int32)
    spec = model_mod.ModelSpec.for_gz2("resnet18", PreprocessConfig(SIZE))
    kwargs = dict(preprocess_config=spec.preprocess, shard_unit=None)
    tables = list(infer.prepare_blocks(block, batch_size=10, **kwargs))
    assert all(t.schema.field(C.ERROR).type == pa.string() for t in tables)  # typed: None stays None in Ray Data
    from ray.data.block import BlockAccessor  # what the model stage receives of each

    batches = [BlockAccessor.for_block(t).to_batch_format("numpy") for t in tables]
    assert [len(b[C.OBJECT_ID]) for b in batches] == [10, 10, 3]
    assert all(b["pixels"].dtype == np.uint8 for b in batches)  # the model input, normalised in the net
    whole = infer.prepare_batch(block, **kwargs)
    np.testing.assert_array_equal(np.concatenate([b["pixels"] for b in batches]), whole["pixels"])
    assert list(np.concatenate([b[C.ERROR] for b in batches])) == list(whole[C.ERROR])
    assert sum(e is not None for e in whole[C.ERROR]) == 5  # the planted bad cutouts stay as error rows


def test_cpu_clusters_run_one_decode_task_per_model_actor_and_gpu_clusters_no_cap():
    # CPU: decoders share the model's cores, so more of them only add worker processes
    assert [pipeline.default_decode_tasks(a, use_gpu=False) for a in ((1, 1), (1, 3), (4, 4), (0, 0))] == [1, 3, 4, 1]
    assert pipeline.default_decode_tasks((2, 2), use_gpu=True) is None  # GPU: decoding feeds it, as many as fit


@pytest.mark.slow
def test_decode_tasks_only_ever_lower_their_own_priority():
    code = ("import os; from galaxy_ray.infer.prepare import yield_cpu; "
            "yield_cpu(7); a = os.getpriority(os.PRIO_PROCESS, 0); "
            "yield_cpu(3); print(a, os.getpriority(os.PRIO_PROCESS, 0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         preexec_fn=lambda: os.setpriority(os.PRIO_PROCESS, 0, 0) if os.getuid() == 0 else None)
    start = 0 if os.getuid() == 0 else os.getpriority(os.PRIO_PROCESS, 0)
    assert out.stdout.split() == [str(max(7, start))] * 2


def test_niced_decoding_leaves_the_calling_threads_priority_alone():
    """A decode task lowers the priority of its own decode thread only: Ray may later run a model
    actor on the same worker's main thread, which must not inherit the decoders' nice value."""
    import threading

    table = _survey(12, seed=6, bad=True)
    block = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
    block["_unit"] = np.zeros(12, dtype=np.int32)
    kwargs = dict(preprocess_config=PreprocessConfig(SIZE), shard_unit=None, batch_size=5)
    before = os.getpriority(os.PRIO_PROCESS, 0)
    niced = list(infer.prepare_blocks(block, niceness=before + 3, **kwargs))
    assert os.getpriority(os.PRIO_PROCESS, 0) == before  # this (main) thread's own nice value
    decoders = [t for t in threading.enumerate() if t.name.startswith(f"galaxy-ray-decode-nice{before + 3}")]
    assert len(decoders) == 1
    with open(f"/proc/self/task/{decoders[0].native_id}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[16]) == before + 3  # field 19 of proc(5): nice
    plain = list(infer.prepare_blocks(block, **kwargs))
    assert [t.num_rows for t in niced] == [t.num_rows for t in plain] == [5, 5, 2]
    from ray.data.block import BlockAccessor

    for a, b in zip(niced, plain):  # the same rows: NaN positions and coverage of the bad cutouts included
        a, b = (BlockAccessor.for_block(t).to_batch_format("numpy") for t in (a, b))
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_gpu_flag_takes_auto_yes_no_and_its_use_gpu_alias():
    base = ["--checkpoint", "m.pt", "--source", "s", "--out", "o"]
    assert infer.build_parser().parse_args(base).gpu == "auto"
    assert infer.build_parser().parse_args([*base, "--gpu", "no"]).gpu == "no"
    assert infer.build_parser().parse_args([*base, "--use-gpu", "yes"]).gpu == "yes"
    with pytest.raises(SystemExit):
        infer.build_parser().parse_args([*base, "--gpu", "maybe"])


def test_tta_averages_over_the_dihedral_group():
    import torch

    torch.manual_seed(0)
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(5),
                               torch.nn.Softmax(dim=1))
    x = torch.rand(2, 3, 8, 8)
    plain = conv(x)
    from galaxy_ray import model as model_mod

    averaged = model_mod.dihedral_predict(conv, x)
    # the average over the group is the same for every member of the group's orbit
    for moved in (x.rot90(1, dims=(-2, -1)), x.flip(-1), x.flip(-2).rot90(3, dims=(-2, -1))):
        torch.testing.assert_close(model_mod.dihedral_predict(conv, moved), averaged)
    assert not torch.allclose(plain, averaged)
    torch.testing.assert_close(averaged.sum(dim=1), torch.ones(2))


# --------------------------------------------------------------------------- the catalog


@pytest.mark.slow
def test_catalog_columns_types_rows_and_errors(shard_run, survey, gz2_checkpoint):
    out, summary = shard_run
    _, table = survey
    files, cat = _read_catalog(out)
    _, spec = model_mod.load_checkpoint(gz2_checkpoint)
    # The contract's columns: the 37 cumulative outputs, then the conditional fractions and proportions
    # asked as Galaxy Zoo publishes them (issue 22), then the coverage of each cutout (an optional
    # column: older catalogs lack it).
    tree = [*GZ2.fraction_columns, *GZ2.proportion_asked_columns]
    expected = catalog.catalog_schema(model_mod.output_columns(spec), tree).append(pa.field(C.COVERAGE, pa.float32()))
    assert cat.schema.remove_metadata().equals(expected)
    assert cat.column_names[:4] == [C.OBJECT_ID, C.RA, C.DEC, C.HEALPIX]
    assert cat.column_names[4:41] == list(schema.GZ2_ANSWER_COLUMNS) and cat.column_names[41:89] == tree
    assert cat.column_names[-5:] == [C.MORPHOLOGY, C.P_MERGER, C.IS_MERGER, C.ERROR, C.COVERAGE]

    # every input row exactly once, broken cutouts included
    assert sorted(cat[C.OBJECT_ID].to_pylist()) == sorted(table[C.OBJECT_ID].to_pylist())
    rows = {r[C.OBJECT_ID]: r for r in cat.to_pylist()}
    bad = [i for i in rows if i.startswith("bad-")]
    assert len(bad) == 5
    for oid in bad:
        r = rows[oid]
        assert r[C.ERROR], oid
        assert r[C.MORPHOLOGY] is None and r[C.P_MERGER] is None and r[C.IS_MERGER] is None
        assert all(r[c] is None for c in (*schema.GZ2_ANSWER_COLUMNS, *tree))
    assert "truncated" in rows["bad-truncated"][C.ERROR] or "corrupt" in rows["bad-truncated"][C.ERROR]
    assert "NaN" in rows["bad-nan_fits"][C.ERROR]
    good = cat.filter(pa.compute.is_null(cat[C.ERROR]))
    assert good.num_rows == table.num_rows - 5
    # the one good cutout without RA/Dec (row 1) is counted, in the summary and in its file's footer
    assert summary["rows_without_position"] == good[C.RA].null_count == 1
    assert good[C.P_MERGER].null_count == 0 and good[C.MORPHOLOGY].null_count == 0
    assert good[C.COVERAGE].to_numpy().min() == 1.0  # synthetic cutouts lie wholly inside the footprint
    votes = np.column_stack([good[c].to_numpy() for c in schema.GZ2_ANSWER_COLUMNS])
    schema.check_tree(votes, atol=1e-4)
    # each question's conditional fractions sum to 1; its proportion asked is its parent answer's cumulative value
    for q, asked in zip(GZ2.questions, GZ2.proportion_asked_columns):
        fractions = np.column_stack([good[GZ2.fraction_columns[i]].to_numpy() for i in q.indices])
        np.testing.assert_allclose(fractions.sum(axis=1), 1.0, atol=1e-5)
        parent = np.ones(good.num_rows) if q.parent is None else votes[:, q.parent]
        np.testing.assert_allclose(good[asked].to_numpy(), parent, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(fractions * parent[:, None], votes[:, q.indices], rtol=1e-5, atol=1e-7)
    p = good[C.P_MERGER].to_numpy()
    np.testing.assert_array_equal(good[C.IS_MERGER].to_numpy(), p >= 0.5)
    np.testing.assert_allclose(p, good["odd_feature_merger"].to_numpy())

    # positions carried through; HEALPix index null exactly where RA/Dec are null
    no_pos = cat.filter(pa.compute.is_null(cat[C.RA]))
    assert no_pos.num_rows == 1 and no_pos[C.HEALPIX].null_count == 1
    with_pos = cat.filter(pa.compute.is_valid(cat[C.RA]))
    np.testing.assert_array_equal(
        with_pos[C.HEALPIX].to_numpy(),
        catalog.healpix29(with_pos[C.RA], with_pos[C.DEC]).to_numpy(),
    )
    assert summary["rows"] == table.num_rows and summary["error_rows"] == 5
    # every error counted once, by its reason, with the cutouts' names left out
    assert sum(summary["errors_by_reason"].values()) == 5
    assert not any("bad-" in reason for reason in summary["errors_by_reason"])


@pytest.mark.slow
def test_reading_and_decoding_run_as_one_task_per_shard(ray_cluster, gz2_checkpoint, survey):
    # Separate read and decode operators let encoded blocks fill the object-store budget and
    # stall the decoder (issue 4); the pipeline must keep them fused, CPU-only and with a task cap.
    source, _ = survey
    plan = infer.make_plan(sources.open_source(source, "shards"), rows_per_file=15)
    _, spec = model_mod.load_checkpoint(gz2_checkpoint)
    rule = MergerRule.from_checkpoint(spec, {}, threshold=0.5)
    for decode_tasks in (None, 2):
        ds = pipeline.build_pipeline(gz2_checkpoint, plan, plan.units, spec, batch_size=8, tta=False,
                                     rule=rule, actors=(1, 1), use_gpu=False, cpus=2,
                                     decode_tasks=decode_tasks)
        done = ds.materialize()
        assert done.count() == plan.rows
        assert "ReadParquet->MapBatches(prepare_blocks)" in done.stats()


@pytest.mark.slow
def test_files_are_units_of_shards_sorted_by_healpix(shard_run):
    out, summary = shard_run
    files, _ = _read_catalog(out)
    # 4 shards of 10 rows, 15 rows per file -> shards (0, 1) and (2, 3)
    assert [os.path.basename(f) for f in files] == ["part-00000-00001.parquet", "part-00002-00003.parquet"]
    assert summary["files"] == 2 and summary["files_this_run"] == 2
    for f in files:
        hp = pq.read_table(f, columns=[C.HEALPIX])[C.HEALPIX]
        valid = hp.drop_null().to_numpy()
        assert np.all(np.diff(valid) >= 0), f
        assert hp.null_count == 0 or hp[-1].as_py() is None  # rows without a position last
    assert not [p for p in Path(out).iterdir() if ".tmp-" in p.name]


@pytest.mark.slow
def test_predictions_equal_an_in_process_run(shard_run, survey, gz2_checkpoint):
    out, _ = shard_run
    _, table = survey
    _, cat = _read_catalog(out)
    model, spec = model_mod.load_checkpoint(gz2_checkpoint)
    batch = {k: np.array(table[k].to_pylist(), dtype=object) for k in (C.OBJECT_ID, C.IMAGE, C.SOURCE)}
    prepared = preprocess_batch(batch, spec.preprocess)
    ok = np.array([e is None for e in prepared[C.ERROR]])
    expected = model_mod.predict_numpy(model, prepared["pixels"][ok])
    by_id = {oid: i for i, oid in enumerate(cat[C.OBJECT_ID].to_pylist())}
    order = [by_id[oid] for oid in np.asarray(batch[C.OBJECT_ID])[ok]]
    columns = model_mod.output_columns(spec)
    got = np.column_stack([cat[c].to_numpy(zero_copy_only=False) for c in columns])[order]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    morph = np.asarray(cat[C.MORPHOLOGY].to_pylist(), dtype=object)[order]
    np.testing.assert_array_equal(morph, model_mod.morphology(spec, expected))


@pytest.mark.slow
def test_provenance_in_file_metadata_and_catalog_json(shard_run, survey, gz2_checkpoint):
    out, _ = shard_run
    source, table = survey
    digest = hashlib.sha256(Path(gz2_checkpoint).read_bytes()).hexdigest()
    summary = json.loads(Path(out, "_catalog.json").read_text())
    assert summary["checkpoint_sha256"] == digest
    assert summary["task"] == "gz2" and summary["merger"] == "Class8.6"
    assert summary["merger_threshold"] == 0.5
    assert summary["output_columns"] == list(schema.GZ2_ANSWER_COLUMNS)
    assert summary["kaggle_columns"] == list(schema.GZ2_KAGGLE_COLUMNS)
    assert summary["tree_columns"] == [*GZ2.fraction_columns, *GZ2.proportion_asked_columns]
    # every probability column described; the tiny checkpoint has no merger calibration, so p_merger says so
    described = summary["column_descriptions"]
    assert set(described) == {*schema.GZ2_ANSWER_COLUMNS, *summary["tree_columns"], C.P_MERGER, C.IS_MERGER,
                              C.MORPHOLOGY}
    assert described[C.P_MERGER].startswith("uncalibrated: the model's Class8.6 cumulative vote fraction")
    assert described[C.IS_MERGER].startswith("merger flag: p_merger >= 0.5")
    assert summary["rows"] == table.num_rows and summary["error_rows"] == 5
    # every error counted once, by its reason, with the cutouts' names left out
    assert sum(summary["errors_by_reason"].values()) == 5
    assert not any("bad-" in reason for reason in summary["errors_by_reason"])
    assert summary["source"] == source and summary["source_format"] == "shards"
    assert summary["seconds"] > 0 and summary["created"]
    for pkg in ("torch", "torchvision", "ray", "pyarrow"):
        assert summary["versions"][pkg]
    total = 0
    for f in sorted(Path(out).glob("part-*.parquet")):
        meta = json.loads(pq.read_schema(f).metadata[catalog.METADATA_KEY.encode()])
        n = pq.ParquetFile(f).metadata.num_rows
        assert meta["rows"] == n and meta["checkpoint_sha256"] == digest and meta["file"] == f.name
        total += meta["error_rows"]
    assert total == 5
    assert catalog.read_provenance(out)["rows"] == table.num_rows


@pytest.mark.slow
def test_rerun_skips_finished_files_and_rejects_another_split(shard_run, survey, gz2_checkpoint):
    out, _ = shard_run
    source, table = survey
    before = {p.name: p.stat().st_mtime_ns for p in Path(out).glob("part-*.parquet")}
    again = infer.run_inference(gz2_checkpoint, source, out, rows_per_file=15, log=_quiet)
    assert again["files_this_run"] == 0 and again["files_skipped"] == 2 and again["rows"] == table.num_rows
    assert {p.name: p.stat().st_mtime_ns for p in Path(out).glob("part-*.parquet")} == before
    with pytest.raises(GalaxyRayError, match="different split"):
        infer.run_inference(gz2_checkpoint, source, out, rows_per_file=25, log=_quiet)


# --------------------------------------------------------------------------- crash and resume


@pytest.mark.slow
def test_killed_run_resumes_with_every_object_once(ray_cluster, gz2_checkpoint, tmp_path, write_shards):
    table = _survey(48, seed=5, bad=False)
    source, out = str(tmp_path / "survey"), str(tmp_path / "catalog")
    write_shards(table, source, rows_per_shard=6)
    # the job joins the test's cluster, as under `ray job submit`
    env = dict(os.environ, RAY_ADDRESS=ray_cluster.get_runtime_context().gcs_address, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(ROOT / "jobs" / "infer.py"), "--checkpoint", gz2_checkpoint, "--source", source,
           "--out", out, "--rows-per-file", "6", "--batch-size", "2", "--num-actors", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True, env=env, cwd=str(tmp_path))
    try:
        deadline = time.time() + 180
        for line in proc.stdout:
            if line.startswith("published ") or time.time() > deadline:
                break
        os.killpg(proc.pid, signal.SIGKILL)  # a crash, right after the first file
    finally:
        proc.wait(timeout=30)
    written = sorted(Path(out).glob("part-*.parquet"))
    assert 1 <= len(written) < 8, "the run should have been killed part-way"
    # a kill during a publish leaves a temporary file; the rerun must ignore and remove it
    Path(out, written[0].name + ".tmp-deadbeef").write_bytes(b"partial")
    lines: list[str] = []
    summary = infer.run_inference(gz2_checkpoint, source, out, rows_per_file=6, batch_size=8, log=lines.append)
    assert summary["files_skipped"] == len(written)
    assert summary["files_this_run"] == 8 - len(written)
    assert any("temp file" in s for s in lines)
    files, cat = _read_catalog(out)
    ids = cat[C.OBJECT_ID].to_pylist()
    assert len(files) == 8
    assert sorted(ids) == sorted(table[C.OBJECT_ID].to_pylist()) and len(set(ids)) == len(ids)
    assert summary["rows"] == 48 and not list(Path(out).glob("*.tmp-*"))


# --------------------------------------------------------------------------- S3, other formats


@pytest.mark.slow
def test_s3_in_and_out(ray_cluster, s3_bucket, tmp_path, write_shards, tiny_checkpoint):
    table = _survey(20, seed=7, bad=True)
    source, out = f"{s3_bucket}/survey", f"{s3_bucket}/catalog"
    write_shards(table, source, rows_per_shard=10)
    checkpoint = f"{s3_bucket}/runs/g10/model.pt"
    local = tiny_checkpoint(str(tmp_path / "model.pt"), task="classes", size=SIZE)
    storage.write_bytes_atomic(checkpoint, Path(local).read_bytes())

    summary = infer.run_inference(checkpoint, source, out, batch_size=8, rows_per_file=100, tta=True,
                                  merger_threshold=0.05, log=_quiet)
    files, cat = _read_catalog(out)
    assert [f.rsplit("/", 1)[-1] for f in files] == ["part-00000-00001.parquet"]
    assert sorted(cat[C.OBJECT_ID].to_pylist()) == sorted(table[C.OBJECT_ID].to_pylist())
    assert cat.column_names[4:14] == [schema.class_column(c) for c in schema.GALAXY10_CLASSES]
    good = cat.filter(pa.compute.is_null(cat[C.ERROR]))
    assert good.num_rows == 15 and cat.num_rows - good.num_rows == 5
    np.testing.assert_allclose(good[C.P_MERGER].to_numpy(), good["prob_merging"].to_numpy())
    np.testing.assert_array_equal(good[C.IS_MERGER].to_numpy(), good[C.P_MERGER].to_numpy() >= 0.05)
    assert set(good[C.MORPHOLOGY].to_pylist()) <= set(schema.GALAXY10_CLASSES)

    prov = json.loads(storage.read_bytes(f"{out}/_catalog.json"))
    assert prov["task"] == "classes" and prov["tta"] is True and prov["merger_threshold"] == 0.05
    assert prov["checkpoint"] == checkpoint
    assert prov["checkpoint_sha256"] == hashlib.sha256(Path(local).read_bytes()).hexdigest()
    assert prov["rows"] == summary["rows"] == 20 and prov["error_rows"] == 5

    # TTA predictions equal the in-process average over the 8 rotations and flips
    predictor = model_mod.Predictor.from_checkpoint(local, device="cpu", tta=True)
    batch = {k: np.array(table[k].to_pylist(), dtype=object) for k in (C.OBJECT_ID, C.IMAGE, C.SOURCE)}
    prepared = preprocess_batch(batch, predictor.spec.preprocess)
    ok = np.array([e is None for e in prepared[C.ERROR]])
    expected = predictor(prepared["pixels"][ok])
    by_id = {oid: i for i, oid in enumerate(cat[C.OBJECT_ID].to_pylist())}
    order = [by_id[oid] for oid in np.asarray(batch[C.OBJECT_ID])[ok]]
    got = np.column_stack([cat[schema.class_column(c)].to_numpy(zero_copy_only=False)
                           for c in schema.GALAXY10_CLASSES])[order]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_real_gz2_sample_gets_positions_and_healpix(ray_cluster, gz2_sample, gz2_checkpoint, tmp_path):
    out = str(tmp_path / "catalog")
    summary = infer.run_inference(gz2_checkpoint, str(gz2_sample), out, format="gz2-catalog",
                                  batch_size=32, rows_per_file=200, log=_quiet)
    files, cat = _read_catalog(out)
    assert [os.path.basename(f) for f in files] == [
        "part-r000000000-000000199.parquet", "part-r000000200-000000399.parquet",
        "part-r000000400-000000449.parquet"]
    assert cat.num_rows == 450 == summary["rows"] and len(set(cat[C.OBJECT_ID].to_pylist())) == 450
    assert cat[C.ERROR].null_count == 450
    for col in (C.RA, C.DEC, C.HEALPIX, C.P_MERGER):
        assert cat[col].null_count == 0, col
    ra, dec = cat[C.RA].to_numpy(), cat[C.DEC].to_numpy()
    assert ((ra >= 0) & (ra < 360)).all() and ((dec >= -90) & (dec <= 90)).all()
    np.testing.assert_array_equal(cat[C.HEALPIX].to_numpy(), catalog.healpix29(ra, dec).to_numpy())
    assert summary["source_format"] == "gz2-catalog"


# --------------------------------------------------------------------------- predict (no Ray)


def test_predict_prints_morphology_and_merger_probability(gz2_checkpoint, tmp_path, capsys):
    table = synthetic_table(2, size=SIZE, seed=11)
    paths = []
    for k, data in enumerate(table[C.IMAGE].to_pylist()):
        paths.append(tmp_path / f"galaxy{k}.png")
        paths[-1].write_bytes(data)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    code = infer.predict_main([gz2_checkpoint, *map(str, paths), str(broken), "--top", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1 and len(lines) == 3
    for line, path in zip(lines[:2], paths):
        assert line.startswith(f"{path.stem}: ") and "p_merger" in line and "top:" in line  # the catalog's id
        morph = line.split(": ", 1)[1].split()[0]
        assert morph in {"elliptical", "spiral", "disk", "edge_on", "artifact"}
    assert lines[2].startswith(f"{broken}: error:")  # the file to fix, by its path
    results = infer.predict_files(gz2_checkpoint, [str(paths[0])], top=37)
    assert len(results[0]["top"]) == 37
    np.testing.assert_allclose(sum(v for c, v in results[0]["top"] if c.startswith("smooth_or_features")), 1.0,
                               rtol=1e-5)


def test_tta_catalog_rows_carry_the_spread_over_the_eight_views(gz2_checkpoint):
    model = pipeline.CatalogModel(gz2_checkpoint, tta=True)
    pixels = (np.random.default_rng(4).random((3, 3, SIZE, SIZE)) * 255).astype(np.uint8)
    batch = {C.OBJECT_ID: np.array(["a", "b", "c"], dtype=object), C.RA: np.array([1.0, 2.0, 3.0]),
             C.DEC: np.array([0.0, 0.0, 0.0]), "pixels": pixels, C.ERROR: np.array([None, "broken", None], dtype=object)}
    rows = model(batch)
    views = model.predictor.predict_views(pixels[[0, 2]])  # (8, 2, K), independently of the catalog path
    merger = views[:, :, schema.GZ2_MERGER_INDEX]
    got = rows[C.P_MERGER_STD].to_pylist()
    assert got[1] is None  # the broken row has no prediction, so no spread
    np.testing.assert_allclose([got[0], got[2]], merger.std(axis=0), rtol=1e-5)
    assert rows[C.MORPHOLOGY_PROB_STD].null_count == 1


@pytest.mark.slow
def test_astropy_reads_every_part_and_the_whole_catalog(shard_run):
    import pandas as pd
    from astropy.table import Table

    out, summary = shard_run
    files, _ = _read_catalog(out)
    parts = [Table.read(f) for f in files]  # astropy's own reader (tests/catalog: an all-null error column)
    assert sum(len(t) for t in parts) == summary["rows"]
    whole = Table.from_pandas(pd.read_parquet(out, dtype_backend="numpy_nullable"))  # the README's one-liner
    assert len(whole) == summary["rows"] and int((~whole[C.ERROR].mask).sum()) == summary["error_rows"]
