"""The embedding vectors of a catalog: its ``embedding`` entry, the column as a matrix, and distances.

Shared by exact search (:mod:`galaxy_ray.similar.search`) and the index
(:mod:`galaxy_ray.similar.index`, :mod:`galaxy_ray.similar.indexed`), which sit above it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from galaxy_ray.catalog.scan import Catalog
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.similar.embed import EMBEDDING_COLUMN

__all__ = ["METRICS", "distances", "embedding_info", "embedding_matrix"]

#: Distances in the embedding space: ``1 - cosine similarity``, or Euclidean.
METRICS = ("cosine", "euclidean")


def embedding_info(cat: Catalog) -> dict:
    """The provenance's ``embedding`` entry.

    Raises
    ------
    GalaxyRayError
        The catalog has no embeddings (one line saying how to get them).
    """
    info = cat.provenance.get("embedding")
    if EMBEDDING_COLUMN not in cat.columns or not info:
        raise GalaxyRayError(
            f"{cat.uri}: no embeddings in this catalog; write them with `galaxy-ray infer --checkpoint MODEL "
            "--source CUTOUTS --out NEW_DIR --embeddings` (docs/similar.md)")
    return info


def embedding_matrix(column, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(valid rows mask (N,), float32 matrix (valid rows, dims)) of an embedding column (nulls left out)."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    flat = pc.list_flatten(col.filter(pa.array(valid)))
    values = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dims)
    return valid, values


def distances(vectors: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """Distance (N,) float64 of each row of ``vectors`` to ``q``: ``1 - cos`` or Euclidean.

    Cosine distance of a zero vector is 1 (no direction); rounding can make a
    distance a hair below 0, which is clipped.
    """
    v = np.asarray(vectors, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if metric == "euclidean":
        return np.sqrt(np.maximum(((v - q) ** 2).sum(axis=1), 0.0))
    norms = np.linalg.norm(v, axis=1) * np.linalg.norm(q)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, (v @ q) / np.where(norms > 0, norms, 1.0), 0.0)
    return np.maximum(1.0 - cos, 0.0)
