"""Embeddings in the catalog (infer --embeddings), exact similarity search and the oddity score.

Real local Ray, a real (untrained) ResNet-18, real Parquet; every expected value is
recomputed here independently (numpy SVD / eigendecomposition, brute-force distances, the
network's own backbone called directly).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from galaxy_ray import catalog, infer
from galaxy_ray.cli import main as cli_main
from galaxy_ray.data.transforms import preprocess_batch
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.model import Predictor
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.similar import search
from galaxy_ray.similar.pca import fit_pca, pca_from_dict, project
from galaxy_ray.synthetic import synthetic_table

SIZE = 32
DIMS = 6


def _quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def survey(tmp_path_factory, write_shards) -> tuple[str, pa.Table]:
    """30 synthetic cutouts in 3 shards, one of them garbage (an error row)."""
    table = synthetic_table(30, size=SIZE, seed=5)
    images = table[C.IMAGE].to_pylist()
    ids = table[C.OBJECT_ID].to_pylist()
    images[7], ids[7] = b"not an image", "bad-garbage"
    table = table.set_column(table.column_names.index(C.IMAGE), C.IMAGE, pa.array(images, pa.binary()))
    table = table.set_column(table.column_names.index(C.OBJECT_ID), C.OBJECT_ID, pa.array(ids, pa.string()))
    out = str(tmp_path_factory.mktemp("survey"))
    write_shards(table, out, rows_per_shard=10)
    return out, table


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_checkpoint) -> str:
    return tiny_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "model.pt"), size=SIZE, seed=2)


@pytest.fixture(scope="module")
def embedded(ray_cluster, checkpoint, survey, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("catalog_emb"))
    infer.run_inference(checkpoint, survey[0], out, batch_size=8, rows_per_file=12, num_actors=1,
                        progress=False, log=_quiet, embeddings=DIMS, embedding_sample=20)
    return out


def _rows(out: str) -> pd.DataFrame:
    files = sorted(f for f in storage.list_files(out, (".parquet",)) if not Path(f).name.startswith("_"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


# --------------------------------------------------------------------------- PCA (no Ray)


def test_pca_projection_matches_an_eigendecomposition_of_the_covariance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 10)) @ np.diag([5, 4, 3, 2, 1, 0.5, 0.4, 0.3, 0.2, 0.1]) + 7.0
    pca = fit_pca(x, 4)
    # independent: eigenvectors of the sample covariance, largest first
    vals, vecs = np.linalg.eigh(np.cov(x, rowvar=False))
    order = np.argsort(vals)[::-1][:4]
    expected = (x - x.mean(axis=0)) @ vecs[:, order]
    got = project(x, pca)
    assert got.shape == (200, 4) and got.dtype == np.float32
    for j in range(4):  # each component is defined up to its sign
        sign = np.sign(got[:, j] @ expected[:, j])
        np.testing.assert_allclose(got[:, j], sign * expected[:, j], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pca["explained_variance"], vals[order], rtol=1e-9)
    np.testing.assert_allclose(pca["explained_variance_ratio"], vals[order] / vals.sum(), rtol=1e-9)


def test_pca_pads_components_when_the_sample_has_fewer_directions_than_dims():
    x = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 0.0]])  # rank 1 after centring
    pca = fit_pca(x, 5)
    assert pca["components"].shape == (5, 3)
    assert np.all(pca["components"][3:] == 0) and np.all(pca["explained_variance"][3:] == 0)
    np.testing.assert_allclose(np.abs(pca["components"][0]), np.array([1, 2, 3]) / np.sqrt(14))


def test_kth_neighbour_distance_is_exact_in_small_chunks():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(50, 3)).astype(np.float32)
    got = search.kth_neighbour_distance(v, 3, "euclidean", max_elements=120)  # 2 query rows per chunk
    full = np.sqrt(((v[:, None, :].astype(np.float64) - v[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(got, np.sort(full, axis=1)[:, 3], rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- infer --embeddings


def test_infer_embeddings_writes_a_float16_column_that_pandas_and_duckdb_read(embedded, survey):
    files = [f for f in storage.list_files(embedded, (".parquet",)) if Path(f).name.startswith("part-")]
    field = pq.read_schema(files[0]).field("embedding")
    assert field.type == pa.list_(pa.float16(), DIMS)
    df = _rows(embedded)
    assert len(df) == 30
    good = df[df[C.ERROR].isna()]
    assert len(good) == 29 and all(len(v) == DIMS for v in good["embedding"])
    assert df.loc[df[C.OBJECT_ID] == "bad-garbage", "embedding"].isna().all()
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{embedded}/part-*.parquet') "
                   f"WHERE len(embedding) = {DIMS}").fetchall()[0][0]
    assert n == 29
    prov = catalog.read_provenance(embedded)["embedding"]
    assert prov["dims"] == DIMS and prov["bytes_per_galaxy"] == 2 * DIMS and prov["fit_rows"] >= 19
    assert np.asarray(prov["components"]).shape == (DIMS, 512)
    # galaxy-ray query still reads the catalog, the embedding column included
    table = catalog.query(embedded, where="p_merger >= 0", columns="object_id,embedding", output="arrow")
    assert table.num_rows == 29


def test_stored_embedding_is_the_projected_pooled_features_of_the_backbone(embedded, survey, checkpoint):
    table = survey[1]
    prov = catalog.read_provenance(embedded)["embedding"]
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    rows = {C.OBJECT_ID: np.array(table[C.OBJECT_ID].to_pylist()[:5], dtype=object),
            C.IMAGE: np.array(table[C.IMAGE].to_pylist()[:5], dtype=object)}
    pixels = preprocess_batch(rows, predictor.spec.preprocess)["pixels"]
    net = predictor.model
    with torch.inference_mode():  # the backbone called directly, not through the tap
        features = net.backbone(net.normalise(torch.from_numpy(pixels))).numpy()
    expected = (features.astype(np.float64) - np.asarray(prov["mean"])) @ np.asarray(prov["components"]).T
    df = _rows(embedded).set_index(C.OBJECT_ID)
    got = np.stack([np.asarray(df.loc[i, "embedding"], dtype=np.float64) for i in rows[C.OBJECT_ID]])
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3 * np.abs(expected).max())


def test_a_rerun_with_other_embedding_options_is_refused_in_one_line(embedded, checkpoint, survey):
    with pytest.raises(GalaxyRayError, match="holds catalog files with 6-dimensional embeddings"):
        infer.run_inference(checkpoint, survey[0], embedded, rows_per_file=12, progress=False, log=_quiet)


# --------------------------------------------------------------------------- search


def _brute_force(df: pd.DataFrame, q: np.ndarray) -> pd.Series:
    v = np.stack(df["embedding"].to_numpy()).astype(np.float64)
    cos = v @ q / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))
    return pd.Series(1.0 - cos, index=df[C.OBJECT_ID].to_numpy())


def test_similar_like_returns_the_query_first_then_the_brute_force_order(embedded):
    df = _rows(embedded)
    good = df[df[C.ERROR].isna()]
    query_id = good[C.OBJECT_ID].iloc[4]
    got = search.similar(embedded, query_id, k=10).to_pandas()
    assert got[C.OBJECT_ID].iloc[0] == query_id and got["distance"].iloc[0] < 1e-9
    assert list(got.columns[:4]) == ["distance", C.OBJECT_ID, C.RA, C.DEC] and C.P_MERGER in got
    assert np.all(np.diff(got["distance"]) >= 0)
    expected = _brute_force(good, np.asarray(good[C.OBJECT_ID].eq(query_id).pipe(
        lambda m: good.loc[m, "embedding"].iloc[0]), dtype=np.float64)).sort_values(kind="stable")
    np.testing.assert_allclose(got["distance"], expected.iloc[:10].to_numpy(), atol=1e-6)
    assert set(got[C.OBJECT_ID]) == set(expected.index[:10]) or np.isclose(
        expected.iloc[9], expected.iloc[10], atol=1e-6)


def test_similar_with_where_searches_only_the_rows_it_keeps(embedded):
    df = _rows(embedded)
    good = df[df[C.ERROR].isna()]
    cut = float(good[C.P_MERGER].median())
    query_id = good.loc[good[C.P_MERGER] < cut, C.OBJECT_ID].iloc[0]
    got = search.similar(embedded, query_id, k=40, where=f"p_merger < {cut}", metric="euclidean").to_pandas()
    kept = good[good[C.P_MERGER] < cut]
    assert len(got) == len(kept) and set(got[C.OBJECT_ID]) == set(kept[C.OBJECT_ID])
    q = np.asarray(kept.loc[kept[C.OBJECT_ID] == query_id, "embedding"].iloc[0], dtype=np.float64)
    expected = np.sort(np.sqrt(((np.stack(kept["embedding"]).astype(np.float64) - q) ** 2).sum(1)))
    np.testing.assert_allclose(got["distance"], expected, atol=1e-6)


def test_similar_like_image_finds_the_galaxy_the_image_shows(embedded, survey, tmp_path):
    table = survey[1]
    oid = table[C.OBJECT_ID][12].as_py()
    image = tmp_path / "query.png"
    image.write_bytes(table[C.IMAGE][12].as_py())
    got = search.similar(embedded, like_image=str(image), k=3).to_pandas()
    assert got[C.OBJECT_ID].iloc[0] == oid and got["distance"].iloc[0] < 1e-6


def test_oddity_is_the_distance_to_the_kth_neighbour_oddest_first(embedded):
    good = _rows(embedded).pipe(lambda d: d[d[C.ERROR].isna()])
    got = search.oddity(embedded, k=3).to_pandas()
    v = np.stack(good["embedding"]).astype(np.float64)
    unit = v / np.linalg.norm(v, axis=1)[:, None]
    d = np.maximum(1.0 - unit @ unit.T, 0.0)
    expected = pd.Series(np.sort(d, axis=1)[:, 3], index=good[C.OBJECT_ID].to_numpy())
    assert len(got) == 29 and np.all(np.diff(got["oddity"]) <= 0)
    np.testing.assert_allclose(got["oddity"], expected.loc[got[C.OBJECT_ID]].to_numpy(), atol=1e-6)


def test_cli_similar_prints_results_and_catalogs_without_embeddings_get_one_line(
        embedded, ray_cluster, checkpoint, survey, tmp_path, capsys):
    query_id = _rows(embedded)[C.OBJECT_ID].iloc[0]
    assert cli_main(["similar", embedded, "--like", query_id, "-k", "5"]) == 0
    assert "5 rows" in capsys.readouterr().out
    plain = str(tmp_path / "plain")
    infer.run_inference(checkpoint, survey[0], plain, rows_per_file=12, num_actors=1, progress=False, log=_quiet)
    assert "embedding" not in pq.read_schema(next(iter(
        f for f in storage.list_files(plain, (".parquet",)) if Path(f).name.startswith("part-")))).names
    capsys.readouterr()
    assert cli_main(["similar", plain, "--like", query_id]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no embeddings" in err and "infer" in err and "--embeddings" in err


def test_overwrite_replaces_a_catalog_written_with_other_embedding_options(ray_cluster, checkpoint, survey, tmp_path):
    out = str(tmp_path / "cat")
    infer.run_inference(checkpoint, survey[0], out, rows_per_file=12, num_actors=1, progress=False, log=_quiet,
                        embeddings=3, embedding_sample=8)
    assert _rows(out)["embedding"].dropna().map(len).eq(3).all()
    files = [f for f in storage.list_files(out, (".parquet",)) if Path(f).name.startswith("part-")]
    lines: list[str] = []
    infer.run_inference(checkpoint, survey[0], out, rows_per_file=12, num_actors=1, progress=False,
                        log=lines.append, overwrite=True)
    assert "embedding" not in _rows(out).columns and len(_rows(out)) == 30
    assert any(f"removed {len(files)} catalog file(s) with 3-dimensional embeddings" in line for line in lines)


def test_cli_similar_grid_draws_the_query_and_its_neighbours_from_the_source(embedded, survey, tmp_path, capsys):
    from PIL import Image

    query_id = _rows(embedded).pipe(lambda d: d[d[C.ERROR].isna()])[C.OBJECT_ID].iloc[0]
    png = tmp_path / "like.png"
    assert cli_main(["similar", embedded, "--like", query_id, "-k", "6", "--grid", str(png)]) == 0
    out = capsys.readouterr().out
    # the query first, then its 5 neighbours (the query itself is the first of the 6 rows): every cutout was read
    assert f"wrote 6 cutouts to {png}" in out and "not readable" not in out
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (round(1.9 * 6 * 80), round(2.2 * 80))
    capsys.readouterr()
    assert cli_main(["similar", embedded, "--oddity", "--grid", str(tmp_path / "odd.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--like" in err and not (tmp_path / "odd.png").exists()
