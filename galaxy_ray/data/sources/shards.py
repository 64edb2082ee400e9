"""Packed Parquet shards of the cutout table (what ``galaxy-ray pack`` writes).

Reading streams them with Ray Data's Parquet reader
(:func:`galaxy_ray.data.sources._common.read_parquet`) on the pyarrow filesystem
of :mod:`galaxy_ray.io.storage`.  Repacking (``pack`` of a shards source) needs
the rows in a fixed order: the driver reads only the Parquet footers to count
each file's rows, and workers read their slice back by file and row.

``galaxy-ray pack --image-size N`` stores cutouts already resized for a model;
its footers say so under ``galaxy_ray_pack`` -> ``pixels``
(:func:`stored_pixels`), and the stages that prepare model input check it
against the model's preprocessing (``transforms.check_stored_pixels``).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.data.sources._common import CUTOUT_COLUMNS, CUTOUT_SCHEMA, Source, read_parquet
from galaxy_ray.data.sources.identity import exact_float_ids
from galaxy_ray.data.sources.listing import SourceListing, as_listing

SUFFIX = ".parquet"
_FILE, _ROW = "_file", "_row"
#: Parquet key-value metadata key of a shard's pack provenance (written by ``pack``).
PACK_METADATA_KEY = b"galaxy_ray_pack"
#: Its entry describing model-sized pixels: ``image_size``, ``crop_fraction``, ``stored_size``.
PIXELS_KEY = "pixels"


def pack_provenance(uri: str) -> dict[str, Any]:
    """The pack provenance in a shard's footer (empty when it has none).

    Raises
    ------
    GalaxyRayError
        The file is not readable Parquet.
    """
    fs, path = storage.pyarrow_filesystem(uri)
    try:
        with fs.open_input_file(path) as f:
            meta = pq.ParquetFile(f).schema_arrow.metadata or {}
    except (OSError, pa.ArrowInvalid) as exc:
        raise GalaxyRayError(f"{uri}: not a readable Parquet shard ({exc}); repack the source") from None
    raw = meta.get(PACK_METADATA_KEY)
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def stored_pixels(source: Any) -> dict[str, Any] | None:
    """How a source's cutouts were stored by ``pack --image-size``, or None for original images.

    Parameters
    ----------
    source : Source, str or sequence of str
        An opened source (only packed shards can hold model-sized pixels), or
        shard URIs; the first shard's footer speaks for all (``pack`` writes
        every shard of one packing alike).

    Returns
    -------
    dict or None
        ``{"image_size": N, "crop_fraction": F, "stored_size": round(N / F)}``.
    """
    if isinstance(source, Source):
        if source.format != "shards":
            return None
        files: Sequence[str] = source.files
    else:
        files = [source] if isinstance(source, str) else list(source)
    if not files:
        return None
    pixels = pack_provenance(files[0]).get(PIXELS_KEY)
    return dict(pixels) if pixels else None


def shard_files(listing: SourceListing) -> list[str]:
    """The ``.parquet`` files of a listed shards directory (or the listed file itself)."""
    if not listing.is_dir:
        return [listing.uri]
    files = listing.files_with((SUFFIX,))
    if not files:
        raise GalaxyRayError(f"{listing.uri}: no {SUFFIX} shards in this directory")
    return files


def conform(table: pa.Table) -> pa.Table:
    """Cutout-table columns first with the contract's types (missing ones null), extras after."""
    n = table.num_rows
    columns, fields = [], []
    for field in CUTOUT_SCHEMA:
        col = table[field.name].cast(field.type) if field.name in table.column_names else pa.nulls(n, field.type)
        columns.append(col)
        fields.append(field)
    for name in table.column_names:
        if name not in CUTOUT_COLUMNS:
            columns.append(table[name])
            fields.append(table.schema.field(name))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def check_shard_ids(files: Sequence[str]) -> None:
    """Refuse shards whose ``object_id`` is a float column holding values that cannot be exact ids.

    ``pack`` writes ids as strings; a shard written by other tools may store
    them as float64.  Only then are the id columns read (the first footer says).

    Raises
    ------
    GalaxyRayError
        Float ids above 2**53 or not integers, naming the shard and the fix.
    """
    fs, path = storage.pyarrow_filesystem(files[0])
    try:
        with fs.open_input_file(path) as f:
            field = pq.ParquetFile(f).schema_arrow.field(C.OBJECT_ID)
    except (OSError, pa.ArrowInvalid, KeyError):
        return  # reading reports an unreadable shard
    if not pa.types.is_floating(field.type):
        return
    for uri in files:
        fs, path = storage.pyarrow_filesystem(uri)
        try:
            ids = pq.read_table(path, filesystem=fs, columns=[C.OBJECT_ID])[C.OBJECT_ID].to_pandas()
        except (OSError, pa.ArrowInvalid):
            continue  # a shard that cannot be read is reported where its rows are read
        exact_float_ids(ids, C.OBJECT_ID, uri)


class Shards(Source):
    """A directory of Parquet shards with an ``image`` column."""

    format = "shards"

    def __init__(self, source: SourceListing | str) -> None:
        listing = as_listing(source)
        super().__init__(listing)
        self.files = shard_files(listing)
        columns = listing.table_columns(self.files[0], parquet=True)
        for needed in (C.OBJECT_ID, C.IMAGE):
            if needed not in columns:
                raise GalaxyRayError(f"{self.files[0]}: no '{needed}' column; not a shard of the cutout table")
        check_shard_ids(self.files)

    def dataset(self, rows_per_block: int = 64):
        fs, _ = storage.pyarrow_filesystem(self.files[0])
        paths = [storage.strip_scheme(f) for f in self.files]
        return read_parquet(paths, fs, file_extensions=None).map_batches(
            conform, batch_format="pyarrow", batch_size=None
        )

    def metadata(self) -> pd.DataFrame:
        counts = []
        for f in self.files:
            fs, path = storage.pyarrow_filesystem(f)
            counts.append(pq.ParquetFile(fs.open_input_file(path)).metadata.num_rows)
        return pd.DataFrame({
            _FILE: np.repeat(np.arange(len(self.files)), counts),
            _ROW: np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, int),
        })

    def read_rows(self, meta: pd.DataFrame) -> pa.Table:
        parts = []
        for k, rows in meta.groupby(_FILE, sort=False)[_ROW]:
            fs, path = storage.pyarrow_filesystem(self.files[int(k)])
            parts.append(conform(pq.read_table(path, filesystem=fs)).take(pa.array(rows.to_numpy())))
        return pa.concat_tables(parts, promote_options="permissive")
