"""Cross-matching a morphology catalog with another catalog: ``galaxy-ray crossmatch``.

The match is LSDB's (``Catalog.crossmatch``, a k-d tree on unit vectors per
pair of aligned HEALPix partitions): for each galaxy, the nearest
``n_neighbors`` objects of the other catalog within the radius, with their
separation in arcsec.  The other catalog may be HATS (opened with
``lsdb.open_catalog``, its margin cache included) or a Parquet, CSV or FITS
table with RA/Dec columns in degrees, partitioned here with
``lsdb.from_dataframe`` and a margin as wide as the radius, so pairs across
partition edges are found.  A plain galaxy-ray catalog on the left is read
(only the columns asked for) and partitioned the same way; convert large ones
with ``galaxy-ray hats`` first.

lsdb and Dask are imported inside the functions: ``galaxy-ray query`` must
not pay for them.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from typing import Sequence

import astropy.units as u
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from galaxy_ray.catalog.angles import ANGLE_HELP, parse_angle
from galaxy_ray.catalog.cli import print_rows
from galaxy_ray.catalog.hats import hats_upath, is_hats_listing
from galaxy_ray.catalog.output import write_table
from galaxy_ray.catalog.query import check_columns, split_list
from galaxy_ray.catalog.scan import Catalog, as_catalog
from galaxy_ray.catalog.write import METADATA_KEY
from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.io import storage
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.cli import help_text

__all__ = ["SEPARATION", "DEFAULT_COLUMNS", "parse_radius", "read_table", "crossmatch", "crossmatch_main"]

#: Name of the separation column of a cross-match, arcsec.
SEPARATION = "separation_arcsec"
#: Morphology-catalog columns a cross-match keeps unless told otherwise.
DEFAULT_COLUMNS = (C.OBJECT_ID, C.RA, C.DEC, C.MORPHOLOGY, C.P_MERGER, C.IS_MERGER)
#: Suffix of the other catalog's columns whose names the morphology catalog also has.
OTHER_SUFFIX = "_other"
#: Names tried, case-insensitively, for the other catalog's RA and Dec (degrees).
_RA_NAMES = ("ra", "raj2000", "ra_icrs", "ra_deg", "radeg", "alpha_j2000")
_DEC_NAMES = ("dec", "dej2000", "decj2000", "de_icrs", "dec_icrs", "dec_deg", "decdeg", "delta_j2000")
#: Narrowest margin cache of a catalog partitioned here, arcsec.
_BUILT_MARGIN_ARCSEC = 60.0
_TABLE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".csv.gz": "csv",
                   ".fits": "fits", ".fit": "fits", ".fits.gz": "fits"}


def parse_radius(text: str | float, bare_unit: str = "arcsec") -> float:
    """A match radius in arcsec from ``"1arcsec"``, ``"0.5 arcmin"``, ``"0.001deg"`` or a bare number.

    The grammar is :mod:`galaxy_ray.catalog.angles`'. A bare number is in ``bare_unit``:
    arcseconds for the Python parameter ``radius_arcsec``, degrees on the command line
    (``crossmatch --radius``), as every command reads a bare angle.

    Raises
    ------
    GalaxyRayError
        Not an angle, or not positive.
    """
    value = float(parse_angle(text, "--radius", default_unit=bare_unit).to_value(u.arcsec))
    if not value > 0:
        raise GalaxyRayError(f"--radius {text!r}: must be > 0")
    return float(value)


def _table_format(uri: str) -> str:
    low = str(uri).lower().rstrip("/")
    for suffix in sorted(_TABLE_SUFFIXES, key=len, reverse=True):
        if low.endswith(suffix):
            return _TABLE_SUFFIXES[suffix]
    if storage.isdir(uri):
        return "parquet-dir"
    raise GalaxyRayError(f"{uri}: unknown table format; give a HATS catalog or a .parquet, .csv or .fits file")


def read_table(uri: str) -> pa.Table:
    """A Parquet (file or directory), CSV or FITS table, local or ``s3://``, as an Arrow table.

    FITS columns with more than one value per row are left out (a match keeps scalars).
    """
    fmt = _table_format(uri)
    if fmt == "parquet-dir":
        fs, path = storage.pyarrow_filesystem(uri)
        return pq.read_table(path, filesystem=fs)
    data = storage.read_bytes(uri) if storage.exists(uri) else None
    if data is None:
        raise GalaxyRayError(f"{uri}: no such file; check the path")
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(data))
    if fmt == "csv":
        compression = "gzip" if str(uri).lower().endswith(".gz") else None
        return pacsv.read_csv(pa.input_stream(pa.BufferReader(data), compression=compression))
    from astropy.table import Table  # only FITS needs it

    table = Table.read(io.BytesIO(data), format="fits")
    keep = [name for name in table.colnames if table[name].ndim == 1]
    return pa.Table.from_pandas(table[keep].to_pandas(), preserve_index=False)


def _position_columns(names: Sequence[str], ra: str | None, dec: str | None, where: str) -> tuple[str, str]:
    """The RA and Dec columns of a table: as given, else the first usual name present."""
    lower = {n.lower(): n for n in names}

    def pick(given: str | None, candidates: Sequence[str], what: str) -> str:
        if given:
            return check_columns([given], list(names), f"--other-{what}")[0]
        for cand in candidates:
            if cand in lower:
                return lower[cand]
        raise GalaxyRayError(f"{where}: no {what.upper()} column (tried {', '.join(candidates)}); "
                             f"name it with --other-{what}")

    return pick(ra, _RA_NAMES, "ra"), pick(dec, _DEC_NAMES, "dec")


def _is_hats(uri: str) -> bool:
    return storage.isdir(uri) and is_hats_listing(storage.list_files(uri))


def _lsdb_from_table(table: pa.Table, ra: str, dec: str, name: str, margin_arcsec: float | None):
    """An LSDB catalog of an in-memory table (rows without a position dropped)."""
    import lsdb

    df = table.to_pandas()
    df = df[df[ra].notna() & df[dec].notna()].reset_index(drop=True)
    if df.empty:
        raise GalaxyRayError(f"{name}: no rows with a position")
    return lsdb.from_dataframe(df, ra_column=ra, dec_column=dec, catalog_name=name,
                               margin_threshold=margin_arcsec)


def _left_catalog(cat: Catalog, columns: list[str]):
    """The morphology catalog as an LSDB catalog with ``columns`` (HATS: opened lazily)."""
    import lsdb

    if cat.layout == "hats":
        return lsdb.open_catalog(hats_upath(cat.uri), columns=columns)
    table = cat.dataset().to_table(columns=columns)
    # the left side needs no margin: the other catalog's margin completes pairs across edges
    return _lsdb_from_table(table, C.RA, C.DEC, "morphology", None)


def _other_catalog(other: str, columns: list[str] | None, ra: str | None, dec: str | None, radius: float):
    """The other catalog as an LSDB catalog, with a margin of at least ``radius`` arcsec when built here."""
    import lsdb

    if _is_hats(other):
        opened = lsdb.open_catalog(hats_upath(other), columns=columns)
        if opened.margin is None:
            print(f"galaxy-ray: warning: {other} has no margin cache; pairs across its partition edges "
                  "may be missed", file=sys.stderr)
        return opened
    table = read_table(other)
    ra, dec = _position_columns(table.column_names, ra, dec, other)
    if columns:
        keep = check_columns(columns, table.column_names, "--other-columns")
        table = table.select(list(dict.fromkeys([*keep, ra, dec])))
    # at least the radius (with a hair for rounding at a partition edge); a narrow margin
    # costs LSDB a fine margin map (a 1-arcsec one takes ~20x longer than 1 arcmin), a
    # wide one only a few more rows
    return _lsdb_from_table(table, ra, dec, "other", max(radius * 1.01 + 0.01, _BUILT_MARGIN_ARCSEC))


def crossmatch(catalog: Catalog | str, other: str, radius_arcsec: float = 1.0,
               columns: str | Sequence[str] | None = None, other_columns: str | Sequence[str] | None = None,
               n_neighbors: int = 1, other_ra: str | None = None, other_dec: str | None = None) -> pa.Table:
    """Pairs of a morphology catalog's galaxies and another catalog's objects within ``radius_arcsec``.

    Parameters
    ----------
    catalog : Catalog or str
        The morphology catalog (plain or HATS layout).
    other : str
        A HATS catalog or collection, or a Parquet, CSV or FITS table (local or ``s3://``).
    radius_arcsec : float
        Largest separation of a pair, arcsec.
    columns : str or sequence of str, optional
        Morphology-catalog columns to keep (default :data:`DEFAULT_COLUMNS`).
    other_columns : str or sequence of str, optional
        The other catalog's columns to keep (default all); names it shares
        with the morphology catalog get the suffix ``_other``.
    n_neighbors : int
        Most matches per galaxy, nearest first.
    other_ra, other_dec : str, optional
        The other catalog's RA/Dec columns (degrees) when not a usual name.

    Returns
    -------
    pyarrow.Table
        One row per pair: the kept columns and ``separation_arcsec``, sorted
        by ``object_id`` then separation.  Its schema metadata holds the
        morphology catalog's provenance (key ``galaxy_ray``: checkpoint SHA-256,
        merger threshold and its validation rates ...), as the catalog's files
        do, since the pairs carry its ``p_merger`` and ``is_merger``.

    Raises
    ------
    GalaxyRayError
        A bad radius, column or file, or a failure inside LSDB (one line).
    """
    cat = as_catalog(catalog)
    radius = parse_radius(radius_arcsec)
    if int(n_neighbors) < 1:
        raise GalaxyRayError(f"--neighbors {n_neighbors}: must be >= 1")
    left_cols = check_columns(split_list(columns), cat.columns, "--columns") or list(DEFAULT_COLUMNS)
    left_cols = list(dict.fromkeys([C.OBJECT_ID, *left_cols, C.RA, C.DEC]))
    right_cols = split_list(other_columns) or None
    try:
        left = _left_catalog(cat, left_cols)
        right = _other_catalog(str(other), right_cols, other_ra, other_dec, radius)
        matched = left.crossmatch(right, radius_arcsec=radius, n_neighbors=int(n_neighbors),
                                  suffixes=("", OTHER_SUFFIX), suffix_method="overlapping_columns",
                                  log_changes=False).compute()
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise GalaxyRayError(f"cross-match failed: {one_line(exc)}") from None
    df = matched.reset_index(drop=True).rename(columns={"_dist_arcsec": SEPARATION})
    df = df.sort_values([C.OBJECT_ID, SEPARATION], kind="stable").reset_index(drop=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    if not cat.provenance:
        return table
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY.encode()] = json.dumps(cat.provenance, sort_keys=True, default=str).encode()
    return table.replace_schema_metadata(meta)


def crossmatch_main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray crossmatch``: pair the catalog's galaxies with another catalog's objects (LSDB)."""
    p = argparse.ArgumentParser(prog="galaxy-ray crossmatch", description=help_text(crossmatch_main.__doc__))
    p.add_argument("catalog", help="morphology catalog (plain or HATS, local or s3://)")
    p.add_argument("other", help="HATS catalog, or a .parquet, .csv or .fits table with RA/Dec in degrees")
    p.add_argument("--radius", default="1arcsec",
                   help=f"largest separation, {ANGLE_HELP} (default 1arcsec)")
    p.add_argument("--columns", help=f"morphology columns to keep (default {','.join(DEFAULT_COLUMNS)})")
    p.add_argument("--other-columns", help="the other catalog's columns to keep (default all)")
    p.add_argument("--other-ra", help="the other catalog's RA column (default: ra, RAJ2000, ...)")
    p.add_argument("--other-dec", help="the other catalog's Dec column (default: dec, DEJ2000, ...)")
    p.add_argument("--neighbors", type=int, default=1, help="most matches per galaxy, nearest first (default 1)")
    p.add_argument("--out", help="write the pairs to a .csv, .parquet, .fits or .vot file (local or s3://); "
                                 "Parquet, FITS and VOTable keep the catalog's provenance, as query --out does")
    p.add_argument("--max-print", type=int, default=20, help="rows shown on the terminal (default 20)")
    args = p.parse_args(argv)
    cat = as_catalog(args.catalog)
    table = crossmatch(cat, args.other, parse_radius(args.radius, bare_unit="deg"), columns=args.columns, other_columns=args.other_columns,
                       n_neighbors=args.neighbors, other_ra=args.other_ra, other_dec=args.other_dec)
    if args.out:
        # the pairs carry the catalog's p_merger and is_merger: its provenance (checkpoint SHA-256, threshold
        # and its validation rates) goes with them into Parquet, FITS and VOTable outputs, as query's does
        asked = {"catalog": args.catalog, "crossmatch": args.other, "radius": args.radius,
                 "neighbors": args.neighbors}
        fmt = write_table(table, args.out, provenance=cat.provenance, query=asked)
        print(f"wrote {table.num_rows} pairs to {args.out} ({fmt})")
    else:
        print_rows(table, args.max_print)
    return 0
