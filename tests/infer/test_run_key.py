"""A catalog directory holds the rows of one run key: one model, one input, one preprocessing, one merger rule."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from galaxy_ray import infer
from galaxy_ray.catalog.write import file_provenance
from galaxy_ray.data import sources
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import layout, storage
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.synthetic import synthetic_table

SIZE = 32


def _quiet(_line: str) -> None:
    pass


def _parts(out: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(out).glob("part-*.parquet"))}


def _run(checkpoint: str, source: str, out: str, **options) -> dict:
    return infer.run_inference(checkpoint, source, out, batch_size=6, rows_per_file=6, num_actors=1, log=_quiet,
                               progress=False, **options)


@pytest.fixture(scope="module")
def two_models(tmp_path_factory, tiny_checkpoint) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("models")
    return (tiny_checkpoint(str(root / "a.pt"), size=SIZE, seed=0),
            tiny_checkpoint(str(root / "b.pt"), size=SIZE, seed=1))


@pytest.mark.slow
def test_reruns_with_another_model_or_survey_are_refused_and_overwrite_replaces_the_catalog(
        ray_cluster, two_models, tmp_path, write_shards):
    model_a, model_b = two_models
    source, out = str(tmp_path / "survey"), str(tmp_path / "catalog")
    write_shards(synthetic_table(12, size=SIZE, seed=3), source, rows_per_shard=6)
    first = _run(model_a, source, out)
    written = _parts(out)
    assert first["rows"] == 12 and len(written) == 2

    again = _run(model_a, source, out)  # the same run key: resumes, nothing to do
    assert again["files_this_run"] == 0 and again["rows"] == 12 and _parts(out) == written

    with pytest.raises(GalaxyRayError, match=r"made by another run \(merger_threshold 0.5 -> 0.9\)"):
        _run(model_a, source, out, merger_threshold=0.9)
    with pytest.raises(GalaxyRayError, match=r"checkpoint_sha256 .*--overwrite"):
        _run(model_b, source, out)
    other_survey = str(tmp_path / "other")
    write_shards(synthetic_table(12, size=SIZE, seed=4), other_survey, rows_per_shard=6)
    with pytest.raises(GalaxyRayError, match=r"source .*source_fingerprint"):
        _run(model_a, other_survey, out)
    # the same path and size, other galaxies: only the fingerprint tells
    write_shards(synthetic_table(12, size=SIZE, seed=4), source, rows_per_shard=6)
    with pytest.raises(GalaxyRayError, match=r"made by another run \(source_fingerprint"):
        _run(model_a, source, out)
    summary = json.loads(Path(out, layout.CATALOG_SUMMARY).read_text())
    assert _parts(out) == written and summary["checkpoint_sha256"] == storage.file_sha256(model_a)

    replaced = _run(model_b, other_survey, out, overwrite=True)
    sha_b = storage.file_sha256(model_b)
    assert replaced["rows"] == 12 and replaced["checkpoint_sha256"] == sha_b
    ids = set()
    for part in Path(out).glob("part-*.parquet"):
        prov = file_provenance(str(part))
        assert prov["checkpoint_sha256"] == sha_b and prov["source"] == other_survey
        assert prov["source_portable"] == "../other" and prov["checkpoint_portable"].endswith("b.pt")
        assert not prov["checkpoint_portable"].startswith("/")  # no path of the machine that ran it
        ids |= set(pq.read_table(part, columns=[C.OBJECT_ID])[C.OBJECT_ID].to_pylist())
    assert ids == set(synthetic_table(12, size=SIZE, seed=4)[C.OBJECT_ID].to_pylist())
    key = json.loads(Path(out, layout.RUN_KEY).read_text())
    assert key["checkpoint_sha256"] == sha_b and key["source"] == other_survey


def test_a_catalog_without_a_run_key_is_not_resumed_into(ray_cluster, two_models, tmp_path, write_shards):
    out = tmp_path / "old"
    out.mkdir()
    (out / "part-00000-00000.parquet").write_bytes(b"rows of some earlier run")
    src = tmp_path / "survey"
    write_shards(synthetic_table(6, size=SIZE, seed=3), str(src), rows_per_shard=6)
    with pytest.raises(GalaxyRayError, match=r"no _run_key.json .*new --out.*--overwrite"):
        _run(two_models[0], str(src), str(out))


def test_fingerprints_tell_inputs_apart_by_their_rows_not_their_size(tmp_path, write_shards):
    def shard_fingerprint(seed: int, name: str) -> str:
        write_shards(synthetic_table(8, size=SIZE, seed=seed), str(tmp_path / name), rows_per_shard=4)
        return infer.make_plan(sources.open_source(str(tmp_path / name), "shards"), 4).fingerprint

    assert shard_fingerprint(1, "a") == shard_fingerprint(1, "a_copy")
    assert shard_fingerprint(1, "a") != shard_fingerprint(2, "b")

    import pandas as pd

    from galaxy_ray.infer.run_key import metadata_fingerprint

    meta = pd.DataFrame({C.OBJECT_ID: ["1", "2"], C.RA: [10.0, 11.0], C.DEC: [0.0, 1.0]})
    moved = meta.assign(**{C.RA: [10.0, 11.000001]})
    assert metadata_fingerprint(meta) == metadata_fingerprint(meta.copy())
    assert metadata_fingerprint(meta) != metadata_fingerprint(moved)


def test_a_catalog_of_another_column_layout_is_not_resumed_into(tmp_path):
    from galaxy_ray.infer.run_key import check_run_key, run_key

    prov = {"checkpoint_sha256": "ab" * 32, "source": "s", "source_format": "shards", "preprocess": {"image_size": 32},
            "tta": False, "merger_threshold": 0.5, "output_columns": ["a", "b"], "tree_columns": ["a_fraction"],
            "source_fingerprint": "f", "input_files": "g"}
    out = str(tmp_path)
    check_run_key(out, run_key(prov), set(), overwrite=False, log=_quiet)  # the first run records it
    older = run_key(dict(prov, tree_columns=[]))  # a galaxy-ray that wrote no tree columns
    with pytest.raises(GalaxyRayError, match=r"another run \(catalog_columns .*--overwrite"):
        check_run_key(out, older, {"part-r000000000-000000009.parquet"}, overwrite=False, log=_quiet)
