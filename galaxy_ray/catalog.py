"""Morphology catalogs: writing, provenance, opening and querying.

A catalog is a directory (or ``s3://`` prefix) of Parquet files, each sorted
by ``_healpix_29`` (the HEALPix order-29 NESTED index of the galaxy's ICRS
position, the HATS convention), with the provenance JSON stored in each file's
key-value metadata under ``galaxy_ray`` and in ``_catalog.json`` beside the
files (see ``docs/contracts.md``, "The catalog").

Spatial queries (cones and RA/Dec boxes) first find the HEALPix cells that
cover the region at a coarse order, turn them into ranges of ``_healpix_29``
and read only the Parquet row groups whose min/max statistics meet those
ranges; the rows of those groups are then kept by exact angular separation
(astropy).  Filters, column selection, sorting and limits run on DuckDB.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import GZ2_ANSWER_COLUMNS, GZ2_KAGGLE_COLUMNS, CatalogColumns as C

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
]

#: Parquet key-value metadata key holding the provenance JSON.
METADATA_KEY = "galaxy_ray"
#: Name of the provenance file beside the Parquet files.
SUMMARY_NAME = "_catalog.json"
#: Local (z < 1) galaxy merger fraction the seed study compared with (Lotz et al. 2011).
LOCAL_MERGER_FRACTION = 0.05
#: Columns every catalog has (in contract order), around the output columns.
_LEADING = (C.OBJECT_ID, C.RA, C.DEC, C.HEALPIX)
_TRAILING = (C.MORPHOLOGY, C.P_MERGER, C.IS_MERGER, C.ERROR)
_TRAILING_TYPES = (pa.string(), pa.float32(), pa.bool_(), pa.string())


# --------------------------------------------------------------------------- writing


def _as_float_degrees(values: Any) -> np.ndarray:
    """float64 numpy array with NaN where the input is null."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64).ravel()  # None -> NaN


def healpix29(ra: Any, dec: Any) -> pa.Array:
    """HEALPix order-29 NESTED index of ICRS positions.

    Parameters
    ----------
    ra, dec : array_like or pyarrow.Array
        Right ascension and declination in degrees; ``None``/NaN allowed.

    Returns
    -------
    pyarrow.Array of int64
        The cell index from ``cdshealpix.nested.lonlat_to_healpix``; null where
        RA or Dec is null, NaN, infinite, or Dec lies outside [-90, 90] degrees.
    """
    import astropy.units as u
    from astropy.coordinates import Latitude, Longitude
    from cdshealpix import nested

    ra_deg, dec_deg = _as_float_degrees(ra), _as_float_degrees(dec)
    if ra_deg.shape != dec_deg.shape:
        raise ValueError(f"ra and dec differ in length ({ra_deg.size} vs {dec_deg.size})")
    ok = np.isfinite(ra_deg) & np.isfinite(dec_deg) & (np.abs(dec_deg) <= 90.0)
    out = np.zeros(ra_deg.size, dtype=np.int64)
    if ok.any():
        ipix = nested.lonlat_to_healpix(
            Longitude(ra_deg[ok], unit=u.deg), Latitude(dec_deg[ok], unit=u.deg), C.HEALPIX_ORDER
        )
        out[ok] = ipix.astype(np.int64)  # < 12 * 4**29 < 2**63: fits in int64
    return pa.array(out, type=pa.int64(), mask=~ok)


def catalog_schema(output_columns: Sequence[str]) -> pa.Schema:
    """Arrow schema of a catalog, columns in contract order.

    Parameters
    ----------
    output_columns : sequence of str
        The model's output columns (``schema.GZ2_ANSWER_COLUMNS`` or
        ``schema.class_column(name)`` for each class), float32.
    """
    fields = [
        pa.field(C.OBJECT_ID, pa.string()),
        pa.field(C.RA, pa.float64()),
        pa.field(C.DEC, pa.float64()),
        pa.field(C.HEALPIX, pa.int64()),
    ]
    fields += [pa.field(name, pa.float32()) for name in output_columns]
    fields += [pa.field(n, t) for n, t in zip(_TRAILING, _TRAILING_TYPES)]
    return pa.schema(fields)


def _conform(table: pa.Table, output_columns: Sequence[str] | None) -> pa.Table:
    """Cast ``table`` to the contract's column order and types (extra columns kept last)."""
    names = table.column_names
    if output_columns is None:
        fixed = set(_LEADING) | set(_TRAILING)
        output_columns = [n for n in names if n not in fixed]
        extras: list[str] = []
    else:
        output_columns = list(output_columns)
        known = set(_LEADING) | set(_TRAILING) | set(output_columns)
        extras = [n for n in names if n not in known]
    target = catalog_schema(output_columns)
    missing = [f.name for f in target if f.name not in names and f.name != C.HEALPIX]
    if missing:
        raise GalaxyRayError(f"catalog table lacks column(s) {', '.join(missing)}; see docs/contracts.md")
    if C.HEALPIX not in names:
        table = table.append_column(C.HEALPIX, healpix29(table[C.RA], table[C.DEC]))
    columns, fields = [], []
    for f in target:
        col = table[f.name]
        if not col.type.equals(f.type):
            try:
                col = pc.cast(col, f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise GalaxyRayError(f"catalog column {f.name!r}: cannot store {col.type} as {f.type} ({exc})") from None
        columns.append(col)
        fields.append(f)
    for name in extras:
        columns.append(table[name])
        fields.append(table.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def write_catalog_file(
    table: pa.Table, uri: str, provenance: dict, row_group_size: int = 100_000
) -> None:
    """Write one catalog file: sorted by ``_healpix_29``, provenance in its metadata.

    Parameters
    ----------
    table : pyarrow.Table
        Catalog rows.  ``_healpix_29`` is computed from ``ra``/``dec`` when
        absent; columns are cast to the contract's types and order (columns
        beyond the contract's are kept after ``error``).
    uri : str
        Destination file, local path or ``s3://``; published atomically.
    provenance : dict
        JSON-serialisable provenance; its ``output_columns`` (when present)
        fixes the output columns, otherwise every non-contract column is one.
    row_group_size : int
        Maximum rows per Parquet row group (the unit that spatial queries skip).
    """
    table = _conform(table, provenance.get("output_columns"))
    if table.num_rows:
        # nulls (no position) go last so that the row-group min/max stay tight
        order = pc.sort_indices(table, sort_keys=[(C.HEALPIX, "ascending", "at_end")])
        table = table.take(order)
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY.encode()] = json.dumps(provenance, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=max(1, int(row_group_size)), compression="zstd")
    storage.write_bytes_atomic(uri, buf.getvalue())


def write_catalog_summary(catalog_dir: str, provenance: dict) -> None:
    """Write ``_catalog.json`` (the provenance) beside the catalog's files, atomically."""
    data = json.dumps(provenance, indent=2, sort_keys=True, default=str).encode() + b"\n"
    storage.write_bytes_atomic(storage.join(catalog_dir, SUMMARY_NAME), data)


def _file_provenance(uri: str) -> dict | None:
    fs, path = storage.pyarrow_filesystem(uri)
    with fs.open_input_file(path) as f:
        meta = pq.read_schema(f).metadata or {}
    raw = meta.get(METADATA_KEY.encode())
    return None if raw is None else json.loads(raw)


def _catalog_files(uri: str) -> list[str]:
    if not storage.isdir(uri):
        return [uri] if storage.exists(uri) and str(uri).endswith(".parquet") else []
    return [f for f in storage.list_files(uri, suffixes=(".parquet",)) if not f.rsplit("/", 1)[-1].startswith(("_", "."))]


def read_provenance(catalog_dir: str) -> dict:
    """Provenance of a catalog: ``_catalog.json``, else the first file's Parquet metadata.

    ``catalog_dir`` may also be one catalog file: its own metadata is returned.

    Raises
    ------
    GalaxyRayError
        When ``catalog_dir`` holds neither.
    """
    summary = storage.join(catalog_dir, SUMMARY_NAME)
    if storage.isdir(catalog_dir) and storage.exists(summary):
        try:
            return json.loads(storage.read_bytes(summary))
        except json.JSONDecodeError as exc:
            raise GalaxyRayError(f"{summary}: not valid JSON ({exc}); rewrite it or delete it") from None
    for f in _catalog_files(catalog_dir):
        prov = _file_provenance(f)
        if prov is not None:
            return prov
    raise GalaxyRayError(
        f"{catalog_dir}: not a galaxy-ray catalog (no {SUMMARY_NAME} and no Parquet files with "
        f"'{METADATA_KEY}' metadata); point at the directory that galaxy-ray infer wrote"
    )


# --------------------------------------------------------------------------- regions

#: Side of a HEALPix cell at order 0, in degrees (sqrt(4 pi / 12) rad).
_ORDER0_SIDE_DEG = math.degrees(math.sqrt(4 * math.pi / 12))
#: Widening of every region before the HEALPix cover, in degrees, so that
#: floating-point rounding at a cell edge can never drop a row (the exact
#: cut afterwards removes the extra rows).
_COVER_MARGIN_DEG = 1e-6


#: About how many tiles (each covered by one cone) a box is cut into (see Box.cover).
_BOX_TILES = 64


def _cover_depth(size_deg: float, max_depth: int = 12) -> int:
    """Coarse HEALPix order whose cells are about half ``size_deg`` across."""
    if size_deg <= 0:
        return max_depth
    return int(min(max_depth, max(0, math.ceil(math.log2(2 * _ORDER0_SIDE_DEG / size_deg)))))


def _cells_to_ranges(ipix: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merged half-open ranges ``[lo, hi)`` of order-29 indices covered by (ipix, depth) cells."""
    ipix = np.asarray(ipix, dtype=np.int64)
    shift = 2 * (C.HEALPIX_ORDER - np.asarray(depth, dtype=np.int64))
    return _merge_ranges(ipix << shift, (ipix + 1) << shift)


def _merge_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of half-open ranges ``[lo, hi)``, sorted and disjoint."""
    order = np.argsort(lo, kind="stable")
    lo, hi = np.asarray(lo)[order], np.asarray(hi)[order]
    if lo.size == 0:
        return lo, hi
    run_end = np.maximum.accumulate(hi)
    starts = np.concatenate([[True], lo[1:] > run_end[:-1]])
    idx = np.flatnonzero(starts)
    ends = np.concatenate([idx[1:] - 1, [lo.size - 1]])
    return lo[idx], run_end[ends]


def _tile_cone(ra0: float, ra1: float, dec0: float, dec1: float) -> "Cone":
    """The cone centred on an RA/Dec tile (RA width <= 90 degrees) through its farthest corner."""
    from astropy.coordinates import angular_separation

    ra_c, dec_c = math.radians((ra0 + ra1) / 2), math.radians((dec0 + dec1) / 2)
    corners_ra = np.radians([ra0, ra1, ra0, ra1])
    corners_dec = np.radians([dec0, dec0, dec1, dec1])
    radius = float(np.degrees(angular_separation(corners_ra, corners_dec, ra_c, dec_c)).max())
    return Cone(math.degrees(ra_c) % 360.0, math.degrees(dec_c), max(radius, 1e-6))


def _in_ranges(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Boolean mask: values inside one of the sorted, disjoint ``[lo, hi)`` ranges."""
    k = np.searchsorted(lo, values, side="right") - 1
    inside = k >= 0
    inside[inside] = values[inside] < hi[k[inside]]
    return inside


@dataclass(frozen=True)
class Cone:
    """All positions within ``radius`` degrees of (``ra``, ``dec``) degrees (ICRS)."""

    ra: float
    dec: float
    radius: float

    def __post_init__(self) -> None:
        for name in ("ra", "dec", "radius"):
            if not math.isfinite(getattr(self, name)):
                raise GalaxyRayError(f"cone {name} {getattr(self, name)!r}: not a finite number of degrees")
        if not -90.0 <= self.dec <= 90.0:
            raise GalaxyRayError(f"cone Dec {self.dec:g}: outside [-90, 90] degrees")
        if self.radius <= 0:
            raise GalaxyRayError(f"cone radius {self.radius:g}: must be > 0 degrees")
        if self.radius > 180:
            raise GalaxyRayError(f"cone radius {self.radius:g}: must be <= 180 degrees")

    def cover(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Ranges of ``_healpix_29`` that hold every point of the cone (None: the whole sky)."""
        import astropy.units as u
        from astropy.coordinates import Latitude, Longitude
        from cdshealpix import nested

        radius = self.radius + _COVER_MARGIN_DEG
        if radius >= 90:
            return None  # half the sky or more: pruning cannot pay
        ipix, depth, _ = nested.cone_search(
            Longitude(self.ra, unit=u.deg), Latitude(self.dec, unit=u.deg), radius * u.deg,
            depth=_cover_depth(self.radius),
        )
        return _cells_to_ranges(ipix, depth)

    def contains(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Exact test by angular separation (astropy's Vincenty formula); NaN is outside."""
        from astropy.coordinates import angular_separation

        sep = angular_separation(np.radians(ra), np.radians(dec), math.radians(self.ra), math.radians(self.dec))
        with np.errstate(invalid="ignore"):
            return np.degrees(sep) <= self.radius


@dataclass(frozen=True)
class Box:
    """Positions with ``ra_min <= RA <= ra_max`` and ``dec_min <= Dec <= dec_max`` (degrees).

    ``ra_min > ra_max`` (after wrapping to [0, 360)) is a box across RA = 0/360,
    e.g. ``Box(350, 10, -5, 5)``; a span of 360 degrees or more is every RA.
    """

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float

    def __post_init__(self) -> None:
        for name in ("ra_min", "ra_max", "dec_min", "dec_max"):
            if not math.isfinite(getattr(self, name)):
                raise GalaxyRayError(f"box {name} {getattr(self, name)!r}: not a finite number of degrees")
        for name in ("dec_min", "dec_max"):
            if not -90.0 <= getattr(self, name) <= 90.0:
                raise GalaxyRayError(f"box {name} {getattr(self, name):g}: outside [-90, 90] degrees")
        if self.dec_min > self.dec_max:
            raise GalaxyRayError(f"box Dec range {self.dec_min:g} > {self.dec_max:g}: give DEC_MIN first")

    @property
    def full_ra(self) -> bool:
        return self.ra_max - self.ra_min >= 360.0

    def _ra_bounds(self) -> tuple[float, float]:
        return self.ra_min % 360.0, self.ra_max % 360.0

    def cover(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Ranges of ``_healpix_29`` that hold every point of the box (None: the whole sky).

        The box is cut into about :data:`_BOX_TILES` tiles of similar angular size, and
        each tile is covered by the cdshealpix cone through its corners.  (cdshealpix's
        own ``zone_search`` was not used: in cdshealpix 0.9 it misses cells of zones
        near the poles, e.g. RA 0-10, Dec 86-90 loses most rows above Dec 86.7.)
        """
        lo, hi = self._ra_bounds()
        width = 360.0 if self.full_ra else (hi - lo) % 360.0
        if width >= 360.0 and self.dec_min <= -90.0 and self.dec_max >= 90.0:
            return None
        d0, d1 = math.radians(self.dec_min), math.radians(self.dec_max)
        area = math.degrees(math.radians(width)) * math.degrees(math.sin(d1) - math.sin(d0))  # deg^2
        side = max(math.sqrt(max(area, 0.0) / _BOX_TILES), 1e-4)
        n_dec = max(1, math.ceil((self.dec_max - self.dec_min) / side))
        bands = np.linspace(self.dec_min, self.dec_max, n_dec + 1)
        starts, ends = [], []
        for b0, b1 in zip(bands[:-1], bands[1:]):
            widest = 1.0 if b0 <= 0.0 <= b1 else max(math.cos(math.radians(b0)), math.cos(math.radians(b1)))
            # tiles at most 90 degrees wide, so that their farthest points are corners
            n_ra = max(1, math.ceil(width * widest / side), math.ceil(width / 90.0))
            step = width / n_ra
            for k in range(n_ra):
                ra0 = lo + k * step
                cone = _tile_cone(ra0, ra0 + step, float(b0), float(b1))
                ranges = cone.cover()
                if ranges is None:
                    return None
                starts.append(ranges[0])
                ends.append(ranges[1])
        return _merge_ranges(np.concatenate(starts), np.concatenate(ends))

    def contains(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Exact test on RA/Dec ranges, inclusive, across RA = 0/360 when needed; NaN is outside."""
        with np.errstate(invalid="ignore"):
            in_dec = (dec >= self.dec_min) & (dec <= self.dec_max)
            if self.full_ra:
                return in_dec & np.isfinite(ra)
            lo, hi = self._ra_bounds()
            ra = np.mod(ra, 360.0)
            in_ra = (ra >= lo) & (ra <= hi) if lo <= hi else (ra >= lo) | (ra <= hi)
        return in_dec & in_ra



# --------------------------------------------------------------------------- opening and scanning


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
        return dict(self.__dict__)


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

    def connection(self):
        """This catalog's DuckDB connection (no file access; queries see what is registered)."""
        if self._con is None:
            self._con = _locked_connection()
        return self._con

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def output_columns(self) -> list[str]:
        cols = self.provenance.get("output_columns")
        if cols:
            return list(cols)
        fixed = set(_LEADING) | set(_TRAILING)
        return [f.name for f in self.schema if f.name not in fixed and pa.types.is_floating(f.type)]

    def _filesystem(self):
        return storage.pyarrow_filesystem(self.files[0])[0]

    def dataset(self):
        """The files as one ``pyarrow.dataset.Dataset``."""
        import pyarrow.dataset as ds

        fs = self._filesystem()
        return ds.dataset([storage.pyarrow_filesystem(f)[1] for f in self.files], schema=self.schema,
                          format="parquet", filesystem=fs)

    def scan_region(self, region: Cone | Box, columns: Sequence[str] | None = None,
                    prune: bool = True) -> pa.Table:
        """Rows inside ``region``, read row group by row group.

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
        pos_cols = [C.RA, C.DEC, C.HEALPIX]
        rest = [c for c in columns if c not in pos_cols]
        stats = ScanStats(files=len(self.files))
        pieces: list[pa.Table] = []
        fs = self._filesystem()
        for uri in self.files:
            with fs.open_input_file(storage.pyarrow_filesystem(uri)[1]) as handle:
                pf = pq.ParquetFile(handle, metadata=self._footers.get(uri))
                self._footers[uri] = pf.metadata  # parsed once per opened catalog
                groups = self._row_groups(pf, cover)
                stats.row_groups_total += pf.metadata.num_row_groups
                stats.row_groups_read += len(groups)
                if not groups:
                    continue
                # positions first; the other columns only of row groups with rows inside
                pos = pf.read_row_groups(groups, columns=pos_cols)
                stats.rows_read += pos.num_rows
                mask = self._mask(pos, region, cover)
                if not mask.any():
                    continue
                got = pos.filter(pa.array(mask))
                if rest:
                    sizes = [pf.metadata.row_group(i).num_rows for i in groups]
                    bounds = np.cumsum([0, *sizes])
                    hit = [k for k in range(len(groups)) if mask[bounds[k]:bounds[k + 1]].any()]
                    sub_mask = np.concatenate([mask[bounds[k]:bounds[k + 1]] for k in hit])
                    other = pf.read_row_groups([groups[k] for k in hit], columns=rest).filter(pa.array(sub_mask))
                    for name in rest:
                        got = got.append_column(self.schema.field(name), other[name])
                pieces.append(got.select(columns))
        out = pa.concat_tables(pieces) if pieces else self.schema.empty_table().select(columns)
        stats.rows_matched = out.num_rows
        stats.seconds = time.perf_counter() - start
        self.last_scan = stats
        return out

    @staticmethod
    def _row_groups(pf: pq.ParquetFile, cover: tuple[np.ndarray, np.ndarray] | None) -> list[int]:
        meta = pf.metadata
        if cover is None:
            return list(range(meta.num_row_groups))
        lo, hi = cover
        col = pf.schema_arrow.get_field_index(C.HEALPIX)
        chosen = []
        for i in range(meta.num_row_groups):
            st = meta.row_group(i).column(col).statistics
            if st is None or not st.has_min_max:
                if st is not None and st.null_count == meta.row_group(i).num_rows:
                    continue  # no positions at all: never inside a region
                chosen.append(i)  # no statistics: must read it
                continue
            # the first range ending after the group's min must start at or before its max
            k = int(np.searchsorted(hi, st.min, side="right"))
            if k < lo.size and lo[k] <= st.max:
                chosen.append(i)
        return chosen

    @staticmethod
    def _mask(pos: pa.Table, region: Cone | Box, cover) -> np.ndarray:
        ra = pos[C.RA].to_numpy()
        dec = pos[C.DEC].to_numpy()
        if cover is None:
            return region.contains(ra, dec)
        hp = pos[C.HEALPIX]
        valid = ~np.asarray(hp.is_null())
        hpv = pc.fill_null(hp, 0).to_numpy()
        # cheap integer test first; the exact test only for the candidates
        cand = valid & _in_ranges(hpv, *cover)
        mask = np.zeros(len(ra), dtype=bool)
        if cand.any():
            mask[cand] = region.contains(ra[cand], dec[cand])
        return mask


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
    files = _catalog_files(uri)
    if not files:
        raise GalaxyRayError(
            f"{uri}: not a galaxy-ray catalog (no Parquet files); point at the directory that galaxy-ray infer wrote"
        )
    provenance = read_provenance(uri) if storage.isdir(uri) else (_file_provenance(uri) or None)
    if provenance is None:
        raise GalaxyRayError(f"{uri}: not a galaxy-ray catalog (no '{METADATA_KEY}' metadata)")
    fs, path = storage.pyarrow_filesystem(files[0])
    try:
        with fs.open_input_file(path) as f:
            schema = pq.read_schema(f)
    except (pa.ArrowInvalid, OSError) as exc:
        raise GalaxyRayError(f"{files[0]}: not a readable Parquet file ({exc})") from None
    missing = [c for c in (*_LEADING, *_TRAILING) if c not in schema.names]
    if missing:
        raise GalaxyRayError(f"{uri}: not a galaxy-ray catalog (no column {', '.join(missing)})")
    return Catalog(uri=uri, files=files, schema=schema.remove_metadata(), provenance=provenance)


def _as_catalog(catalog: Catalog | str) -> Catalog:
    return catalog if isinstance(catalog, Catalog) else open_catalog(catalog)


# --------------------------------------------------------------------------- SQL: filters, columns, sort

#: Named SQL functions a --where filter may call (operators such as + or LIKE are always allowed).
_WHERE_FUNCTIONS = frozenset("""
abs sign round floor ceil ceiling trunc sqrt cbrt exp ln log log10 log2 pow power pi
sin cos tan asin acos atan atan2 radians degrees isnan isinf isfinite greatest least
coalesce ifnull nullif lower upper lcase ucase length strlen trim ltrim rtrim substr substring
starts_with ends_with prefix suffix contains strpos instr position replace concat
regexp_matches regexp_full_match like_escape ilike_escape not_like_escape
""".split())
#: Expression node classes a --where filter may contain.
_WHERE_CLASSES = frozenset({"COLUMN_REF", "CONSTANT", "COMPARISON", "CONJUNCTION", "OPERATOR",
                            "FUNCTION", "BETWEEN", "CASE", "CAST"})
#: Statement parts that must be empty/absent for a pure filter.
_EMPTY_PARTS = ("modifiers", "group_expressions", "group_sets")
_NULL_PARTS = ("having", "sample", "qualify")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _where_sql(where: str) -> str:
    # the expression sits on its own lines so that a trailing -- comment cannot swallow the ")"
    return f"SELECT * FROM catalog WHERE (\n{where}\n)"


def validate_where(where: str, columns: Sequence[str]) -> set[str]:
    """Check that ``where`` is one SQL filter expression over the catalog's columns.

    Returns
    -------
    set of str
        The catalog columns it refers to.

    Raises
    ------
    GalaxyRayError
        For anything but a single expression: several statements, subqueries,
        table functions (``read_parquet``, ...), unknown columns or functions.
    """
    import duckdb

    text = where.strip()
    if not text:
        raise GalaxyRayError("--where is empty; give a filter such as \"p_merger > 0.8\"")
    con = duckdb.connect()
    raw = con.execute("SELECT json_serialize_sql(?)", [_where_sql(text)]).fetchall()[0][0]
    tree = json.loads(raw)
    if tree.get("error"):
        msg = str(tree.get("error_message", "syntax error")).splitlines()[0]
        raise GalaxyRayError(f"--where {where!r}: not a valid SQL expression ({msg})")
    stmts = tree.get("statements", [])
    node = stmts[0].get("node", {}) if len(stmts) == 1 else {}
    pure = (
        node.get("type") == "SELECT_NODE"
        and node.get("from_table", {}).get("type") == "BASE_TABLE"
        and node.get("from_table", {}).get("table_name") == "catalog"
        and not node.get("cte_map", {}).get("map")
        and [e.get("class") for e in node.get("select_list", [])] == ["STAR"]
        and all(not node.get(k) for k in _EMPTY_PARTS)
        and all(node.get(k) is None for k in _NULL_PARTS)
        and node.get("where_clause") is not None
    )
    if not pure:
        raise GalaxyRayError(f"--where {where!r}: must be a single filter expression on the catalog's columns")
    lower = {c.lower(): c for c in columns}
    used: set[str] = set()

    def walk(obj: Any) -> None:
        if isinstance(obj, list):
            for item in obj:
                walk(item)
            return
        if not isinstance(obj, dict):
            return
        cls = obj.get("class")
        if cls is not None and "type" in obj:
            if cls not in _WHERE_CLASSES:
                what = "subqueries" if cls == "SUBQUERY" else f"{cls.lower()} expressions"
                raise GalaxyRayError(f"--where {where!r}: {what} are not allowed; filter on catalog columns only")
            if cls == "COLUMN_REF":
                names = obj.get("column_names", [])
                if len(names) == 2 and names[0] == "catalog":
                    names = names[1:]
                if len(names) != 1 or names[0].lower() not in lower:
                    raise GalaxyRayError(
                        f"--where {where!r}: unknown column {'.'.join(names)!r}; columns are: {', '.join(columns)}"
                    )
                used.add(lower[names[0].lower()])
            if cls == "FUNCTION":
                name = str(obj.get("function_name", "")).lower()
                operator = obj.get("is_operator") and not name.replace("_", "").isalnum()
                if not operator and name not in _WHERE_FUNCTIONS:
                    raise GalaxyRayError(f"--where {where!r}: function {name}() is not allowed in a filter")
                if obj.get("schema") or obj.get("catalog"):
                    raise GalaxyRayError(f"--where {where!r}: qualified function names are not allowed")
        for value in obj.values():
            walk(value)

    walk(node["where_clause"])
    return used


def _check_columns(names: Iterable[str], columns: Sequence[str], option: str) -> list[str]:
    lower = {c.lower(): c for c in columns}
    out = []
    for name in names:
        key = name.strip().lower()
        if key not in lower:
            raise GalaxyRayError(f"{option} {name.strip()!r}: unknown column; columns are: {', '.join(columns)}")
        out.append(lower[key])
    return out


def _split_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _parse_sort(sort: str | Sequence[str] | None, columns: Sequence[str]) -> list[tuple[str, bool]]:
    """``"p_merger desc, ra"`` or ``"-p_merger"`` -> [(column, descending)]."""
    keys = []
    for item in _split_list(sort):
        words = item.split()
        desc = False
        if words[0].startswith("-"):
            words[0], desc = words[0][1:], True
        if len(words) == 2 and words[1].lower() in ("asc", "desc"):
            desc = words[1].lower() == "desc"
            words = words[:1]
        if len(words) != 1:
            raise GalaxyRayError(f"--sort {item!r}: give COLUMN, COLUMN DESC or -COLUMN")
        keys.append((_check_columns(words, columns, "--sort")[0], desc))
    return keys


def _locked_connection():
    """A DuckDB connection that cannot read or write files (a filter only sees what we register)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _source_connection(cat: Catalog, region: Cone | Box | None, needed: Sequence[str], prune: bool = True):
    """DuckDB connection with ``catalog`` = the rows of ``region`` (or every row), ``needed`` columns."""
    con = cat.connection()
    if region is not None:
        con.register("catalog", cat.scan_region(region, needed, prune=prune))
    else:
        con.register("catalog", cat.dataset())
        cat.last_scan = ScanStats(files=len(cat.files))
    return con


def _region(cone: Sequence[float] | Cone | None, box: Sequence[float] | Box | None) -> Cone | Box | None:
    if cone is not None and box is not None:
        raise GalaxyRayError("give --cone or --box, not both")
    if isinstance(cone, (Cone, Box)):
        return cone
    if isinstance(box, Box):
        return box
    if cone is not None:
        return Cone(*map(float, cone))
    if box is not None:
        return Box(*map(float, box))
    return None


def _run_sql(con, sql: str, where: str | None) -> pa.Table:
    import duckdb

    try:
        return con.sql(sql).to_arrow_table()
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise GalaxyRayError(f"--where {where!r}: {first}" if where else f"query failed: {first}") from None


def query(
    catalog: Catalog | str,
    cone: Sequence[float] | Cone | None = None,
    box: Sequence[float] | Box | None = None,
    where: str | None = None,
    columns: str | Sequence[str] | None = None,
    sort: str | Sequence[str] | None = None,
    limit: int | None = None,
    output: str = "pandas",
    prune: bool = True,
):
    """Query a catalog.

    Parameters
    ----------
    catalog : Catalog or str
        An opened catalog or its URI.
    cone : (ra, dec, radius) in degrees, or Cone, optional
    box : (ra_min, ra_max, dec_min, dec_max) in degrees, or Box, optional
        ``ra_min > ra_max`` crosses RA = 0/360.
    where : str, optional
        SQL filter expression on catalog columns, e.g. ``"p_merger > 0.8 AND morphology = 'spiral'"``.
    columns : str or sequence of str, optional
        Columns to return (comma-separated or a list); all when None.
    sort : str or sequence of str, optional
        ``"p_merger desc"``, ``"-p_merger"``, several separated by commas.
    limit : int, optional
        Keep at most this many rows (after sorting).
    output : {"pandas", "astropy", "arrow"}
    prune : bool
        Use the HEALPix row-group pruning (False: scan every row group).

    Returns
    -------
    pandas.DataFrame, astropy.table.Table or pyarrow.Table
    """
    cat = _as_catalog(catalog)
    region = _region(cone, box)
    names = cat.columns
    selected = _check_columns(_split_list(columns), names, "--columns") or names
    where_cols = validate_where(where, names) if where else set()
    keys = _parse_sort(sort, names)
    if limit is not None and int(limit) < 0:
        raise GalaxyRayError(f"--limit {limit}: must be >= 0")
    needed_set = set(selected) | where_cols | {k for k, _ in keys}
    needed = [c for c in names if c in needed_set]
    con = _source_connection(cat, region, needed, prune=prune)
    sql = f"SELECT {', '.join(map(_quote, selected))} FROM catalog"
    if where:
        sql += f" WHERE (\n{where.strip()}\n)"
    if keys:
        sql += " ORDER BY " + ", ".join(f"{_quote(k)} {'DESC' if d else 'ASC'} NULLS LAST" for k, d in keys)
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    table = _run_sql(con, sql, where)
    return _convert(table, output)


def cone_search(catalog: Catalog | str, ra: float, dec: float, radius: float, **kwargs):
    """Rows within ``radius`` degrees of (``ra``, ``dec``); see :func:`query` for the options."""
    return query(catalog, cone=Cone(ra, dec, radius), **kwargs)


def box_search(catalog: Catalog | str, ra_min: float, ra_max: float, dec_min: float, dec_max: float, **kwargs):
    """Rows inside an RA/Dec box (``ra_min > ra_max`` crosses RA = 0/360); see :func:`query`."""
    return query(catalog, box=Box(ra_min, ra_max, dec_min, dec_max), **kwargs)


# --------------------------------------------------------------------------- conversion and output


def to_astropy(table: pa.Table):
    """An astropy ``Table`` (masked where null) from an Arrow table."""
    from astropy.table import MaskedColumn, Table

    out = Table()
    for name in table.column_names:
        col = table[name]
        mask = np.asarray(col.is_null())
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            values = np.array([v if v is not None else "" for v in col.to_pylist()], dtype=str)
        elif pa.types.is_boolean(col.type):
            values = pc.fill_null(col, False).to_numpy()
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            values = pc.fill_null(col, 0).to_numpy()
        else:
            values = np.array(col.to_pylist(), dtype=object)
        out[name] = MaskedColumn(values, mask=mask) if mask.any() else values
    return out


def _convert(table: pa.Table, output: str):
    if output == "arrow":
        return table
    if output == "pandas":
        return table.to_pandas()
    if output == "astropy":
        return to_astropy(table)
    raise GalaxyRayError(f"output {output!r}: one of pandas, astropy, arrow")


#: --out file suffix -> format
_OUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".fits": "fits", ".fit": "fits",
                ".fits.gz": "fits", ".vot": "votable", ".votable": "votable", ".xml": "votable"}


def _out_format(uri: str) -> str:
    low = str(uri).lower()
    for suffix in sorted(_OUT_FORMATS, key=len, reverse=True):
        if low.endswith(suffix):
            return _OUT_FORMATS[suffix]
    raise GalaxyRayError(f"--out {uri}: unknown format; end the name with .csv, .parquet, .fits or .vot")


def write_table(table: pa.Table, uri: str) -> str:
    """Write query results to ``uri`` (local or ``s3://``), format from the suffix.

    CSV and Parquet via pyarrow; FITS and VOTable via astropy (nulls masked;
    FITS stores masked strings as empty and masked floats as NaN).

    Returns
    -------
    str
        The format written.
    """
    import pyarrow.csv as pacsv

    fmt = _out_format(uri)
    buf = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(table, buf)
    elif fmt == "parquet":
        pq.write_table(table, buf)
    else:
        import warnings

        from astropy.io.fits.verify import VerifyWarning

        with warnings.catch_warnings():
            # FITS column names longer than 8 characters are fine in binary tables (TTYPE)
            warnings.simplefilter("ignore", VerifyWarning)
            to_astropy(table).write(buf, format=fmt)
        if str(uri).lower().endswith(".gz"):
            import gzip

            buf = io.BytesIO(gzip.compress(buf.getvalue()))
    storage.write_bytes_atomic(str(uri), buf.getvalue())
    return fmt


def write_kaggle_submission(table: pa.Table, uri: str) -> int:
    """Write a GZ2 catalog's rows in the Kaggle Galaxy Challenge submission layout.

    ``GalaxyID`` (the ``object_id``) and ``Class1.1`` ... ``Class11.6`` in
    challenge order.  Rows without predictions (``error`` set) are left out.

    Returns
    -------
    int
        Rows written.
    """
    import pyarrow.csv as pacsv

    missing = [c for c in GZ2_ANSWER_COLUMNS if c not in table.column_names]
    if missing:
        raise GalaxyRayError(
            f"--kaggle-submission: not a GZ2 catalog (no column {missing[0]}); it needs the 37 GZ2 answer columns"
        )
    if C.ERROR in table.column_names:
        table = table.filter(pc.is_null(table[C.ERROR]))
    cols = [table[C.OBJECT_ID]] + [pc.cast(table[a], pa.float64()) for a in GZ2_ANSWER_COLUMNS]
    out = pa.Table.from_arrays(cols, names=["GalaxyID", *GZ2_KAGGLE_COLUMNS])
    buf = io.BytesIO()
    pacsv.write_csv(out, buf, pacsv.WriteOptions(quoting_style="none"))
    storage.write_bytes_atomic(str(uri), buf.getvalue())
    return out.num_rows


# --------------------------------------------------------------------------- merger statistics


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial fraction ``k / n``.

    ``astropy.stats.binom_conf_interval(k, n, confidence, interval="wilson")``;
    astropy needs scipy only for the normal quantile, so where scipy is not
    installed the same formula runs with the standard library's quantile.
    Returns ``(nan, nan)`` when ``n`` is 0.
    """
    if n <= 0:
        return (math.nan, math.nan)
    try:
        from astropy.stats import binom_conf_interval

        lo, hi = binom_conf_interval(int(k), int(n), confidence_level=confidence, interval="wilson")
        return float(lo), float(hi)
    except ImportError:  # astropy imports scipy.special.erfinv lazily
        pass
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = k / n
    mid = (k + z**2 / 2.0) / (n + z**2)
    half = z * math.sqrt(n) / (n + z**2) * math.sqrt(p * (1.0 - p) + z**2 / (4.0 * n))
    return max(0.0, mid - half), min(1.0, mid + half)


def _bin_edges(con, rel: str, column: str, bins: str | int | None) -> list[float]:
    if bins is not None and not isinstance(bins, int) and "," in str(bins):
        try:
            edges = sorted(float(b) for b in str(bins).split(","))
        except ValueError:
            raise GalaxyRayError(f"--bins {bins!r}: give a number of bins or comma-separated edges") from None
        if len(edges) < 2:
            raise GalaxyRayError(f"--bins {bins!r}: give at least two edges")
        return edges
    try:
        count = 10 if bins is None else int(bins)
    except ValueError:
        raise GalaxyRayError(f"--bins {bins!r}: give a number of bins or comma-separated edges") from None
    if count < 1:
        raise GalaxyRayError(f"--bins {bins}: must be >= 1")
    lo, hi = con.execute(f"SELECT min({_quote(column)}), max({_quote(column)}) FROM {rel}").fetchall()[0]
    if lo is None:
        return [0.0, 1.0]
    lo, hi = float(lo), float(hi)
    if hi <= lo:
        hi = lo + 1.0
    return [float(e) for e in np.linspace(lo, hi, count + 1)]


def _group_key(con, rel: str, cat: Catalog, by: str, bins: str | int | None) -> tuple[str, list[str] | None]:
    """SQL expression of the group of each row, and bin labels when binned."""
    ftype = cat.schema.field(by).type
    numeric = pa.types.is_integer(ftype) or pa.types.is_floating(ftype)
    if bins is None and not pa.types.is_floating(ftype):
        return _quote(by), None
    if not numeric:
        raise GalaxyRayError(f"--bins: column {by!r} is {ftype}, not numeric; drop --bins to group by value")
    edges = _bin_edges(con, rel, by, bins)
    col = _quote(by)
    cases, labels = [], []
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        cases.append(f"WHEN {col} >= {a!r} AND {col} {'<=' if last else '<'} {b!r} THEN {i}")
        labels.append(f"[{a:.4g}, {b:.4g}{']' if last else ')'}")
    return "CASE " + " ".join(cases) + " END", labels


def _merger_row(rows: int, errors: int, ok: int, mergers: int) -> dict:
    lo, hi = wilson_interval(mergers, ok)
    return {
        "rows": int(rows), "error_rows": int(errors), "classified_rows": int(ok), "mergers": int(mergers),
        "merger_fraction": (mergers / ok) if ok else None,
        "merger_fraction_95": None if not ok else [lo, hi],
    }


_COUNTS = ('count(*), count("error"), count(*) FILTER (WHERE "error" IS NULL), '
           'count(*) FILTER (WHERE "error" IS NULL AND "is_merger")')


def merger_stats(
    catalog: Catalog | str,
    cone: Sequence[float] | Cone | None = None,
    box: Sequence[float] | Box | None = None,
    where: str | None = None,
    by: str | None = None,
    bins: str | int | None = None,
) -> dict:
    """Row counts, morphology mix and merger fraction (95% Wilson interval).

    Parameters
    ----------
    catalog, cone, box, where
        As for :func:`query`.
    by : str, optional
        Group by this column: by value, or in bins for floating-point columns
        (10 equal-width bins unless ``bins`` says otherwise).
    bins : int or str, optional
        Number of equal-width bins, or comma-separated bin edges.

    Returns
    -------
    dict
        ``rows``, ``error_rows``, ``classified_rows``, ``mergers``,
        ``merger_fraction`` (of classified rows) and ``merger_fraction_95``
        ``[low, high]``, ``morphology`` counts, the reference local merger
        fraction, and ``groups`` (one such dict per group) when ``by`` is given.
    """
    cat = _as_catalog(catalog)
    region = _region(cone, box)
    names = cat.columns
    where_cols = validate_where(where, names) if where else set()
    by_col = _check_columns([by], names, "--by")[0] if by else None
    needed_set = {C.MORPHOLOGY, C.IS_MERGER, C.ERROR} | where_cols | ({by_col} if by_col else set())
    needed = [c for c in names if c in needed_set]
    con = _source_connection(cat, region, needed)
    filt = f" WHERE (\n{where.strip()}\n)" if where else ""
    if where:
        # materialise the filtered rows once; every statistic below reads them
        _run_sql(con, "SELECT 1 FROM catalog" + filt + " LIMIT 0", where)
    rel = f"(SELECT * FROM catalog{filt})"
    rows, errors, ok, mergers = con.execute(f"SELECT {_COUNTS} FROM {rel}").fetchall()[0]
    result: dict[str, Any] = {
        "catalog": cat.uri,
        "region": None if region is None else {type(region).__name__.lower(): list(region.__dict__.values())},
        "where": where,
        **_merger_row(rows, errors, ok, mergers),
        "reference_merger_fraction": LOCAL_MERGER_FRACTION,
        "reference": "Lotz et al. 2011",
    }
    morph = con.execute(
        f'SELECT "morphology", count(*) AS n FROM {rel} WHERE "error" IS NULL GROUP BY 1 ORDER BY n DESC, 1'
    ).fetchall()
    result["morphology"] = {str(m): int(n) for m, n in morph}
    if by_col:
        key, labels = _group_key(con, rel, cat, by_col, bins)
        groups = con.execute(
            f"SELECT {key} AS grp, {_COUNTS} FROM {rel} GROUP BY grp ORDER BY grp NULLS LAST"
        ).fetchall()
        result["by"] = by_col
        result["groups"] = []
        for grp, *counts in groups:
            label = (labels[grp] if grp is not None else "(outside bins)") if labels else grp
            result["groups"].append({"group": label if isinstance(label, (str, int, float, bool)) or label is None
                                     else str(label), **_merger_row(*counts)})
    return result


def format_stats(stats: dict) -> str:
    """Human-readable text of :func:`merger_stats`'s result."""

    def frac(d: dict) -> str:
        if d["merger_fraction"] is None:
            return "n/a (no classified rows)"
        lo, hi = d["merger_fraction_95"]
        return f"{d['merger_fraction']:.4f} (95% Wilson interval {lo:.4f} - {hi:.4f})"

    lines = [f"catalog:          {stats['catalog']}"]
    if stats["region"]:
        lines.append(f"region:           {stats['region']}")
    if stats["where"]:
        lines.append(f"where:            {stats['where']}")
    lines += [
        f"rows:             {stats['rows']}",
        f"error rows:       {stats['error_rows']}",
        f"mergers:          {stats['mergers']} of {stats['classified_rows']} classified",
        f"merger fraction:  {frac(stats)}",
        f"local merger fraction ({stats['reference']}): {stats['reference_merger_fraction']:.2f}",
        "morphology:",
    ]
    total = max(1, stats["classified_rows"])
    lines += [f"  {m:<24} {n:>10}  {n / total:7.2%}" for m, n in stats["morphology"].items()]
    if "groups" in stats:
        lines.append(f"by {stats['by']}:")
        lines.append(f"  {'group':<24} {'rows':>10} {'errors':>8} {'mergers':>8}  merger fraction")
        for g in stats["groups"]:
            lines.append(f"  {str(g['group']):<24} {g['rows']:>10} {g['error_rows']:>8} {g['mergers']:>8}  {frac(g)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def _add_region_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("catalog", help="catalog directory, s3:// prefix or catalog Parquet file")
    p.add_argument("--cone", nargs=3, type=float, metavar=("RA", "DEC", "RADIUS"),
                   help="rows within RADIUS degrees of (RA, DEC) degrees")
    p.add_argument("--box", nargs=4, type=float, metavar=("RA_MIN", "RA_MAX", "DEC_MIN", "DEC_MAX"),
                   help="rows in an RA/Dec box, degrees; RA_MIN > RA_MAX crosses RA = 0/360")
    p.add_argument("--where", help="SQL filter on catalog columns, e.g. \"p_merger > 0.8 AND morphology = 'spiral'\"")


def query_main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray query``: cone/box searches, filters, output to the terminal or a file."""
    p = argparse.ArgumentParser(prog="galaxy-ray query", description=query_main.__doc__)
    _add_region_args(p)
    p.add_argument("--columns", help="comma-separated columns to return (default: all)")
    p.add_argument("--sort", help="COLUMN, COLUMN DESC or -COLUMN; several separated by commas")
    p.add_argument("--limit", type=int, help="at most this many rows")
    p.add_argument("--out", help="write the rows to a .csv, .parquet, .fits or .vot file (local or s3://)")
    p.add_argument("--kaggle-submission", metavar="FILE",
                   help="GZ2 catalog: write GalaxyID, Class1.1 ... Class11.6 in the challenge's layout")
    p.add_argument("--max-print", type=int, default=20, help="rows shown on the terminal (default 20)")
    p.add_argument("-v", "--verbose", action="store_true", help="print what the scan read")
    args = p.parse_args(argv)
    cat = open_catalog(args.catalog)
    columns = args.columns
    if args.kaggle_submission:
        if args.columns:
            raise GalaxyRayError("--kaggle-submission writes a fixed set of columns; drop --columns")
        missing = [c for c in GZ2_ANSWER_COLUMNS if c not in cat.columns]
        if missing:
            raise GalaxyRayError(f"{args.catalog}: --kaggle-submission needs a GZ2 catalog (no column {missing[0]})")
        columns = [C.OBJECT_ID, *GZ2_ANSWER_COLUMNS, C.ERROR]
    start = time.perf_counter()
    table = query(cat, cone=args.cone, box=args.box, where=args.where, columns=columns, sort=args.sort,
                  limit=args.limit, output="arrow")
    seconds = time.perf_counter() - start
    if args.verbose:
        s = cat.last_scan
        print(f"{table.num_rows} rows in {seconds:.3f} s; read {s.row_groups_read} of {s.row_groups_total} "
              f"row groups in {s.files} files", file=sys.stderr)
    if args.kaggle_submission:
        n = write_kaggle_submission(table, args.kaggle_submission)
        print(f"wrote {n} rows to {args.kaggle_submission} (Kaggle submission layout)")
    if args.out:
        fmt = write_table(table, args.out)
        print(f"wrote {table.num_rows} rows to {args.out} ({fmt})")
    if not (args.out or args.kaggle_submission):
        import pandas as pd

        df = table.slice(0, max(0, args.max_print)).to_pandas()
        with pd.option_context("display.max_columns", None, "display.width", 200):
            print(df.to_string(index=False) if len(df) else "(no rows)")
        more = f"; first {len(df)} shown, use --out to save all" if table.num_rows > len(df) else ""
        print(f"{table.num_rows} rows{more}")
    return 0


def stats_main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray stats``: rows, error rows, morphology mix, merger fraction with a Wilson interval."""
    p = argparse.ArgumentParser(prog="galaxy-ray stats", description=stats_main.__doc__)
    _add_region_args(p)
    p.add_argument("--by", help="group by this column (floating-point columns in bins)")
    p.add_argument("--bins", help="with --by: number of equal-width bins or comma-separated edges")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = p.parse_args(argv)
    if args.bins is not None and not args.by:
        raise GalaxyRayError("--bins needs --by COLUMN")
    stats = merger_stats(args.catalog, cone=args.cone, box=args.box, where=args.where, by=args.by, bins=args.bins)
    print(json.dumps(stats, default=str) if args.json else format_stats(stats))
    return 0
