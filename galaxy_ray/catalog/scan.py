"""Opening a catalog (plain or HATS layout) and reading the rows of a sky region.

A region scan reads, file by file, only the row groups whose ``_healpix_29``
min/max statistics meet the region's HEALPix cover; of those it reads the
positions first, keeps the rows inside the region, and reads the other
columns only of the row groups that hold such rows.

Files are skipped before they are opened where the layout allows it: in the
HATS layout a partition whose pixel misses the cover is never opened; in the
plain layout a ``_metadata`` summary gives every file's row-group statistics
in one read, so only files with a row group meeting the cover are opened.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from galaxy_ray.catalog.checksums import CHECKSUMS_KEY, check_listing, verify_file
from galaxy_ray.catalog.hats import hats_parts, is_hats_listing
from galaxy_ray.catalog.metadata import METADATA_NAME, summary_footers
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
    files_opened: int = 0
    #: Footers and column chunks read (compressed bytes, from the Parquet metadata).
    bytes_read: int = 0
    row_groups_total: int = 0
    row_groups_read: int = 0
    rows_read: int = 0
    rows_matched: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        """The counts as a plain dict."""
        return dict(self.__dict__)


def row_groups_meeting(meta: pq.FileMetaData, cover: Ranges | None) -> list[int]:
    """Indices of the row groups of a file (its footer ``meta``) whose ``_healpix_29`` statistics meet ``cover``.

    A row group without statistics is always read; one whose positions are
    all null never is.  ``cover`` None: every row group.
    """
    if cover is None:
        return list(range(meta.num_row_groups))
    lo, hi = cover
    col = meta.schema.to_arrow_schema().get_field_index(C.HEALPIX)
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


def ranges_meeting(file_ranges: Ranges, cover: Ranges) -> np.ndarray:
    """Boolean mask of the ``[lo, hi)`` ranges of ``file_ranges`` that meet a cover's ranges."""
    lo, hi = file_ranges
    k = np.searchsorted(cover[1], lo, side="right")  # the first cover range ending after lo
    inside = k < cover[0].size
    inside[inside] = cover[0][k[inside]] < hi[inside]
    return inside


def chunk_bytes(meta: pq.FileMetaData, groups: Sequence[int], columns: Sequence[str]) -> int:
    """Compressed bytes of the column chunks of ``columns`` in row groups ``groups`` of a file."""
    names = meta.schema.to_arrow_schema().names
    idx = [names.index(c) for c in columns]
    return sum(meta.row_group(g).column(i).total_compressed_size for g in groups for i in idx)


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

    Use :func:`open_catalog` to make one.  ``layout`` is ``"plain"`` (files
    covering the whole sky, with a ``_metadata`` summary when ``summary`` is
    set) or ``"hats"`` (partition files, each holding the order-29 range
    ``file_ranges[0][i]`` to ``file_ranges[1][i]`` of ``_healpix_29``).
    """

    uri: str
    files: list[str]
    schema: pa.Schema
    provenance: dict
    layout: str = "plain"
    file_ranges: Ranges | None = None
    summary: str | None = None
    #: What opening read (the summary or the first footer; HATS: properties not counted).
    opened: ScanStats = field(default_factory=ScanStats)
    last_scan: ScanStats = field(default_factory=ScanStats)
    #: ``_catalog.json``'s ``files_sha256`` ({file name: SHA-256}); None for catalogs written without it
    checksums: dict | None = None
    _footers: dict = field(default_factory=dict, repr=False)
    _con: Any = field(default=None, repr=False)
    _verified: set = field(default_factory=set, repr=False)

    def verify(self, uris: Sequence[str] | None = None) -> None:
        """Check files (all when None) against their SHA-256 in ``_catalog.json``, each once per opened catalog.

        Every read of rows passes here first (:meth:`dataset`, :meth:`scan_region`), so every
        command and the API refuse a damaged file.

        Raises
        ------
        GalaxyRayError
            A file's bytes differ from what ``infer`` wrote (:func:`galaxy_ray.catalog.checksums.verify_file`).
        """
        if not self.checksums:
            return
        todo = [u for u in (self.files if uris is None else uris) if u not in self._verified]
        expected = [self.checksums.get(u.rstrip("/").rsplit("/", 1)[-1]) for u in todo]
        with ThreadPoolExecutor(max_workers=8) as pool:  # hashing releases the GIL; S3 reads overlap
            list(pool.map(verify_file, todo, expected))
        self._verified.update(todo)

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
        """The files as one ``pyarrow.dataset.Dataset`` (from the ``_metadata`` summary when there is one).

        Every file is checked against its recorded SHA-256 first (:meth:`verify`).
        """
        self.verify()
        if self.summary is not None:
            fs, path = storage.pyarrow_filesystem(self.summary)
            return ds.parquet_dataset(path, schema=self.schema, filesystem=fs)
        paths = [storage.pyarrow_filesystem(f)[1] for f in self.files]
        return ds.dataset(paths, schema=self.schema, format="parquet", filesystem=self._filesystem())

    def footer(self, uri: str) -> pq.FileMetaData:
        """The footer of one of the files (from the summary, or read once and kept)."""
        if uri not in self._footers:
            fs, path = storage.pyarrow_filesystem(uri)
            with fs.open_input_file(path) as f:
                self._footers[uri] = pq.ParquetFile(f).metadata
        return self._footers[uri]

    def files_meeting(self, cover: Ranges | None) -> list[str]:
        """The files that may hold rows of ``cover``: HATS partitions whose pixel meets it, else all."""
        if cover is None or self.file_ranges is None:
            return list(self.files)
        keep = ranges_meeting(self.file_ranges, cover)
        return [f for f, k in zip(self.files, keep) if k]

    def scan_region(self, region: Cone | Box, columns: Sequence[str] | None = None,
                    prune: bool = True) -> pa.Table:
        """Rows inside ``region``, read row group by row group; counts in :attr:`last_scan`.

        Parameters
        ----------
        region : Cone or Box
        columns : sequence of str, optional
            Columns to return (all when None).
        prune : bool
            Skip files and row groups that miss the region's HEALPix cover
            (HATS partitions, ``_healpix_29`` statistics).  ``False`` scans
            every row group (the baseline the benchmark compares with); the
            result is the same.
        """
        start = time.perf_counter()
        columns = self.columns if columns is None else list(columns)
        cover = region.cover() if prune else None
        stats = ScanStats(files=len(self.files))
        fs = self._filesystem()
        pieces = []
        for uri in self.files_meeting(cover):
            footer = self._footers.get(uri)
            if footer is not None and not row_groups_meeting(footer, cover):
                stats.row_groups_total += footer.num_row_groups  # known from the summary: never opened
                continue
            self.verify([uri])  # only the files a region opens: a cone search keeps its pruning
            with fs.open_input_file(storage.pyarrow_filesystem(uri)[1]) as handle:
                pf = pq.ParquetFile(handle, metadata=footer)
                stats.files_opened += 1
                if footer is None:
                    stats.bytes_read += pf.metadata.serialized_size + 8  # footer, its length and magic
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
        meta = pf.metadata
        groups = row_groups_meeting(meta, cover)
        stats.row_groups_total += meta.num_row_groups
        stats.row_groups_read += len(groups)
        if not groups:
            return None
        pos = pf.read_row_groups(groups, columns=_POSITION_COLUMNS)
        stats.rows_read += pos.num_rows
        stats.bytes_read += chunk_bytes(meta, groups, _POSITION_COLUMNS)
        mask = region_mask(pos, region, cover)
        if not mask.any():
            return None
        got = pos.filter(pa.array(mask))
        rest = [c for c in columns if c not in _POSITION_COLUMNS]
        if rest:
            # the other columns only of the row groups with rows inside
            bounds = np.cumsum([0, *(meta.row_group(i).num_rows for i in groups)])
            parts = [mask[bounds[k]:bounds[k + 1]] for k in range(len(groups))]
            hit = [k for k, part in enumerate(parts) if part.any()]
            other = pf.read_row_groups([groups[k] for k in hit], columns=rest)
            stats.bytes_read += chunk_bytes(meta, [groups[k] for k in hit], rest)
            other = other.filter(pa.array(np.concatenate([parts[k] for k in hit])))
            for name in rest:
                got = got.append_column(self.schema.field(name), other[name].cast(self.schema.field(name).type))
        return got.select(columns)


def _widen_half(schema: pa.Schema) -> pa.Schema:
    """``schema`` with float16 lists (``infer --embeddings``) read as float32: DuckDB cannot scan Arrow float16."""
    for i, f in enumerate(schema):
        if pa.types.is_fixed_size_list(f.type) and pa.types.is_float16(f.type.value_type):
            schema = schema.set(i, f.with_type(pa.list_(pa.float32(), f.type.list_size)))
    return schema


def _checked(cat: Catalog) -> Catalog:
    """``cat`` after checking it has the contract's columns."""
    cat.schema = _widen_half(cat.schema)
    missing = [c for c in (*LEADING_COLUMNS, *TRAILING_COLUMNS) if c not in cat.schema.names]
    if missing:
        raise GalaxyRayError(f"{cat.uri}: not a galaxy-ray catalog (no column {', '.join(missing)})")
    return cat


def _open_hats(uri: str) -> Catalog:
    """A HATS collection or catalog written by ``galaxy-ray hats``."""
    parts = hats_parts(uri)
    if parts.provenance is None:
        raise GalaxyRayError(f"{uri}: a HATS catalog, but not one galaxy-ray wrote (no '{METADATA_KEY}' "
                             "metadata in _common_metadata); open it with lsdb.open_catalog")
    if not parts.files:
        raise GalaxyRayError(f"{uri}: a HATS catalog without partitions")
    return _checked(Catalog(uri=uri, files=parts.files, schema=parts.schema, provenance=parts.provenance,
                            layout="hats", file_ranges=parts.ranges))


def _plain_schema(cat: Catalog) -> pa.Schema:
    """The schema of a plain catalog: from the summary, else the first file's footer (kept for scans)."""
    if cat.summary is not None:
        return cat._footers[cat.files[0]].schema.to_arrow_schema()
    fs, path = storage.pyarrow_filesystem(cat.files[0])
    try:
        with fs.open_input_file(path) as f:
            meta = pq.ParquetFile(f).metadata
    except (pa.ArrowInvalid, OSError) as exc:
        raise GalaxyRayError(f"{cat.files[0]}: not a readable Parquet file ({exc})") from None
    cat._footers[cat.files[0]] = meta
    cat.opened.files_opened += 1
    cat.opened.bytes_read += meta.serialized_size + 8
    return meta.schema.to_arrow_schema()


def open_catalog(uri: str) -> Catalog:
    """Open a catalog directory, ``s3://`` prefix or single catalog Parquet file, in either layout.

    The plain layout (``part-NNNNN.parquet`` files) uses a ``_metadata``
    summary when one names exactly the files there; a HATS collection or
    catalog (``galaxy-ray hats``) is recognised by its properties file.

    Raises
    ------
    GalaxyRayError
        When ``uri`` does not exist or is not a galaxy-ray catalog.
    """
    uri = str(uri)
    if not storage.exists(uri):
        raise GalaxyRayError(f"{uri}: no such catalog; check the path")
    listing = storage.list_files(uri) if storage.isdir(uri) else None
    if listing is not None and is_hats_listing(listing):
        return _open_hats(uri)
    files = catalog_files(uri, listing)
    if not files:
        raise GalaxyRayError(
            f"{uri}: not a galaxy-ray catalog (no Parquet files); point at the directory that galaxy-ray infer wrote"
        )
    provenance = read_provenance(uri) if listing is not None else file_provenance(uri)
    if provenance is None:
        raise GalaxyRayError(f"{uri}: not a galaxy-ray catalog (no '{METADATA_KEY}' metadata)")
    cat = Catalog(uri=uri, files=files, schema=pa.schema([]), provenance=provenance)
    summary = next((f for f in listing or [] if f.rsplit("/", 1)[-1] == METADATA_NAME), None)
    if listing is not None and provenance.get(CHECKSUMS_KEY):
        cat.checksums = dict(provenance[CHECKSUMS_KEY])
        check_listing(uri, files, cat.checksums, listing)
        if summary is not None:
            verify_file(summary, cat.checksums.get(METADATA_NAME))
    found = summary_footers(summary, files) if summary else None
    if found is not None:
        cat.summary, (cat._footers, size) = summary, found
        cat.opened.bytes_read += size
    cat.schema = _plain_schema(cat).remove_metadata()
    return _checked(cat)


def as_catalog(catalog: Catalog | str) -> Catalog:
    """``catalog`` itself, or the catalog opened at that URI."""
    return catalog if isinstance(catalog, Catalog) else open_catalog(catalog)
