"""A principal-component projection, fitted and applied with numpy only.

The catalog stores each galaxy's pooled features reduced to a few dimensions
(:mod:`galaxy_ray.similar.embed`); the projection is fitted once on a sample
and stored in the catalog's provenance (``embedding``), so every file, every
model actor and every later query (``similar --like-image``) projects the
same way.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_pca", "project", "pca_to_dict", "pca_from_dict"]


def fit_pca(features: np.ndarray, dims: int) -> dict[str, np.ndarray]:
    """The top ``dims`` principal components of ``features`` (rows are samples).

    Computed from the SVD of the centred matrix: ``X - mean = U S Vt``; the
    components are the first rows of ``Vt``, the explained variance ``S**2 / (n - 1)``.
    Each component's sign is fixed so that its largest-magnitude loading is
    positive (the SVD leaves it free), making refits on the same sample agree.
    When the sample has fewer independent directions than ``dims``, the
    remaining components are zero (explained variance 0), so the stored
    vectors always have ``dims`` entries.

    Parameters
    ----------
    features : numpy.ndarray, shape (n, F)
        Feature vectors, any float dtype (computed in float64).
    dims : int
        Number of components, >= 1.

    Returns
    -------
    dict
        ``mean`` (F,), ``components`` (dims, F), ``explained_variance`` (dims,),
        ``explained_variance_ratio`` (dims,; share of the total variance), all float64.

    Raises
    ------
    ValueError
        ``dims`` < 1 or fewer than 2 samples.
    """
    x = np.asarray(features, dtype=np.float64)
    if dims < 1:
        raise ValueError(f"dims {dims}: must be at least 1")
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need at least 2 feature vectors to fit a projection, got shape {x.shape}")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    var = s**2 / (len(x) - 1)
    total = var.sum()
    k = min(dims, len(var))
    components = np.zeros((dims, x.shape[1]))
    components[:k] = vt[:k]
    signs = np.sign(components[np.arange(dims), np.abs(components).argmax(axis=1)])
    components *= np.where(signs == 0, 1.0, signs)[:, None]
    explained = np.zeros(dims)
    explained[:k] = var[:k]
    return {"mean": mean, "components": components, "explained_variance": explained,
            "explained_variance_ratio": explained / total if total > 0 else explained}


def project(features: np.ndarray, pca: dict) -> np.ndarray:
    """``(features - mean) @ components.T`` as float32, shape (n, dims)."""
    x = np.asarray(features, dtype=np.float64)
    mean = np.asarray(pca["mean"], dtype=np.float64)
    components = np.asarray(pca["components"], dtype=np.float64)
    return ((x - mean) @ components.T).astype(np.float32)


def pca_to_dict(pca: dict) -> dict[str, list]:
    """The projection as JSON-ready lists (for the provenance)."""
    return {k: np.asarray(v, dtype=np.float64).tolist() for k, v in pca.items()}


def pca_from_dict(stored: dict) -> dict[str, np.ndarray]:
    """The projection from its provenance form (:func:`pca_to_dict`), as float64 arrays."""
    return {k: np.asarray(stored[k], dtype=np.float64)
            for k in ("mean", "components", "explained_variance", "explained_variance_ratio") if k in stored}
