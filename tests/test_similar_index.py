"""The approximate index of ``galaxy-ray similar --build-index`` and the oddity file ``query`` sorts (no Ray).

The catalog is written with galaxy-ray's own catalog writer (real Parquet
files, ``_catalog.json`` with their SHA-256) around clustered float16
embeddings, so the expected neighbours come from exact search
(``use_index=False``) and numpy brute force, never from the index itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from galaxy_ray.catalog.checksums import CHECKSUMS_KEY
from galaxy_ray.catalog.query import query
from galaxy_ray.catalog.write import SUMMARY_NAME, write_catalog_file, write_catalog_summary
from galaxy_ray.cli import main as cli_main
from galaxy_ray.similar import indexed, search
from galaxy_ray.similar.embed import embedding_array
from galaxy_ray.similar.index import INDEX_DIR, load_index

N, DIMS, FILES = 4000, 8, 4


def _vectors(n: int, seed: int) -> np.ndarray:
    """Clustered vectors as the catalog stores them (float16), 1% scattered far out."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (40, DIMS))
    x = centres[rng.integers(0, 40, n)] + rng.normal(0, 0.15, (n, DIMS))
    odd = rng.random(n) < 0.01
    x[odd] = rng.normal(0, 3, (int(odd.sum()), DIMS))
    return x.astype(np.float16)


def write_catalog(out: Path, n: int = N, seed: int = 0, null_every: int = 97) -> pd.DataFrame:
    """A catalog of ``n`` rows in ``FILES`` files with an ``embedding`` column; every ``null_every``-th row an error."""
    rng = np.random.default_rng(seed)
    vec = _vectors(n, seed)
    err = np.arange(n) % null_every == 5
    frame = pd.DataFrame({"object_id": [f"g{i:05d}" for i in range(n)], "ra": rng.uniform(150, 160, n),
                          "dec": rng.uniform(-5, 5, n), "morphology": np.where(rng.random(n) < 0.5, "spiral", "smooth"),
                          "p_merger": rng.random(n).astype(np.float32), "error": np.where(err, "bad cutout", None)})
    frame["p_merger"] = frame["p_merger"].where(~err)
    frame["morphology"] = frame["morphology"].where(~err)
    frame["is_merger"] = (frame["p_merger"] > 0.5).where(~err)
    frame["p_spiral"] = rng.random(n).astype(np.float32)
    prov = {"output_columns": ["p_spiral"], "embedding": {"dims": DIMS, "fit_rows": 100}}
    sums = {}
    out.mkdir(parents=True, exist_ok=True)
    for f, part in enumerate(np.array_split(np.arange(n), FILES)):
        table = pa.Table.from_pandas(frame.iloc[part].reset_index(drop=True), preserve_index=False)
        table = table.append_column("embedding", embedding_array(vec[part], null=err[part]))
        name = f"part-{f:05d}.parquet"
        sums[name] = write_catalog_file(table, str(out / name), prov, row_group_size=300)
    write_catalog_summary(str(out), {**prov, CHECKSUMS_KEY: sums})
    frame["embedding"] = list(vec.astype(np.float32))
    return frame[~err].reset_index(drop=True)


@pytest.fixture(scope="module")
def indexed_catalog(tmp_path_factory) -> tuple[str, pd.DataFrame]:
    out = tmp_path_factory.mktemp("similar_index") / "cat"
    frame = write_catalog(out)
    assert cli_main(["similar", str(out), "--build-index"]) == 0
    return str(out), frame


def test_build_index_stores_every_row_with_an_embedding_and_the_catalogs_checksums(indexed_catalog):
    out, frame = indexed_catalog
    meta = json.loads((Path(out) / INDEX_DIR / "index.json").read_text())
    summary = json.loads((Path(out) / SUMMARY_NAME).read_text())
    assert meta["rows"] == len(frame) and meta["metric"] == "cosine" and meta["dims"] == DIMS
    assert meta["files"] == summary[CHECKSUMS_KEY] and len(meta["files"]) == FILES
    idx = load_index(search.as_catalog(out))
    ids = idx.object_ids.to_pylist()
    assert sorted(ids) == sorted(frame["object_id"])
    expected = np.stack(frame.set_index("object_id").loc[ids, "embedding"])  # the stored float16 values, exactly
    np.testing.assert_array_equal(np.asarray(idx.vectors, np.float32), expected)


def test_indexed_search_agrees_with_exact_search(indexed_catalog, monkeypatch):
    out, frame = indexed_catalog
    calls = []
    real = indexed.indexed_similar
    monkeypatch.setattr(indexed, "indexed_similar", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    hits = 0
    queries = frame["object_id"].iloc[::200].tolist()
    for oid in queries:
        got = search.similar(out, oid, k=10).to_pandas()
        exact = search.similar(out, oid, k=10, use_index=False).to_pandas()
        assert got["object_id"].iloc[0] == oid and got["distance"].iloc[0] < 1e-6
        assert np.all(np.diff(got["distance"]) >= 0)
        hits += len(set(got["object_id"]) & set(exact["object_id"]))
        shared = got.merge(exact, on="object_id", suffixes=("", "_exact"))
        np.testing.assert_allclose(shared["distance"], shared["distance_exact"], atol=1e-9)  # distances are exact
    assert len(calls) == len(queries)
    assert hits / (10 * len(queries)) >= 0.95


def test_indexed_search_with_filters_keeps_only_rows_that_pass(indexed_catalog):
    out, frame = indexed_catalog
    oid = frame["object_id"].iloc[123]
    # a broad filter: answered from the index's over-fetched candidates
    got = search.similar(out, oid, k=10, where="p_merger < 0.9", cone=(155, 0, 4)).to_pandas()
    exact = search.similar(out, oid, k=10, where="p_merger < 0.9", cone=(155, 0, 4), use_index=False).to_pandas()
    assert len(got) == 10 and (got["p_merger"] < 0.9).all()
    # separation from (155, 0): cos(sep) = cos(dec) cos(ra - 155) on the equator
    sep = np.degrees(np.arccos(np.clip(np.cos(np.radians(got["dec"])) * np.cos(np.radians(got["ra"] - 155)), -1, 1)))
    assert (sep <= 4 + 1e-9).all()
    assert len(set(got["object_id"]) & set(exact["object_id"])) >= 9
    # a narrow filter keeps ~1% of rows: fewer than k pass among the candidates, so the search is exact
    narrow = "p_merger > 0.99"
    got = search.similar(out, oid, k=10, where=narrow).to_pandas()
    kept = frame[frame["p_merger"] > 0.99]
    q = frame.loc[frame["object_id"] == oid, "embedding"].iloc[0].astype(np.float64)
    v = np.stack(kept["embedding"]).astype(np.float64)
    d = 1 - v @ q / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))
    np.testing.assert_allclose(got["distance"], np.sort(d)[:10], atol=1e-6)


def test_oddity_through_the_index_matches_the_exact_oddity(indexed_catalog):
    out, frame = indexed_catalog
    got = search.oddity(out, k=5).to_pandas().set_index("object_id")["oddity"]
    exact = search.oddity(out, k=5, use_index=False).to_pandas().set_index("object_id")["oddity"]
    assert len(got) == len(frame)
    close = np.isclose(got.loc[exact.index], exact, atol=1e-9)
    assert close.mean() >= 0.95
    assert len(set(got.index[:20]) & set(exact.index[:20])) >= 18  # the oddest galaxies agree


def test_oddity_parquet_is_a_file_query_sorts_and_filters(indexed_catalog, tmp_path, capsys):
    out, frame = indexed_catalog
    path = str(tmp_path / "oddity.parquet")
    assert cli_main(["similar", out, "--oddity", "-k", "5", "--out", path]) == 0
    top = query(path, where="NOT is_merger", sort="-oddity", limit=5, columns="object_id,oddity,is_merger")
    exact = search.oddity(out, k=5).to_pandas()
    expected = exact[~exact["is_merger"].astype(bool)].head(5)
    assert list(top["object_id"]) == list(expected["object_id"]) and not top["is_merger"].any()
    assert set(frame.columns) - {"embedding"} <= set(query(path, limit=1).columns)
    capsys.readouterr()
    assert cli_main(["query", path, "--sort=-oddity", "--limit", "3", "--columns", "object_id,oddity"]) == 0
    assert expected["object_id"].iloc[0] in capsys.readouterr().out


def test_a_stale_index_is_refused_in_one_line_and_exact_still_works(tmp_path, capsys):
    out = tmp_path / "cat"
    frame = write_catalog(out, n=600)
    assert cli_main(["similar", str(out), "--build-index"]) == 0
    write_catalog(out, n=600, seed=1)  # a rerun rewrites the files and _catalog.json
    capsys.readouterr()
    oid = frame["object_id"].iloc[0]
    assert cli_main(["similar", str(out), "--like", oid]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stale" in err and "part-00000.parquet" in err and "--build-index" in err
    assert cli_main(["similar", str(out), "--like", oid, "--exact", "-k", "3"]) == 0
    assert cli_main(["similar", str(out), "--build-index"]) == 0
    assert cli_main(["similar", str(out), "--like", oid, "-k", "3"]) == 0


def test_an_index_for_another_metric_is_left_aside(indexed_catalog):
    out, frame = indexed_catalog
    oid = frame["object_id"].iloc[7]
    got = search.similar(out, oid, k=5, metric="euclidean").to_pandas()
    q = frame.loc[frame["object_id"] == oid, "embedding"].iloc[0].astype(np.float64)
    d = np.sqrt(((np.stack(frame["embedding"]).astype(np.float64) - q) ** 2).sum(1))
    np.testing.assert_allclose(got["distance"], np.sort(d)[:5], atol=1e-6)


@pytest.mark.slow  # the Dask-based HATS conversion takes about 2 minutes on 2 cores
def test_hats_conversion_keeps_the_embedding_for_lsdb_and_similar(tmp_path):
    import lsdb

    from galaxy_ray.catalog.convert import to_hats

    plain = tmp_path / "cat"
    frame = write_catalog(plain, n=400)
    hats = str(tmp_path / "hats")
    to_hats(str(plain), hats, workers=1)
    got = lsdb.open_catalog(hats).compute().set_index("object_id").loc[frame["object_id"]]
    # float16 values widened to float32 (the catalog's read schema): every value kept exactly
    np.testing.assert_array_equal(np.stack(got["embedding"].to_numpy()).astype(np.float32),
                                  np.stack(frame["embedding"]))
    oid = frame["object_id"].iloc[3]
    on_hats = search.similar(hats, oid, k=8).to_pandas()
    on_plain = search.similar(str(plain), oid, k=8).to_pandas()
    assert list(on_hats["object_id"]) == list(on_plain["object_id"])
    np.testing.assert_allclose(on_hats["distance"], on_plain["distance"], atol=1e-12)
    assert cli_main(["similar", hats, "--build-index"]) == 0
    indexed_hits = search.similar(hats, oid, k=8).to_pandas()
    assert indexed_hits["object_id"].iloc[0] == oid and len(set(indexed_hits["object_id"]) & set(on_plain["object_id"])) >= 7
