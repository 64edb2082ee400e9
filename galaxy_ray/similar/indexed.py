"""Search and oddity through the catalog's index (:mod:`galaxy_ray.similar.index`), exact distances on top.

The index proposes candidates; their distances are recomputed from the
catalog's stored embeddings (the same :func:`~galaxy_ray.similar.vectors.distances`
as exact search), so a result's distance never depends on the index.

Filters: the index is asked for ``max(OVERFETCH k, 1000)`` candidates, the
``--cone`` / ``--where`` filter is applied to them, and when at least ``k``
pass they are the answer (the true ``k`` nearest passing the filter are
among the nearest candidates whenever the index found those).  When fewer
pass (a filter that keeps a small part of the catalog), the caller falls
back to exact search over the rows the filter keeps, which is then small.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from galaxy_ray.catalog.query import validate_where, where_clause
from galaxy_ray.catalog.regions import as_region
from galaxy_ray.catalog.scan import Catalog
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.similar.index import SimilarIndex, read_rows

__all__ = ["OVERFETCH", "indexed_vector", "indexed_similar", "indexed_kth"]

#: Candidates asked of the index per result wanted when a filter is given.
OVERFETCH = 50


def indexed_vector(cat: Catalog, idx: SimilarIndex, object_id: str) -> np.ndarray:
    """The stored embedding of ``object_id`` (its first row), found through the index's ids (no scan).

    Raises
    ------
    GalaxyRayError
        No row with that id has an embedding in the index.
    """
    label = idx.label_of(object_id)
    if label < 0:
        raise GalaxyRayError(f"--like {object_id!r}: no such object_id with an embedding in {cat.uri}")
    return np.asarray(idx.vectors[label], dtype=np.float32)


def _passing(cat: Catalog, table: pa.Table, cone, where: str | None) -> np.ndarray:
    """Positions of ``table``'s rows inside the cone and passing the ``where`` filter (SQL, as ``query``)."""
    keep = np.ones(table.num_rows, dtype=bool)
    region = as_region(cone, None)
    if region is not None:
        keep &= region.contains(table["ra"].to_numpy(zero_copy_only=False),
                                table["dec"].to_numpy(zero_copy_only=False))
    if where:
        con = duckdb.connect()
        con.register("catalog", table.append_column("__pos", pa.array(np.arange(table.num_rows))))
        try:
            got = con.sql("SELECT __pos FROM catalog" + where_clause(where)).to_arrow_table()
        except duckdb.Error as exc:
            raise GalaxyRayError(f"--where {where!r}: {str(exc).strip().splitlines()[0]}") from None
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[got["__pos"].to_numpy()] = True
        keep &= mask
    return np.flatnonzero(keep)


def indexed_similar(cat: Catalog, idx: SimilarIndex, q: np.ndarray, k: int, metric: str, cone, where: str | None,
                    out_cols: list[str]) -> pa.Table | None:
    """The ``k`` nearest rows through the index (``distance`` then ``out_cols``), or None to search exactly.

    None when a filter keeps fewer than ``k`` of the over-fetched candidates.
    """
    from galaxy_ray.similar.vectors import distances

    filtered = cone is not None or where is not None
    want = min(len(idx.row), max(OVERFETCH * k, 1000) if filtered else 2 * k + 10)
    labels = idx.search(np.asarray(q, np.float32)[None, :], want)[0]
    labels = labels[labels >= 0]
    needed = [*out_cols]
    if filtered:
        needed += sorted(validate_where(where, cat.columns)) if where else []
        needed += ["ra", "dec"]
    d = distances(np.asarray(idx.vectors[np.sort(labels)], np.float32)[np.argsort(np.argsort(labels))], q, metric)
    order = np.lexsort((labels, d))  # nearest first, ties in catalog order as exact search
    if not filtered:
        order = order[:k]
        labels, d, order = labels[order], d[order], np.arange(len(order))
    table = read_rows(cat, idx, labels, list(dict.fromkeys(needed)))
    if filtered:
        passing = set(_passing(cat, table, cone, where))
        order = np.array([i for i in order if i in passing], dtype=np.int64)
        if len(order) < k and len(labels) < len(idx.row):
            return None
    order = order[:k]
    rows = table.select(out_cols).take(pa.array(order, pa.int64()))
    return rows.add_column(0, "distance", pa.array(d[order], type=pa.float64()))


def indexed_kth(idx: SimilarIndex, values: np.ndarray, k: int, metric: str, spare: int = 5,
                step: int = 16384) -> np.ndarray:
    """Each row's distance to its ``k``-th nearest other row, candidates from the index (float64 (N,)).

    ``values`` must be the index's rows in label order (the catalog's rows with
    an embedding, in file order).  The index proposes ``k + spare`` neighbours
    per row; the row itself is dropped and the distances are exact.
    """
    n = len(values)
    if k >= n:
        raise GalaxyRayError(f"-k {k}: the oddity needs more than k rows with embeddings ({n} here)")
    out = np.empty(n)
    for s in range(0, n, step):
        block = values[s:s + step]
        labels = idx.search(block, k + 1 + spare)
        d = np.full(labels.shape, np.inf)
        for j in range(labels.shape[1]):
            ok = (labels[:, j] >= 0) & (labels[:, j] != np.arange(s, s + len(block)))
            if ok.any():
                d[ok, j] = _rowwise(block[ok], values[labels[ok, j]], metric)
        out[s:s + len(block)] = np.sort(d, axis=1)[:, k - 1]
    return out


def _rowwise(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Distance between ``a[i]`` and ``b[i]`` for each i, as :func:`~galaxy_ray.similar.vectors.distances`."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if metric == "euclidean":
        return np.sqrt(np.maximum(((a - b) ** 2).sum(1), 0.0))
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, (a * b).sum(1) / np.where(norms > 0, norms, 1.0), 0.0)
    return np.maximum(1.0 - cos, 0.0)
