"""Morphology catalogs: writing, provenance, opening and querying.

A catalog is a directory (or ``s3://`` prefix) of Parquet files, each sorted
by ``_healpix_29`` (the HEALPix order-29 NESTED index of the galaxy's ICRS
position, the HATS convention), with the provenance JSON stored in each file's
key-value metadata under ``galaxy_ray`` and in ``_catalog.json`` beside the
files (see ``docs/contracts.md``, "The catalog").

The same rows may also be written in the HATS layout (HEALPix partitions
sized by row count, a margin cache and properties; ``galaxy-ray hats``),
which LSDB opens and cross-matches; ``query`` and ``stats`` read both.

Spatial queries (cones and RA/Dec boxes) first find the HEALPix cells that
cover the region at a coarse order (mocpy), turn them into ranges of
``_healpix_29`` and read only the Parquet row groups whose min/max statistics
meet those ranges; the rows of those groups are then kept by exact angular
separation (astropy).  Filters, column selection, sorting and limits run on
DuckDB.

Modules: :mod:`~galaxy_ray.catalog.write` (files and provenance),
:mod:`~galaxy_ray.catalog.regions` (cones, boxes, HEALPix covers),
:mod:`~galaxy_ray.catalog.scan` (opening, region scans),
:mod:`~galaxy_ray.catalog.query` (filters and queries),
:mod:`~galaxy_ray.catalog.output` (tables and files),
:mod:`~galaxy_ray.catalog.columns` (each column's unit, UCD and description),
:mod:`~galaxy_ray.catalog.export` (FITS and VOTable files with units, UCDs and provenance),
:mod:`~galaxy_ray.catalog.stats` (merger statistics),
:mod:`~galaxy_ray.catalog.metadata` (the ``_metadata`` footer summary, portable provenance URIs),
:mod:`~galaxy_ray.catalog.hats` (reading the HATS layout),
:mod:`~galaxy_ray.catalog.convert` (``galaxy-ray hats``: writing it with hats-import),
:mod:`~galaxy_ray.catalog.crossmatch` (``galaxy-ray crossmatch``, with LSDB) and
:mod:`~galaxy_ray.catalog.cli` (``galaxy-ray query`` and ``stats``).
"""

from galaxy_ray.catalog.cli import query_main, stats_main
from galaxy_ray.catalog.convert import DEFAULT_MARGIN_ARCSEC, default_hats_path, hats_main, to_hats
from galaxy_ray.catalog.crossmatch import crossmatch, crossmatch_main, parse_radius
from galaxy_ray.catalog.metadata import METADATA_NAME, portable_uri, write_parquet_metadata
from galaxy_ray.catalog.output import to_astropy, write_kaggle_submission, write_table
from galaxy_ray.catalog.query import box_search, cone_search, query, validate_where
from galaxy_ray.catalog.regions import Box, Cone, in_ranges
from galaxy_ray.catalog.scan import Catalog, ScanStats, open_catalog
from galaxy_ray.catalog.stats import LOCAL_MERGER_FRACTION, format_stats, merger_stats, wilson_interval
from galaxy_ray.catalog.write import (
    METADATA_KEY,
    SUMMARY_NAME,
    catalog_schema,
    healpix29,
    read_provenance,
    write_catalog_file,
    write_catalog_summary,
)

__all__ = [
    "METADATA_KEY",
    "SUMMARY_NAME",
    "LOCAL_MERGER_FRACTION",
    "healpix29",
    "catalog_schema",
    "write_catalog_file",
    "write_catalog_summary",
    "read_provenance",
    "Cone",
    "Box",
    "in_ranges",
    "Catalog",
    "ScanStats",
    "open_catalog",
    "query",
    "cone_search",
    "box_search",
    "merger_stats",
    "wilson_interval",
    "format_stats",
    "validate_where",
    "to_astropy",
    "write_table",
    "write_kaggle_submission",
    "query_main",
    "stats_main",
    "METADATA_NAME",
    "write_parquet_metadata",
    "portable_uri",
    "DEFAULT_MARGIN_ARCSEC",
    "default_hats_path",
    "to_hats",
    "hats_main",
    "crossmatch",
    "crossmatch_main",
    "parse_radius",
]
