"""Issue 21, item 10: a shard with a valid footer and corrupt data pages costs its own rows, never the job.

The shards are real: written by pyarrow (the project's ``write_shards`` fixture
and ``pack``), then a column chunk's page header is overwritten in the middle of
the file, the footer left as it was.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from galaxy_ray import infer
from galaxy_ray.data.sources import open_source, pack
from galaxy_ray.data.sources.shards import read_shard, unreadable_id
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.synthetic import synthetic_table

SIZE = 32


def _corrupt(uri: str, column: str, group: int = 0) -> None:
    """Overwrite the first 64 bytes of ``column``'s chunk in row group ``group`` (its page header)."""
    meta = pq.ParquetFile(uri).metadata
    index = meta.schema.to_arrow_schema().names.index(column)
    chunk = meta.row_group(group).column(index)
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    data = bytearray(open(uri, "rb").read())
    assert start + 64 < len(data) - meta.serialized_size  # the middle of the file, not the footer
    data[start : start + 64] = bytes(np.random.default_rng(7).integers(0, 256, 64, dtype=np.uint8))
    with open(uri, "wb") as f:
        f.write(bytes(data))
    pq.ParquetFile(uri).metadata  # the footer still reads ...
    with pytest.raises(OSError):
        pq.read_table(uri)  # ... and the data does not: what made the whole job die


def _two_group_shard(tmp_path) -> tuple[str, pa.Table]:
    table = synthetic_table(20, size=SIZE, seed=4)
    uri = str(tmp_path / "part-00000.parquet")
    pq.write_table(table, uri, compression="zstd", row_group_size=10)
    assert pq.ParquetFile(uri).metadata.num_row_groups == 2
    return uri, table


def test_a_bad_row_group_becomes_error_rows_naming_the_shard_and_the_rest_reads(tmp_path):
    uri, table = _two_group_shard(tmp_path)
    _corrupt(uri, C.IMAGE, group=1)
    got = read_shard(uri, [C.OBJECT_ID, C.RA, C.DEC, C.IMAGE, C.SOURCE])
    assert got.column_names == [C.OBJECT_ID, C.RA, C.DEC, C.IMAGE, C.SOURCE, C.ERROR]
    assert got.num_rows == 20
    good, bad = got.slice(0, 10), got.slice(10)
    for c in (C.OBJECT_ID, C.RA, C.DEC, C.IMAGE, C.SOURCE):
        assert good[c].to_pylist() == table[c].slice(0, 10).to_pylist(), c
    assert good[C.ERROR].null_count == 10
    # the bad group keeps what can still be read (ids, positions, source), never its image
    for c in (C.OBJECT_ID, C.RA, C.DEC, C.SOURCE):
        assert bad[c].to_pylist() == table[c].slice(10).to_pylist(), c
    assert bad[C.IMAGE].null_count == 10
    errors = set(bad[C.ERROR].to_pylist())
    assert len(errors) == 1
    (error,) = errors
    assert error.startswith(f"{uri}: unreadable Parquet data (rows 10-19, row group 1: ") and "\n" not in error
    assert error.endswith("; repack this shard from its source")


def test_rows_whose_ids_are_unreadable_get_ids_that_say_so(tmp_path):
    uri, table = _two_group_shard(tmp_path)
    _corrupt(uri, C.OBJECT_ID, group=0)
    got = read_shard(uri)
    assert got[C.OBJECT_ID].to_pylist()[:10] == [f"unreadable:part-00000.parquet:{k}" for k in range(10)]
    assert unreadable_id(uri, 3) == "unreadable:part-00000.parquet:3"
    assert got[C.OBJECT_ID].to_pylist()[10:] == table[C.OBJECT_ID].slice(10).to_pylist()
    assert got[C.ERROR].null_count == 10 and got[C.IMAGE].null_count == 10


def test_pack_of_shards_with_a_corrupt_one_completes_with_its_rows_as_errors(ray_cluster, tmp_path, write_shards):
    table = synthetic_table(12, size=SIZE, seed=5)
    uris = write_shards(table, str(tmp_path / "in"), 4)
    _corrupt(uris[1], C.IMAGE)
    summary = pack(str(tmp_path / "in"), str(tmp_path / "out"), rows_per_shard=6, verbose=False)
    assert summary["rows"] == 12 and summary["written"] == 2
    assert json.loads((tmp_path / "out" / "_pack.json").read_text())["complete"] is True
    out = pa.concat_tables([pq.read_table(p) for p in sorted(glob.glob(str(tmp_path / "out" / "part-*.parquet")))])
    assert out[C.OBJECT_ID].to_pylist() == table[C.OBJECT_ID].to_pylist()
    errors = out[C.ERROR].to_pylist()
    assert [e is not None for e in errors] == [False] * 4 + [True] * 4 + [False] * 4
    assert all(e.startswith(f"{uris[1]}: unreadable Parquet data (rows 0-3, row group 0: ") for e in errors[4:8])
    assert out[C.IMAGE].to_pylist()[:4] == table[C.IMAGE].to_pylist()[:4]
    assert out[C.IMAGE].to_pylist()[8:] == table[C.IMAGE].to_pylist()[8:]


@pytest.mark.slow
def test_infer_writes_every_shards_rows_and_the_corrupt_ones_as_errors(ray_cluster, tmp_path, write_shards,
                                                                       tiny_checkpoint):
    table = synthetic_table(15, size=SIZE, seed=6)
    uris = write_shards(table, str(tmp_path / "shards"), 5)
    _corrupt(uris[1], C.IMAGE)
    checkpoint = tiny_checkpoint(str(tmp_path / "model.pt"), size=SIZE)
    out = str(tmp_path / "catalog")
    summary = infer.run_inference(checkpoint, str(tmp_path / "shards"), out, batch_size=8, rows_per_file=5,
                                  num_actors=1, log=lambda _line: None)
    assert summary["rows"] == 15 and summary["error_rows"] == 5
    parts = sorted(glob.glob(os.path.join(out, "part-*.parquet")))
    assert [os.path.basename(p) for p in parts] == [f"part-0000{k}-0000{k}.parquet" for k in range(3)]
    catalog = pa.concat_tables([pq.read_table(p) for p in parts]).to_pandas().set_index(C.OBJECT_ID)
    ids = table[C.OBJECT_ID].to_pylist()
    assert sorted(catalog.index) == sorted(ids)
    bad, good = ids[5:10], ids[:5] + ids[10:]
    for oid in bad:
        assert catalog.loc[oid, C.ERROR].startswith(f"{uris[1]}: unreadable Parquet data (rows 0-4, row group 0: ")
        assert np.isnan(catalog.loc[oid, C.P_MERGER])
    for oid in good:  # the other shards' rows are classified
        assert pd.isna(catalog.loc[oid, C.ERROR]) and 0.0 <= catalog.loc[oid, C.P_MERGER] <= 1.0
    assert summary["errors_by_reason"] == {"unreadable Parquet data": 5}
    open_source(str(tmp_path / "shards"))  # the source still opens: the footers are fine


def test_pack_of_shards_with_a_broken_footer_stops_in_one_line_naming_it(tmp_path, write_shards, capsys):
    from galaxy_ray.cli import main as cli_main

    uris = write_shards(synthetic_table(6, size=SIZE, seed=8), str(tmp_path / "in"), 3)
    data = open(uris[1], "rb").read()
    with open(uris[1], "wb") as f:
        f.write(data[: len(data) // 2])  # a cut-off upload: no footer
    assert cli_main(["pack", str(tmp_path / "in"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"galaxy-ray: error: {uris[1]}: not a readable Parquet shard (")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- issue 33, section 3: train and evaluate


def _corrupt_source(tmp_path, write_shards, column: str) -> tuple[str, list[str], pa.Table]:
    """Three shards of 10 labelled galaxies; ``column``'s chunk of the second one corrupt."""
    table = synthetic_table(30, size=SIZE, seed=9)
    uris = write_shards(table, str(tmp_path / "shards"), 10)
    _corrupt(uris[1], column)
    return str(tmp_path / "shards"), uris, table


@pytest.mark.parametrize("column", [C.IMAGE, C.VOTES])  # the case (image pages); a variant: the label's
def test_training_leaves_a_corrupt_row_group_out_in_one_line(ray_cluster, tmp_path, write_shards, capsys, column):
    from galaxy_ray.train import config_from_args, plan_run
    from galaxy_ray.train.data import build_datasets

    source, uris, table = _corrupt_source(tmp_path, write_shards, column)
    cfg = config_from_args(["--source", source, "--image-size", str(SIZE), "--workers", "1", "--bn-samples", "0",
                            "--val-fraction", "0.3", "--storage", str(tmp_path / "runs")])
    plan = plan_run(cfg)  # HEAD: OSError from pyarrow inside a Ray task, a traceback of 76 lines
    warnings = [line for line in capsys.readouterr().err.splitlines() if "cannot be read" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"galaxy-ray train: warning: 10 rows of {source} cannot be read and are left out "
                                  f"of training (unreadable Parquet data: 10); e.g. {uris[1]}: unreadable Parquet "
                                  "data (rows 0-9, row group 0: ")
    assert plan.summary.n_train + plan.summary.n_val == 20  # the 20 galaxies of the good shards
    datasets = build_datasets(plan.ds, cfg, plan.class_index, plan.spec.preprocess, plan.summary.n_train)
    assert datasets["train"].count() == plan.summary.n_train and datasets["val"].count() == plan.summary.n_val


@pytest.mark.slow
def test_evaluate_counts_a_corrupt_row_group_as_error_rows_naming_the_shard(ray_cluster, tmp_path, write_shards,
                                                                            tiny_checkpoint, capsys):
    from galaxy_ray.cli import main as cli_main

    source, uris, _ = _corrupt_source(tmp_path, write_shards, C.IMAGE)
    checkpoint = tiny_checkpoint(str(tmp_path / "model.pt"), size=SIZE)
    out = tmp_path / "eval"
    assert cli_main(["evaluate", checkpoint, source, "--out", str(out)]) == 0  # HEAD: 2, after 148 lines
    report = json.loads((out / "evaluation.json").read_text())
    assert report["rows"] == 20 and report["error_rows"] == 10
    assert report["errors_by_reason"] == {"unreadable Parquet data": 10}
    lines = [line for line in capsys.readouterr().out.splitlines() if "left out of these metrics" in line]
    assert len(lines) == 1 and lines[0].startswith(
        "galaxy-ray evaluate: warning: 10 rows could not be read or decoded and are left out of these metrics "
        f"(unreadable Parquet data: 10); e.g. {uris[1]}: unreadable Parquet data (rows 0-9, row group 0: ")
    predictions = pq.read_table(out / "predictions.parquet").to_pandas()
    assert len(predictions) == 30  # every row is accounted for, the unreadable ones with NaN predictions
    assert int(predictions["y_pred"].map(lambda v: bool(np.isnan(v).all())).sum()) == 10
