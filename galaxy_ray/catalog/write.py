"""Writing catalog files and reading their provenance.

Each file is sorted by ``_healpix_29`` so that the row groups' min/max
statistics bound small patches of sky (what spatial queries prune on), and
carries the provenance JSON in its Parquet key-value metadata; the same JSON
is ``_catalog.json`` beside the files.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any, Sequence

import astropy.units as u
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from astropy.coordinates import Latitude, Longitude
from cdshealpix import nested

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.io.layout import CATALOG_SUMMARY, PART_SUFFIX
from galaxy_ray.schema import CatalogColumns as C

__all__ = [
    "METADATA_KEY",
    "SUMMARY_NAME",
    "LEADING_COLUMNS",
    "TRAILING_COLUMNS",
    "healpix29",
    "catalog_schema",
    "astropy_string_lengths",
    "write_catalog_file",
    "write_catalog_summary",
    "file_provenance",
    "catalog_files",
    "read_provenance",
]

#: Parquet key-value metadata key holding the provenance JSON.
METADATA_KEY = "galaxy_ray"
#: Name of the provenance file beside the Parquet files.
SUMMARY_NAME = CATALOG_SUMMARY
#: Columns every catalog has (in contract order), before and after the output columns.
LEADING_COLUMNS = (C.OBJECT_ID, C.RA, C.DEC, C.HEALPIX)
TRAILING_COLUMNS = (C.MORPHOLOGY, C.P_MERGER, C.IS_MERGER, C.ERROR)
_TRAILING_TYPES = (pa.string(), pa.float32(), pa.bool_(), pa.string())


def _as_float_degrees(values: Any) -> np.ndarray:
    """float64 numpy array with NaN where the input is null."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float64).ravel()  # None -> NaN


def healpix29(ra: Any, dec: Any) -> pa.Array:
    """HEALPix order-29 NESTED index of ICRS positions.

    Parameters
    ----------
    ra, dec : array_like or pyarrow.Array, shape (N,)
        Right ascension and declination in degrees; ``None``/NaN allowed.

    Returns
    -------
    pyarrow.Array of int64, shape (N,)
        The cell index from ``cdshealpix.nested.lonlat_to_healpix``; null where
        RA or Dec is null, NaN, infinite, or Dec lies outside [-90, 90] degrees.

    Raises
    ------
    ValueError
        ``ra`` and ``dec`` differ in length.
    """
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


def catalog_schema(output_columns: Sequence[str], tree_columns: Sequence[str] = ()) -> pa.Schema:
    """Arrow schema of a catalog, columns in contract order.

    Parameters
    ----------
    output_columns : sequence of str
        The model's output columns (``schema.GZ2_ANSWER_COLUMNS`` or
        ``schema.class_column(name)`` for each class), float32.
    tree_columns : sequence of str
        Columns derived from the outputs that follow them, float32: for GZ2 the
        conditional ``{question}_{answer}_fraction`` and ``{question}_proportion_asked``
        columns as Galaxy Zoo publishes them
        (:func:`galaxy_ray.trees.columns.tree_column_names`; Walmsley et al. 2023,
        MNRAS 526, 4768).  Catalogs written before them have none.
    """
    fields = [
        pa.field(C.OBJECT_ID, pa.string()),
        pa.field(C.RA, pa.float64()),
        pa.field(C.DEC, pa.float64()),
        pa.field(C.HEALPIX, pa.int64()),
    ]
    fields += [pa.field(name, pa.float32()) for name in [*output_columns, *tree_columns]]
    fields += [pa.field(n, t) for n, t in zip(TRAILING_COLUMNS, _TRAILING_TYPES)]
    return pa.schema(fields)


def _layout_columns(provenance: dict) -> list[str] | None:
    """The float32 columns between ``_healpix_29`` and ``morphology`` the provenance fixes, or None.

    ``output_columns`` then ``tree_columns`` (the conditional fractions and proportions asked).
    """
    outputs = provenance.get("output_columns")
    if outputs is None:
        return None
    return [*outputs, *(provenance.get("tree_columns") or ())]


def _split_columns(names: Sequence[str], output_columns: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(output columns, extra columns kept after ``error``) of a table with columns ``names``."""
    fixed = set(LEADING_COLUMNS) | set(TRAILING_COLUMNS)
    if output_columns is None:
        return [n for n in names if n not in fixed], []
    known = fixed | set(output_columns)
    return list(output_columns), [n for n in names if n not in known]


def _conform(table: pa.Table, output_columns: Sequence[str] | None) -> pa.Table:
    """Cast ``table`` to the contract's column order and types (extra columns kept last)."""
    names = table.column_names
    output_columns, extras = _split_columns(names, output_columns)
    target = catalog_schema(output_columns)
    missing = [f.name for f in target if f.name not in names and f.name != C.HEALPIX]
    if missing:
        raise GalaxyRayError(f"catalog table lacks column(s) {', '.join(missing)}; see docs/contracts.md")
    if C.HEALPIX not in names:
        table = table.append_column(C.HEALPIX, healpix29(table[C.RA], table[C.DEC]))
    columns = []
    for f in target:
        col = table[f.name]
        if not col.type.equals(f.type):
            try:
                col = pc.cast(col, f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise GalaxyRayError(f"catalog column {f.name!r}: cannot store {col.type} as {f.type} ({exc})") from None
        columns.append(col)
    columns += [table[name] for name in extras]
    fields = list(target) + [table.schema.field(name) for name in extras]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


#: astropy's Parquet reader shows a null string as the text "None": its columns are at least this wide.
_ASTROPY_NULL_TEXT = len("None")


def astropy_string_lengths(table: pa.Table) -> dict[bytes, bytes]:
    """astropy's ``table::len::<column>`` Parquet metadata: the widest value of each string column.

    ``astropy.table.Table.read`` gives a string column the width stored under
    this key; without it, it measures every value, and stops at the first null
    (``TypeError: object of type 'NoneType' has no len()``): the ``error`` of a
    galaxy without one, the ``morphology`` of an error row.  astropy's reader
    has no nulls, so a null string reads as the text "None" (floats as NaN); the
    width is never below that text's, so that it reads whole.
    """
    out = {}
    for field in table.schema:
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            longest = pc.max(pc.utf8_length(table[field.name])).as_py() if table.num_rows else None
            width = max(int(longest or 0), _ASTROPY_NULL_TEXT)
            out[f"table::len::{field.name}".encode()] = str(width).encode()
    return out


def write_catalog_file(
    table: pa.Table, uri: str, provenance: dict, row_group_size: int = 100_000
) -> str:
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
        fixes the output columns, followed by its ``tree_columns`` (GZ2's
        ``_fraction`` and ``_proportion_asked`` columns), otherwise every
        non-contract column is an output column.
    row_group_size : int
        Maximum rows per Parquet row group (the unit that spatial queries skip).

    Returns
    -------
    str
        SHA-256 (hex) of the bytes written, for ``_catalog.json``'s ``files_sha256``.

    Raises
    ------
    GalaxyRayError
        ``table`` lacks a contract column, or one cannot be cast to its type.
    """
    table = _conform(table, _layout_columns(provenance))
    if table.num_rows:
        # nulls (no position) go last so that the row-group min/max stay tight
        order = pc.sort_indices(table, sort_keys=[(C.HEALPIX, "ascending", "at_end")])
        table = table.take(order)
    meta = dict(table.schema.metadata or {})
    meta[METADATA_KEY.encode()] = json.dumps(provenance, sort_keys=True, default=str).encode()
    meta.update(astropy_string_lengths(table))
    table = table.replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=max(1, int(row_group_size)), compression="zstd")
    data = buf.getvalue()
    storage.write_bytes_atomic(uri, data)
    return hashlib.sha256(data).hexdigest()  # of the bytes in memory: no second read


def write_catalog_summary(catalog_dir: str, provenance: dict) -> None:
    """Write ``_catalog.json`` (the provenance) beside the catalog's files, atomically."""
    data = json.dumps(provenance, indent=2, sort_keys=True, default=str).encode() + b"\n"
    storage.write_bytes_atomic(storage.join(catalog_dir, SUMMARY_NAME), data)


def file_provenance(uri: str) -> dict | None:
    """The provenance in one catalog file's Parquet metadata, or None when it has none."""
    fs, path = storage.pyarrow_filesystem(uri)
    with fs.open_input_file(path) as f:
        meta = pq.read_schema(f).metadata or {}
    raw = meta.get(METADATA_KEY.encode())
    return None if raw is None else json.loads(raw)


def catalog_files(uri: str, listing: list[str] | None = None) -> list[str]:
    """The Parquet files of a catalog directory (not ``_``/``.`` names), or ``[uri]`` for one file.

    ``listing``: the directory's files when already listed (saves a request on S3).
    """
    if listing is None and not storage.isdir(uri):
        return [uri] if storage.exists(uri) and str(uri).endswith(PART_SUFFIX) else []
    files = storage.list_files(uri) if listing is None else listing
    files = [f for f in files if f.lower().endswith(PART_SUFFIX)]
    return [f for f in files if not f.rsplit("/", 1)[-1].startswith(("_", "."))]


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
    for f in catalog_files(catalog_dir):
        prov = file_provenance(f)
        if prov is not None:
            return prov
    raise GalaxyRayError(
        f"{catalog_dir}: not a galaxy-ray catalog (no {SUMMARY_NAME} and no Parquet files with "
        f"'{METADATA_KEY}' metadata); point at the directory that galaxy-ray infer wrote"
    )
