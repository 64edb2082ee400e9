"""The catalog half of the public API: open a catalog, cone and box searches, merger statistics.

Nothing here imports torch, so a notebook that only reads catalogs starts fast
(``galaxy-ray query`` keeps the same rule).  Positions and radii are ICRS
degrees throughout.
"""

from __future__ import annotations

from typing import Any, Sequence

from galaxy_ray.catalog.query import box_search, check_columns, cone_search, query
from galaxy_ray.catalog.stats import merger_stats as catalog_merger_stats
from galaxy_ray.catalog.export import annotated_table
from galaxy_ray.catalog.hats import hats_upath
from galaxy_ray.catalog.scan import Catalog, as_catalog
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["OPEN_AS", "box", "cone", "merger_stats", "open_catalog"]

#: What :func:`open_catalog` can return.
OPEN_AS = ("pandas", "astropy", "arrow", "lsdb")


def _lsdb_catalog(cat: Catalog, columns: Sequence[str] | None):
    import lsdb

    if cat.layout == "hats":
        return lsdb.open_catalog(hats_upath(cat.uri), columns=list(columns) if columns else None)
    frame = query(cat, columns=columns, output="pandas")
    frame = frame[frame[C.RA].notna() & frame[C.DEC].notna()]  # a partition needs a position
    return lsdb.from_dataframe(frame.reset_index(drop=True), ra_column=C.RA, dec_column=C.DEC,
                               catalog_name="galaxy_ray")


def open_catalog(uri: str, as_: str = "pandas", *, columns: Sequence[str] | None = None,
                 where: str | None = None) -> Any:
    """Read a galaxy-ray catalog (the plain layout ``infer`` writes, or HATS) as a table.

    Parameters
    ----------
    uri : str
        The catalog directory, a single catalog Parquet file, or a HATS
        collection or catalog (``galaxy-ray hats``); a path or ``s3://``.
    as_ : {"pandas", "astropy", "arrow", "lsdb"}
        ``pandas``: a DataFrame, one row per galaxy.  ``astropy``: a Table
        whose columns carry their unit, UCD and description (``ra``/``dec``
        in ``deg``), masked where the catalog holds null, with the catalog's
        provenance in ``meta["galaxy_ray"]``.  ``arrow``: a pyarrow Table.
        ``lsdb``: a lazy LSDB catalog (a HATS collection opens with its margin
        cache; a plain catalog is read and partitioned in memory, leaving out
        rows without RA/Dec).
    columns : sequence of str, optional
        Only these columns (default: all).
    where : str, optional
        An SQL filter on the catalog's columns, e.g. ``"p_merger > 0.8"``
        (not with ``lsdb``).

    Returns
    -------
    pandas.DataFrame, astropy.table.Table, pyarrow.Table or lsdb.Catalog

    Raises
    ------
    GalaxyRayError
        No catalog at ``uri``, an unknown ``as_``, column or filter.
    """
    if as_ not in OPEN_AS:
        raise GalaxyRayError(f"as_={as_!r}: one of {', '.join(OPEN_AS)}")
    cat = as_catalog(uri)
    if as_ == "lsdb":
        if where:
            raise GalaxyRayError("where= is not for as_='lsdb'; filter the LSDB catalog with its own .query()")
        return _lsdb_catalog(cat, check_columns(list(columns or []), cat.columns, "columns"))
    if as_ == "astropy":
        table = annotated_table(query(cat, where=where, columns=columns, output="arrow"), cat.provenance)
        table.meta["galaxy_ray"] = cat.provenance
        return table
    return query(cat, where=where, columns=columns, output=as_)


def cone(catalog: str | Catalog, ra: float, dec: float, radius: float, *, where: str | None = None,
         columns: Sequence[str] | None = None, sort: str | None = None, limit: int | None = None,
         output: str = "pandas") -> Any:
    """The galaxies within ``radius`` of a position (a cone search).

    Parameters
    ----------
    catalog : str or Catalog
        A catalog URI (plain or HATS) or an opened :class:`galaxy_ray.catalog.Catalog`.
    ra, dec : float
        Centre, ICRS degrees (``0 <= ra < 360``, ``-90 <= dec <= 90``).
    radius : float or str
        Angular radius: a float in degrees (``0 < radius <= 180``) or an angle with a unit,
        ``"5arcsec"``, ``"30arcmin"``, ``"0.5deg"``.
    where : str, optional
        SQL filter on the catalog's columns, e.g. ``"is_merger"``.
    columns : sequence of str, optional
        Columns to return (default: all).
    sort : str, optional
        ``"-p_merger"`` or ``"p_merger desc"``; several separated by commas.
    limit : int, optional
        At most this many rows, after sorting.
    output : {"pandas", "astropy", "arrow"}

    Returns
    -------
    pandas.DataFrame, astropy.table.Table or pyarrow.Table
        Exactly the rows inside the cone (angular separation <= ``radius``).

    Raises
    ------
    GalaxyRayError
        A bad position or radius, filter, column, sort key, limit or output,
        or a catalog that cannot be opened.
    """
    return cone_search(catalog, ra, dec, radius, where=where, columns=columns, sort=sort,
                       limit=limit, output=output)


def box(catalog: str | Catalog, ra_min: float, ra_max: float, dec_min: float, dec_max: float, *,
        where: str | None = None, columns: Sequence[str] | None = None, sort: str | None = None,
        limit: int | None = None, output: str = "pandas") -> Any:
    """The galaxies inside an RA/Dec box.

    Parameters
    ----------
    catalog : str or Catalog
        A catalog URI (plain or HATS) or an opened catalog.
    ra_min, ra_max : float
        RA range in degrees; ``ra_min > ra_max`` crosses RA = 0/360 (``350, 10``).
    dec_min, dec_max : float
        Dec range in degrees, ``dec_min <= dec_max``.
    where, columns, sort, limit, output
        As for :func:`cone`.

    Returns
    -------
    pandas.DataFrame, astropy.table.Table or pyarrow.Table

    Raises
    ------
    GalaxyRayError
        As for :func:`cone`.
    """
    return box_search(catalog, ra_min, ra_max, dec_min, dec_max, where=where, columns=columns, sort=sort,
                      limit=limit, output=output)


def merger_stats(catalog: str | Catalog, *, cone: Sequence[float] | None = None, box: Sequence[float] | None = None,
                 where: str | None = None, by: str | None = None, bins: int | str | None = None) -> dict:
    """Merger fraction of a catalog or a region of it, raw and corrected for the classifier.

    Parameters
    ----------
    catalog : str or Catalog
        A catalog URI (plain or HATS) or an opened catalog.
    cone : (ra, dec, radius), optional
        Degrees; only galaxies inside this cone.
    box : (ra_min, ra_max, dec_min, dec_max), optional
        Degrees; only galaxies inside this box.
    where : str, optional
        SQL filter on the catalog's columns.
    by : str, optional
        Group by this column (by value, or in bins for a float column such as ``redshift``).
    bins : int or str, optional
        Number of equal-width bins, or comma-separated edges, for ``by``.

    Returns
    -------
    dict
        ``rows``, ``classified_rows``, ``mergers``, ``merger_fraction`` with
        its 95% Wilson interval ``merger_fraction_95``, the
        classifier-corrected ``corrected_fraction`` and
        ``corrected_fraction_95`` (None with ``correction`` saying why when
        they cannot be trusted), ``morphology`` counts, the merger threshold,
        and ``groups`` (one such dict per group) with ``by``; as
        :func:`galaxy_ray.catalog.merger_stats`.

    Raises
    ------
    GalaxyRayError
        A bad region, filter, column or bins, or a catalog that cannot be opened.
    """
    return catalog_merger_stats(catalog, cone=cone, box=box, where=where, by=by, bins=bins)
