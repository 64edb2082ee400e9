"""Inference start-up: where a run's time before its first rows goes, as its summary reports it,
and that the catalog is the model's own output on the same cutouts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from galaxy_ray import infer
from galaxy_ray import model as model_mod
from galaxy_ray.data.transforms import preprocess_batch
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.synthetic import synthetic_table

SIZE = 32  # model input side, pixels: tiny and fast


@pytest.mark.slow
def test_start_up_split_and_catalog_equal_the_model_run_directly(ray_cluster, tmp_path, tiny_checkpoint,
                                                                 write_shards):
    checkpoint = tiny_checkpoint(str(tmp_path / "model.pt"), size=SIZE)
    table = synthetic_table(24, size=SIZE, seed=5)
    write_shards(table, str(tmp_path / "shards"), rows_per_shard=6)
    out = tmp_path / "catalog"
    summary = infer.run_inference(checkpoint, str(tmp_path / "shards"), str(out), batch_size=8, rows_per_file=10,
                                  num_actors=1, log=lambda line: None, progress=False)
    assert summary["rows"] == summary["rows_this_run"] == 24 and summary["error_rows"] == 0
    # The driver's planning comes first, the first rows after it, the end of the run last.
    assert 0 < summary["planning_seconds"] <= summary["startup_seconds"] <= summary["seconds"]

    # The catalog's rows are the Predictor's outputs on the same cutouts, row for row.
    cat = pa.concat_tables([pq.read_table(f) for f in sorted(out.glob("part-*.parquet"))])
    assert sorted(cat[C.OBJECT_ID].to_pylist()) == sorted(table[C.OBJECT_ID].to_pylist())
    predictor = model_mod.Predictor.from_checkpoint(checkpoint, device="cpu")
    batch = {k: np.array(table[k].to_pylist(), dtype=object) for k in (C.OBJECT_ID, C.IMAGE, C.SOURCE)}
    expected = predictor(preprocess_batch(batch, predictor.spec.preprocess)["pixels"])
    row = {oid: i for i, oid in enumerate(cat[C.OBJECT_ID].to_pylist())}
    order = [row[oid] for oid in table[C.OBJECT_ID].to_pylist()]
    columns = model_mod.output_columns(predictor.spec)
    got = np.column_stack([cat[c].to_numpy(zero_copy_only=False) for c in columns])[order]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    morph = np.asarray(cat[C.MORPHOLOGY].to_pylist(), dtype=object)[order]
    np.testing.assert_array_equal(morph, model_mod.morphology(predictor.spec, expected))

    # A rerun with nothing left to do starts no pipeline, so it reports no start-up.
    again = infer.run_inference(checkpoint, str(tmp_path / "shards"), str(out), batch_size=8, rows_per_file=10,
                                num_actors=1, log=lambda line: None, progress=False)
    assert again["rows_this_run"] == 0 and again["rows"] == 24
    assert "planning_seconds" not in again and "startup_seconds" not in again
