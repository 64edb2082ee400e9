"""Opening a catalog and reading the rows of a sky region.

A region scan reads, file by file, only the row groups whose ``_healpix_29``
min/max statistics meet the region's HEALPix cover; of those it reads the
positions first, keeps the rows inside the region, and reads the other
columns only of the row groups that hold such rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from galaxy_ray.catalog.regions import Box, Cone, Ranges, in_ranges
from galaxy_ray.catalog.write import (
    LEADING_COLUMNS,
    METADATA_KEY,
    TRAILING_COLUMNS,
    catalog_files,
    file_provenance,
    read_provenance,
)
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["ScanStats", "Catalog", "open_catalog", "as_catalog", "locked_connection"]

#: Columns a region scan reads first, for the cheap and the exact region tests.
_POSITION_COLUMNS = [C.RA, C.DEC, C.HEALPIX]


def locked_connection() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that cannot read or write files (a filter only sees what we register)."""
    con = duckdb.connect()
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


@dataclass
class ScanStats:
    """What the last spatial scan touched (for benchmarks and ``--verbose``)."""

    files: int = 0
    row_groups_total: int = 0
    row_groups_read: int = 0
    rows_read: int = 0
    rows_matched: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """The counts as a plain dict."""
        return dict(self.__dict__)


def row_groups_meeting(pf: pq.ParquetFile, cover: Ranges | None) -> list[int]:
    """Indices of the row groups of ``pf`` whose ``_healpix_29`` statistics meet ``cover``.

    A row group without statistics is always read; one whose positions are
    all null never is.  ``cover`` None: every row group.
    """
    meta = pf.metadata
    if cover is None:
        return list(range(meta.num_row_groups))
    lo, hi = cover
    col = pf.schema_arrow.get_field_index(C.HEALPIX)
    chosen = []
    for i in range(meta.num_row_groups):
        st = meta.row_group(i).column(col).statistics
        if st is None or not st.has_min_max:
            if st is None or st.null_count != meta.row_group(i).num_rows:
                chosen.append(i)
            continue
        # the first range ending after the group's min must start at or before its max
        k = int(np.searchsorted(hi, st.min, side="right"))
        if k < lo.size and lo[k] <= st.max:
            chosen.append(i)
    return chosen


def region_mask(pos: pa.Table, region: Cone | Box, cover: Ranges | None) -> np.ndarray:
    """Rows of ``pos`` (ra, dec, _healpix_29) inside ``region``: the cover test, then the exact one."""
    ra = pos[C.RA].to_numpy()
    dec = pos[C.DEC].to_numpy()
    if cover is None:
        return region.contains(ra, dec)
    hp = pos[C.HEALPIX]
    valid = ~np.asarray(hp.is_null())
    # cheap integer test first; the exact test only for the candidates
    cand = valid & in_ranges(pc.fill_null(hp, 0).to_numpy(), *cover)
    mask = np.zeros(len(ra), dtype=bool)
    if cand.any():
        mask[cand] = region.contains(ra[cand], dec[cand])
    return mask


@dataclass
class Catalog:
    """An opened catalog: its files, schema and provenance.

    Use :func:`open_catalog` to make one.
    """

    uri: str
    files: list[str]
    schema: pa.Schema
    provenance: dict
    last_scan: ScanStats = field(default_factory=ScanStats)
    _footers: dict = field(default_factory=dict, repr=False)
    _con: Any = field(default=None, repr=False)

    def connection(self) -> duckdb.DuckDBPyConnection:
        """This catalog's DuckDB connection (no file access; queries see what is registered)."""
        if self._con is None:
            self._con = locked_connection()
        return self._con

    @property
    def columns(self) -> list[str]:
        """Column names, in file order."""
        return list(self.schema.names)

    @property
    def output_columns(self) -> list[str]:
        """The model's output columns (provenance ``output_columns``, else the non-contract floats)."""
        cols = self.provenance.get("output_columns")
        if cols:
            return list(cols)
        fixed = set(LEADING_COLUMNS) | set(TRAILING_COLUMNS)
        return [f.name for f in self.schema if f.name not in fixed and pa.types.is_floating(f.type)]

    def _filesystem(self):
        return storage.pyarrow_filesystem(self.files[0])[0]

    def dataset(self) -> ds.Dataset:
        """The files as one ``pyarrow.dataset.Dataset``."""
        paths = [storage.pyarrow_filesystem(f)[1] for f in self.files]
        return ds.dataset(paths, schema=self.schema, format="parquet", filesystem=self._filesystem())

    def scan_region(self, region: Cone | Box, columns: Sequence[str] | None = None,
                    prune: bool = True) -> pa.Table:
        """Rows inside ``region``, read row group by row group; counts in :attr:`last_scan`.

        Parameters
        ----------
        region : Cone or Box
        columns : sequence of str, optional
            Columns to return (all when None).
        prune : bool
            Skip row groups whose ``_healpix_29`` statistics miss the region's
            HEALPix cover.  ``False`` scans every row group (the baseline the
            benchmark compares with); the result is the same.
        """
        start = time.perf_counter()
        columns = self.columns if columns is None else list(columns)
        cover = region.cover() if prune else None
        stats = ScanStats(files=len(self.files))
        fs = self._filesystem()
        pieces = []
        for uri in self.files:
            with fs.open_input_file(storage.pyarrow_filesystem(uri)[1]) as handle:
                pf = pq.ParquetFile(handle, metadata=self._footers.get(uri))
                self._footers[uri] = pf.metadata  # parsed once per opened catalog
                got = self._scan_file(pf, region, cover, columns, stats)
            if got is not None:
                pieces.append(got)
        out = pa.concat_tables(pieces) if pieces else self.schema.empty_table().select(columns)
        stats.rows_matched = out.num_rows
        stats.seconds = time.perf_counter() - start
        self.last_scan = stats
        return out

    def _scan_file(self, pf: pq.ParquetFile, region: Cone | Box, cover: Ranges | None,
                   columns: list[str], stats: ScanStats) -> pa.Table | None:
        """The rows of one file inside ``region`` (None when there are none), counted in ``stats``."""
        groups = row_groups_meeting(pf, cover)
        stats.row_groups_total += pf.metadata.num_row_groups
        stats.row_groups_read += len(groups)
        if not groups:
            return None
        pos = pf.read_row_groups(groups, columns=_POSITION_COLUMNS)
        stats.rows_read += pos.num_rows
        mask = region_mask(pos, region, cover)
        if not mask.any():
            return None
        got = pos.filter(pa.array(mask))
        rest = [c for c in columns if c not in _POSITION_COLUMNS]
        if rest:
            # the other columns only of the row groups with rows inside
            bounds = np.cumsum([0, *(pf.metadata.row_group(i).num_rows for i in groups)])
            parts = [mask[bounds[k]:bounds[k + 1]] for k in range(len(groups))]
            hit = [k for k, part in enumerate(parts) if part.any()]
            other = pf.read_row_groups([groups[k] for k in hit], columns=rest)
            other = other.filter(pa.array(np.concatenate([parts[k] for k in hit])))
            for name in rest:
                got = got.append_column(self.schema.field(name), other[name])
        return got.select(columns)


def open_catalog(uri: str) -> Catalog:
    """Open a catalog directory, ``s3://`` prefix or single catalog Parquet file.

    Raises
    ------
    GalaxyRayError
        When ``uri`` does not exist or is not a galaxy-ray catalog.
    """
    uri = str(uri)
    if not storage.exists(uri):
        raise GalaxyRayError(f"{uri}: no such catalog; check the path")
    files = catalog_files(uri)
    if not files:
        raise GalaxyRayError(
            f"{uri}: not a galaxy-ray catalog (no Parquet files); point at the directory that galaxy-ray infer wrote"
        )
    provenance = read_provenance(uri) if storage.isdir(uri) else file_provenance(uri)
    if provenance is None:
        raise GalaxyRayError(f"{uri}: not a galaxy-ray catalog (no '{METADATA_KEY}' metadata)")
    fs, path = storage.pyarrow_filesystem(files[0])
    try:
        with fs.open_input_file(path) as f:
            schema = pq.read_schema(f)
    except (pa.ArrowInvalid, OSError) as exc:
        raise GalaxyRayError(f"{files[0]}: not a readable Parquet file ({exc})") from None
    missing = [c for c in (*LEADING_COLUMNS, *TRAILING_COLUMNS) if c not in schema.names]
    if missing:
        raise GalaxyRayError(f"{uri}: not a galaxy-ray catalog (no column {', '.join(missing)})")
    return Catalog(uri=uri, files=files, schema=schema.remove_metadata(), provenance=provenance)


def as_catalog(catalog: Catalog | str) -> Catalog:
    """``catalog`` itself, or the catalog opened at that URI."""
    return catalog if isinstance(catalog, Catalog) else open_catalog(catalog)
