"""Exact similarity search and the oddity score over a catalog's ``embedding`` column.

Both read the catalog in chunks (``CHUNK_ROWS`` rows of the embedding and the
output columns at a time, with pyarrow, or the rows a ``--cone`` /
``--where`` query selects) and compute distances with numpy, so memory holds
one chunk plus the best ``k`` rows so far.  Exact search reads every
embedding once per query: about 32 bytes per galaxy at 16 dimensions, so a
million galaxies are 32 MB.  When the catalog has an index
(``galaxy-ray similar CATALOG --build-index``, :mod:`galaxy_ray.similar.index`)
for the metric asked, both use it instead (:mod:`galaxy_ray.similar.indexed`);
``use_index=False`` (``--exact``) does not.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from galaxy_ray.catalog.query import query, split_list
from galaxy_ray.catalog.scan import Catalog, as_catalog
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.similar.embed import EMBEDDING_COLUMN
from galaxy_ray.similar.pca import pca_from_dict, project
# the vector primitives live below both this module and the index, which use them
from galaxy_ray.similar.vectors import METRICS, distances, embedding_info, embedding_matrix

__all__ = ["CHUNK_ROWS", "METRICS", "embedding_info", "embedding_matrix", "distances", "query_vector",
           "image_vector", "similar", "kth_neighbour_distance", "oddity"]

#: Rows read and compared at a time.
CHUNK_ROWS = 65536
#: Columns shown with each result when the catalog has them.
MAIN_COLUMNS = ("object_id", "ra", "dec", "morphology", "p_merger", "is_merger")


def _check(metric: str, k: int) -> None:
    if metric not in METRICS:
        raise GalaxyRayError(f"--metric {metric!r}: one of {', '.join(METRICS)}")
    if k < 1:
        raise GalaxyRayError(f"-k {k}: must be at least 1")


def _sql_text(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def query_vector(cat: Catalog, object_id: str) -> np.ndarray:
    """The stored embedding (float32 (dims,)) of ``object_id`` (its first row when the id repeats).

    Raises
    ------
    GalaxyRayError
        No such object, or its row has no embedding (an error row).
    """
    dims = int(embedding_info(cat)["dims"])
    rows = query(cat, where=f"object_id = {_sql_text(object_id)}", columns=["object_id", EMBEDDING_COLUMN],
                 output="arrow")
    if rows.num_rows == 0:
        raise GalaxyRayError(f"--like {object_id!r}: no such object_id in {cat.uri}")
    valid, values = embedding_matrix(rows[EMBEDDING_COLUMN], dims)
    if not valid.any():
        raise GalaxyRayError(f"--like {object_id!r}: its row has no embedding (it could not be classified)")
    return values[0]


def image_vector(cat: Catalog, image: str, checkpoint: str | None = None) -> np.ndarray:
    """The embedding of an image file, made as ``infer --embeddings`` made the catalog's.

    Uses the catalog's checkpoint (``checkpoint`` overrides), its TTA setting and stored PCA.

    Raises
    ------
    GalaxyRayError
        The checkpoint cannot be found or the image cannot be decoded.
    """
    from galaxy_ray.data.transforms import preprocess_batch
    from galaxy_ray.io import storage
    from galaxy_ray.model import Predictor
    from galaxy_ray.similar.embed import embed_pixels

    info = embedding_info(cat)
    prov = cat.provenance
    ckpt = checkpoint or prov.get("checkpoint")
    if not ckpt or not storage.exists(ckpt):
        raise GalaxyRayError(f"--like-image: the catalog's checkpoint {ckpt!r} is not reachable here; "
                             "pass --checkpoint MODEL (the same model that wrote the catalog)")
    predictor = Predictor.from_checkpoint(ckpt, device="cpu", tta=bool(prov.get("tta")))
    batch = {"object_id": np.array([image], dtype=object), "image": np.array([storage.read_bytes(image)], dtype=object),
             "source": np.array([image], dtype=object)}
    prepared = preprocess_batch(batch, predictor.spec.preprocess, augment=False)
    if prepared["error"][0] is not None:
        raise GalaxyRayError(f"--like-image {image}: {prepared['error'][0]}")
    return project(embed_pixels(predictor, prepared["pixels"]), pca_from_dict(info))[0].astype(np.float16).astype(
        np.float32)  # the precision the catalog stores


def _out_columns(cat: Catalog, columns: str | Sequence[str] | None) -> list[str]:
    extra = [c for c in split_list(columns) if c not in MAIN_COLUMNS]
    unknown = [c for c in extra if c not in cat.columns]
    if unknown:
        raise GalaxyRayError(f"--columns: no column {', '.join(unknown)} in {cat.uri}")
    return [c for c in MAIN_COLUMNS if c in cat.columns] + extra


def _chunks(cat: Catalog, columns: list[str], cone, where: str | None) -> Iterator[pa.RecordBatch]:
    """The rows to search, ``CHUNK_ROWS`` at a time, with ``columns`` and the embedding."""
    wanted = list(dict.fromkeys([*columns, EMBEDDING_COLUMN]))
    if cone is None and where is None:
        yield from cat.dataset().to_batches(columns=wanted, batch_size=CHUNK_ROWS)
        return
    table = query(cat, cone=cone, where=where, columns=wanted, output="arrow")
    yield from table.to_batches(max_chunksize=CHUNK_ROWS)


def _usable_index(cat: Catalog, metric: str, use_index: bool):
    """The catalog's index when it has one built for ``metric`` and ``use_index``; else None."""
    if not use_index:
        return None
    from galaxy_ray.similar.index import load_index

    idx = load_index(cat)
    return idx if idx is not None and idx.metric == metric else None


def _top(table: pa.Table, k: int) -> pa.Table:
    order = np.argsort(table["distance"].to_numpy(), kind="stable")[:k]
    return table.take(pa.array(order))


def similar(catalog: Catalog | str, like: str | None = None, *, like_image: str | None = None,
            vector: np.ndarray | None = None, k: int = 20, metric: str = "cosine", cone=None,
            where: str | None = None, columns: str | Sequence[str] | None = None,
            checkpoint: str | None = None, use_index: bool = True) -> pa.Table:
    """The ``k`` galaxies nearest to one galaxy, an image or a vector (exact, or through the catalog's index).

    Parameters
    ----------
    catalog : Catalog or str
        A catalog written by ``infer --embeddings``.
    like : str, optional
        The query galaxy's ``object_id`` (it comes first, at distance 0, when inside the filters).
    like_image : str, optional
        An image file, embedded with the catalog's checkpoint (or ``checkpoint``).
    vector : numpy.ndarray, optional
        A query vector in the catalog's embedding space, (dims,).
    k : int
        Rows to return.
    metric : {"cosine", "euclidean"}
        ``1 - cosine similarity`` (default) or Euclidean distance, in the PCA space.
    cone : (ra, dec, radius) in degrees, optional
    where : str, optional
        SQL filter as for ``query --where``.
    columns : str or sequence of str, optional
        Columns shown after ``distance``, ``object_id``, ``ra``, ``dec``, ``morphology``,
        ``p_merger`` and ``is_merger``.
    use_index : bool
        Use the catalog's index when it has one for ``metric`` (False: always exact).

    Returns
    -------
    pyarrow.Table
        ``distance`` then the columns, nearest first (ties in catalog order).

    Raises
    ------
    GalaxyRayError
        No embeddings, not exactly one query, an unknown id or column, a bad metric, k or filter,
        a stale index.
    """
    cat = as_catalog(catalog)
    info = embedding_info(cat)
    _check(metric, k)
    if sum(x is not None for x in (like, like_image, vector)) != 1:
        raise GalaxyRayError("give exactly one query: --like OBJECT_ID or --like-image FILE")
    idx = _usable_index(cat, metric, use_index)
    if idx is not None and like is not None:
        from galaxy_ray.similar.indexed import indexed_vector

        q = indexed_vector(cat, idx, like)
    else:
        q = (query_vector(cat, like) if like is not None else image_vector(cat, like_image, checkpoint)
             if like_image is not None else np.asarray(vector, dtype=np.float32))
    dims = int(info["dims"])
    out_cols = _out_columns(cat, columns)
    if idx is not None:
        from galaxy_ray.similar.indexed import indexed_similar

        got = indexed_similar(cat, idx, q, k, metric, cone, where, out_cols)
        if got is not None:
            return got
    best: pa.Table | None = None
    for chunk in _chunks(cat, out_cols, cone, where):
        valid, values = embedding_matrix(chunk.column(EMBEDDING_COLUMN), dims)
        if not len(values):
            continue
        d = distances(values, q, metric)
        keep = np.argsort(d, kind="stable")[:k]
        rows = pa.Table.from_batches([chunk.select(out_cols)]).filter(pa.array(valid)).take(pa.array(keep))
        rows = rows.add_column(0, "distance", pa.array(d[keep], type=pa.float64()))
        best = _top(rows if best is None else pa.concat_tables([best, rows]), k)
    if best is None:
        return pa.table({"distance": pa.array([], pa.float64()),
                         **{c: pa.array([], cat.schema.field(c).type) for c in out_cols}})
    return best


def _pairwise(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Distances (len(a), len(b)) float64 between the rows of ``a`` and ``b``, as :func:`distances`."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if metric == "euclidean":
        sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
        return np.sqrt(np.maximum(sq, 0.0))
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (a / np.where(na > 0, na, 1.0)[:, None]) @ (b / np.where(nb > 0, nb, 1.0)[:, None]).T
    return np.maximum(1.0 - cos, 0.0)


def kth_neighbour_distance(values: np.ndarray, k: int, metric: str = "cosine",
                           max_elements: int = 1 << 24) -> np.ndarray:
    """Each row's distance to its ``k``-th nearest other row (exact), float64 (N,).

    The row itself counts as its own 0th neighbour, so the ``k``-th smallest
    distance in its row of the distance matrix (0-based) is the ``k``-th
    neighbour's; a row whose twin is stored twice has a first neighbour at 0.
    Computed ``max_elements // N`` query rows at a time (128 MiB of float64
    distances), so memory stays flat while time grows as N**2.

    Raises
    ------
    GalaxyRayError
        ``k`` not below the number of rows.
    """
    n = len(values)
    if k >= n:
        raise GalaxyRayError(f"-k {k}: the oddity needs more than k rows with embeddings ({n} here)")
    out = np.empty(n)
    step = max(1, max_elements // max(1, n))
    for start in range(0, n, step):
        d = _pairwise(values[start:start + step], values, metric)
        out[start:start + step] = np.partition(d, k, axis=1)[:, k]
    return out


def oddity(catalog: Catalog | str, *, k: int = 10, metric: str = "cosine", cone=None, where: str | None = None,
           columns: str | Sequence[str] | None = None, use_index: bool = True) -> pa.Table:
    """Every galaxy's oddity: the distance to its ``k``-th nearest neighbour, oddest first.

    Galaxies in sparse regions of the embedding space (few that look like
    them) score high.  Neighbours are searched among the rows the filters
    keep (all rows by default).  Without filters, a catalog's index for
    ``metric`` proposes each row's neighbours (time ~N log N instead of N**2);
    their distances are exact.

    Returns
    -------
    pyarrow.Table
        ``oddity`` then the main columns (as :func:`similar`), sorted by ``oddity`` descending;
        rows without an embedding are left out.

    Raises
    ------
    GalaxyRayError
        No embeddings, a bad metric, k, column or filter, or no more than ``k`` rows.
    """
    cat = as_catalog(catalog)
    dims = int(embedding_info(cat)["dims"])
    _check(metric, k)
    out_cols = _out_columns(cat, columns)
    tables, matrices = [], []
    for chunk in _chunks(cat, out_cols, cone, where):
        valid, values = embedding_matrix(chunk.column(EMBEDDING_COLUMN), dims)
        tables.append(pa.Table.from_batches([chunk.select(out_cols)]).filter(pa.array(valid)))
        matrices.append(values)
    values = np.concatenate(matrices) if matrices else np.zeros((0, dims), np.float32)
    idx = _usable_index(cat, metric, use_index) if cone is None and where is None else None
    if idx is not None and len(idx.row) == len(values):
        from galaxy_ray.similar.indexed import indexed_kth

        score = indexed_kth(idx, values, k, metric)
    else:
        score = kth_neighbour_distance(values, k, metric)
    table = pa.concat_tables(tables).add_column(0, "oddity", pa.array(score, type=pa.float64()))
    return table.take(pa.array(np.argsort(-score, kind="stable")))
