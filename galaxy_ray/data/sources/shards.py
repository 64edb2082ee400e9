"""Packed Parquet shards of the cutout table (what ``galaxy-ray pack`` writes).

Reading streams them through Ray Data, one block per shard, on the pyarrow
filesystem of :mod:`galaxy_ray.io.storage` (:func:`read_shards`).  Repacking (``pack`` of a shards source) needs
the rows in a fixed order: the driver reads only the Parquet footers to count
each file's rows, and workers read their slice back by file and row.

A shard whose footer is valid but whose data pages are corrupt (a bad copy, a
truncated upload) is read row group by row group (:func:`read_shard`): the
rows of a row group that cannot be read become rows with a null ``image`` and
an ``error`` naming the shard and its rows, with their ids and positions when
those columns can still be read, so one bad shard never stops a job:
``infer``, ``pack``, ``train`` and ``evaluate`` all read shards this way.

``galaxy-ray pack --image-size N`` stores cutouts already resized for a model;
its footers say so under ``galaxy_ray_pack`` -> ``pixels``
(:func:`stored_pixels`), and the stages that prepare model input check it
against the model's preprocessing (``packed.check_stored_pixels``).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.data.sources._common import CUTOUT_COLUMNS, CUTOUT_SCHEMA, Source
from galaxy_ray.data.sources.identity import exact_float_ids
from galaxy_ray.data.sources.listing import SourceListing, as_listing

SUFFIX = ".parquet"
_FILE, _ROW = "_file", "_row"
#: Parquet key-value metadata key of a shard's pack provenance (written by ``pack``).
PACK_METADATA_KEY = b"galaxy_ray_pack"
#: Its entry describing model-sized pixels: ``image_size``, ``crop_fraction``, ``stored_size``, ``version``.
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
        ``{"image_size": N, "crop_fraction": F, "stored_size": round(N / F), "version": V}`` (no ``version``: 1).
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


#: What pyarrow raises on corrupt data pages (``OSError: Unexpected end of stream``, bad thrift, codec errors).
_READ_ERRORS = (OSError, pa.ArrowException, ValueError, EOFError)
#: Columns a row group's unreadable rows are not salvaged from (the large ones; the rows become errors anyway).
_PAYLOAD = (C.IMAGE, C.VOTES)


def unreadable_id(uri: str, row: int) -> str:
    """The ``object_id`` of a shard row whose id column cannot be read either (never a survey id)."""
    return f"unreadable:{uri.rstrip('/').rsplit('/', 1)[-1]}:{row}"


def _salvage(pf: pq.ParquetFile, group: int, names: Sequence[str]) -> dict[str, pa.ChunkedArray]:
    """The columns of a bad row group that can still be read, one by one (the payload is not tried)."""
    kept = {}
    for name in names:
        if name in _PAYLOAD:
            continue
        try:
            kept[name] = pf.read_row_group(group, columns=[name])[name]
        except _READ_ERRORS:
            continue
    return kept


def _unreadable_rows(pf: pq.ParquetFile, group: int, names: Sequence[str], uri: str, first: int,
                     exc: BaseException) -> pa.Table:
    """Rows of row group ``group`` with a null payload and an ``error`` naming the shard and the rows."""
    n = pf.metadata.row_group(group).num_rows
    schema = pf.schema_arrow
    kept = _salvage(pf, group, names)
    message = (f"{uri}: unreadable Parquet data (rows {first}-{first + n - 1}, row group {group}: "
               f"{one_line(exc)[:200]}); repack this shard from its source")
    columns = {name: kept.get(name, pa.nulls(n, schema.field(name).type)) for name in names}
    if C.OBJECT_ID not in kept:
        columns[C.OBJECT_ID] = pa.array([unreadable_id(uri, first + i) for i in range(n)], type=pa.string())
    if C.SOURCE in columns and C.SOURCE not in kept:
        columns[C.SOURCE] = pa.array([uri] * n, type=schema.field(C.SOURCE).type)
    columns[C.ERROR] = pa.array([message] * n, type=pa.string())
    return pa.table(columns)


def read_shard(uri: str, columns: Sequence[str] | None = None) -> pa.Table:
    """A shard's rows, row group by row group; a row group that cannot be read becomes error rows.

    Parameters
    ----------
    uri : str
        The shard, local or ``s3://``.
    columns : sequence of str, optional
        Columns to read (those the shard has); all when None.

    Returns
    -------
    pyarrow.Table
        The columns asked for and an ``error`` column (string): the shard's own,
        or null, except on the rows of an unreadable row group, whose ``image``
        is null and whose ``error`` names the shard, the rows and the way out.
        Their ``object_id`` is :func:`unreadable_id` when the ids cannot be read.

    Raises
    ------
    GalaxyRayError
        The shard's footer cannot be read (the driver checks every footer first).
    """
    fs, path = storage.pyarrow_filesystem(uri)
    try:
        f = fs.open_input_file(path)
        pf = pq.ParquetFile(f)
    except _READ_ERRORS as exc:
        raise GalaxyRayError(f"{uri}: not a readable Parquet shard ({one_line(exc)}); repack the source") from None
    with f:
        have = pf.schema_arrow.names
        names = [c for c in (have if columns is None else columns) if c in have and c != C.ERROR]
        if C.ERROR in have:
            names.append(C.ERROR)
        parts, first = [], 0
        for group in range(pf.num_row_groups):
            try:
                part = pf.read_row_group(group, columns=names)
                if C.ERROR not in part.column_names:
                    part = part.append_column(C.ERROR, pa.nulls(part.num_rows, pa.string()))
            except _READ_ERRORS as exc:
                part = _unreadable_rows(pf, group, names, uri, first, exc)
            parts.append(part.select([*[c for c in names if c != C.ERROR], C.ERROR]))
            first += pf.metadata.row_group(group).num_rows
    if not parts:
        empty = pf.schema_arrow.empty_table().select([c for c in names if c != C.ERROR])
        return empty.append_column(C.ERROR, pa.nulls(0, pa.string()))
    return pa.concat_tables(parts, promote_options="permissive")


def read_shards(shards: Sequence[str], columns: Sequence[str] | None = None, *, tag_path: bool = True,
                conformed: bool = False, **read_args):
    """The rows of packed shards as a Ray Dataset, one block per shard, a bad row group as error rows.

    Parameters
    ----------
    shards : sequence of str
        Shard URIs (local or ``s3://``, all on one filesystem).
    columns : sequence of str, optional
        Columns to read; an ``error`` column is always added.
    tag_path : bool
        Add ``path``: the shard's path without its scheme, as ``include_paths`` gives it (``infer``
        keys its progress by it).
    conformed : bool
        Give the cutout table's columns and types first (:func:`conform`), as :meth:`Shards.dataset` does.
    **read_args
        For ``ray.data.read_datasource`` (``num_cpus``, ``concurrency``, ``compute``...).

    Returns
    -------
    ray.data.Dataset
    """
    import ray.data

    return ray.data.read_datasource(_datasource(list(shards), columns, tag_path, conformed),
                                    override_num_blocks=len(shards), **read_args)


def _read_task_fn(uri: str, columns: Sequence[str] | None, tag_path: bool, conformed: bool):
    def read():
        table = read_shard(uri, columns)
        if conformed:
            table = conform(table)
        if tag_path:
            table = table.append_column("path", pa.array([storage.strip_scheme(uri)] * table.num_rows, pa.string()))
        yield table
    return read


def _datasource(shards: list[str], columns: Sequence[str] | None, tag_path: bool = True, conformed: bool = False):
    """A ``ray.data.Datasource`` over ``shards`` (defined here so that importing this module needs no Ray)."""
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class _Shards(Datasource):
        def get_name(self) -> str:
            return "Parquet"  # Ray Data's stats name the fused read+decode stage ReadParquet->..., as before

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context=None) -> list:
            return [ReadTask(_read_task_fn(uri, columns, tag_path, conformed),
                             BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=(uri,)),
                             per_task_row_limit=per_task_row_limit)
                    for uri in shards]

    return _Shards()


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
        """The cutout table, one block per shard, read row group by row group (:func:`read_shards`).

        Training and evaluation read shards this way, as ``infer`` and ``pack``
        do: the rows of a row group whose data pages are corrupt become rows
        with a null ``image`` and an ``error`` naming the shard and its rows
        (training leaves them out and says how many; evaluation counts them
        as errors), instead of one unreadable page stopping the whole job.
        """
        return read_shards(self.files, tag_path=False, conformed=True)

    def metadata(self) -> pd.DataFrame:
        counts = []
        for f in self.files:
            fs, path = storage.pyarrow_filesystem(f)
            try:
                with fs.open_input_file(path) as handle:
                    counts.append(pq.ParquetFile(handle).metadata.num_rows)
            except _READ_ERRORS as exc:
                raise GalaxyRayError(f"{f}: not a readable Parquet shard ({one_line(exc)}); repack it from its "
                                     "source or move it out of the folder") from None
        return pd.DataFrame({
            _FILE: np.repeat(np.arange(len(self.files)), counts),
            _ROW: np.concatenate([np.arange(c) for c in counts]) if counts else np.zeros(0, int),
        })

    def read_rows(self, meta: pd.DataFrame) -> pa.Table:
        parts = []
        for k, rows in meta.groupby(_FILE, sort=False)[_ROW]:
            parts.append(conform(read_shard(self.files[int(k)])).take(pa.array(rows.to_numpy())))
        return pa.concat_tables(parts, promote_options="permissive")
