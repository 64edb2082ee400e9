"""Similarity search and oddity over a catalog written with ``infer(..., embeddings=16)``."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from galaxy_ray.catalog.output import convert_table
from galaxy_ray.catalog.scan import Catalog

__all__ = ["similar", "oddity"]


def similar(catalog: Catalog | str, like: str | None = None, *, like_image: str | None = None,
            vector: np.ndarray | None = None, k: int = 20, metric: str = "cosine",
            cone: Sequence[float] | None = None, where: str | None = None,
            columns: str | Sequence[str] | None = None, output: str = "pandas", use_index: bool = True):
    """The ``k`` galaxies that look most like one galaxy (``like``, its object_id), an image or a vector.

    Search over the catalog's ``embedding`` column (written by
    ``infer(..., embeddings=16)`` / ``galaxy-ray infer --embeddings``): through
    the catalog's index when ``galaxy-ray similar CATALOG --build-index`` made
    one, else exact; see :func:`galaxy_ray.similar.search.similar` and ``docs/similar.md``.

    Parameters
    ----------
    catalog : Catalog or str
    like : str, optional
        The query galaxy's ``object_id``; it comes first, at distance 0.
    like_image : str, optional
        An image file, embedded with the catalog's checkpoint (imports torch).
    vector : numpy.ndarray, optional
        A vector in the catalog's embedding space.
    k : int
        Rows to return.
    metric : {"cosine", "euclidean"}
    cone : (ra, dec, radius) in degrees, optional
    where : str, optional
        SQL filter as for :func:`galaxy_ray.catalog.query.query`.
    columns : str or sequence of str, optional
        More columns after ``distance``, ``object_id``, ``ra``, ``dec``, ``morphology``, ``p_merger``, ``is_merger``.
    output : {"pandas", "astropy", "arrow"}
    use_index : bool
        Use the catalog's index when it has one for ``metric`` (False: exact search).

    Returns
    -------
    pandas.DataFrame, astropy.table.Table or pyarrow.Table
        ``distance`` then the columns, nearest first.

    Raises
    ------
    GalaxyRayError
        A catalog without embeddings (one line saying how to get them), an unknown id, bad options.
    """
    from galaxy_ray.similar.search import similar as search_similar

    table = search_similar(catalog, like, like_image=like_image, vector=vector, k=k, metric=metric, cone=cone,
                           where=where, columns=columns, use_index=use_index)
    return convert_table(table, output)


def oddity(catalog: Catalog | str, *, k: int = 10, metric: str = "cosine", cone: Sequence[float] | None = None,
           where: str | None = None, columns: str | Sequence[str] | None = None, output: str = "pandas",
           use_index: bool = True):
    """Every galaxy's oddity (distance to its ``k``-th nearest neighbour in the embedding space), oddest first.

    Exact and chunked (:func:`galaxy_ray.similar.search.oddity`), time growing as the square
    of the rows searched, unless the catalog has an index (``similar --build-index``) and no
    ``cone`` / ``where`` is given: then the index proposes the neighbours (distances exact).
    ``columns=open_catalog(uri).columns`` keeps every column, as ``similar --oddity --out X.parquet`` does.

    Parameters
    ----------
    catalog : Catalog or str
        A catalog written with embeddings.
    k : int
        Which neighbour's distance is the score (the galaxy itself not counted).
    metric : {"cosine", "euclidean"}
    cone : (ra, dec, radius) in degrees, optional
    where : str, optional
        SQL filter; neighbours are searched among the rows it keeps.
    columns : str or sequence of str, optional
        More columns to show.
    output : {"pandas", "astropy", "arrow"}
    use_index : bool
        Use the catalog's index when it has one (False: exact).

    Returns
    -------
    pandas.DataFrame, astropy.table.Table or pyarrow.Table
        ``oddity`` then the columns, oddest first.

    Raises
    ------
    GalaxyRayError
        A catalog without embeddings, bad options, or no more than ``k`` rows.
    """
    from galaxy_ray.similar.search import oddity as search_oddity

    return convert_table(search_oddity(catalog, k=k, metric=metric, cone=cone, where=where, columns=columns,
                                       use_index=use_index), output)
