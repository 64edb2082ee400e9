"""Pieces shared by the source readers: the cutout-table schema and the reader base class.

Every format is a :class:`Source`.  A source knows, on the driver, the ordered
list of its cutouts as a small *metadata* table (ids, coordinates, labels,
file locations: never pixels), and turns any slice of that table into rows of
the cutout table inside a worker (:meth:`Source.read_rows`).  ``read_source``
streams the slices through Ray Data; ``pack`` cuts the same ordered metadata
into shards of a fixed size, which is what makes shard boundaries
deterministic.
"""

from __future__ import annotations

import math
import posixpath
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from galaxy_ray.io import storage
from galaxy_ray.raycompat import read_parquet  # noqa: F401  (the sources' reader, re-exported by the package)
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import GZ2_KAGGLE_COLUMNS, CatalogColumns as C
from galaxy_ray.data.sources.listing import SourceListing
from galaxy_ray.data.sources.presence import Presence, count_present, require_present

#: Columns every source produces, in this order; extra columns follow.
CUTOUT_COLUMNS: tuple[str, ...] = (C.OBJECT_ID, C.RA, C.DEC, C.IMAGE, C.SOURCE, C.VOTES, C.LABEL)

#: Arrow types of :data:`CUTOUT_COLUMNS` (docs/contracts.md, "The cutout table").
CUTOUT_SCHEMA = pa.schema(
    [
        pa.field(C.OBJECT_ID, pa.string()),
        pa.field(C.RA, pa.float64()),
        pa.field(C.DEC, pa.float64()),
        pa.field(C.IMAGE, pa.binary()),
        pa.field(C.SOURCE, pa.string()),
        pa.field(C.VOTES, pa.list_(pa.float32())),
        pa.field(C.LABEL, pa.string()),
    ]
)

#: Names galaxy-ray gives a meaning of its own, in the cutout table (a reader's per-row ``error``, the encoded
#: ``image``, the ``source`` named in messages, the ``votes``/``vote_counts`` targets) or in a catalog it
#: writes.  A table column of one of these names (a download log's ``error``, a catalog re-used as a
#: manifest) is carried as ``input_<name>`` (:func:`carried_names`), never taken for galaxy-ray's own.
OWN_COLUMNS = frozenset({C.IMAGE, C.SOURCE, C.VOTES, C.VOTE_COUNTS, C.ERROR, C.MORPHOLOGY, C.P_MERGER, C.IS_MERGER,
                         C.COVERAGE, C.P_MERGER_STD, C.MORPHOLOGY_PROB_STD, C.HEALPIX})
#: Prefix of the carried name of a column in :data:`OWN_COLUMNS` (or a ``prob_*`` class probability).
CARRIED_PREFIX = "input_"

#: Metadata column holding the URI of a cutout's file (file-per-object formats).
PATH = "_path"
#: Rows of metadata per Ray Data block when reading (images are 10-200 KB each).
ROWS_PER_BLOCK = 64


def cutout_table(
    object_id: Sequence[str],
    image: Sequence[bytes | None],
    source: Sequence[str],
    ra: Sequence[float] | np.ndarray | None = None,
    dec: Sequence[float] | np.ndarray | None = None,
    votes: np.ndarray | None = None,
    label: Sequence[str | None] | None = None,
    extras: pa.Table | None = None,
    extras_schema: pa.Schema | None = None,
) -> pa.Table:
    """Assemble one block of the cutout table with the contract's types.

    Parameters
    ----------
    votes : numpy.ndarray, shape (N, 37), optional
        Cumulative GZ2 fractions; a row of NaN becomes a null list.
    extras : pyarrow.Table, optional
        Columns carried through; cast to ``extras_schema`` so that every block
        of one source has the same schema.
    """
    n = len(object_id)
    ra_arr = pa.array(_floats(ra, n), type=pa.float64(), from_pandas=True)
    dec_arr = pa.array(_floats(dec, n), type=pa.float64(), from_pandas=True)
    columns = [
        pa.array([str(x) for x in object_id], type=pa.string()),
        ra_arr,
        dec_arr,
        pa.array(list(image), type=pa.binary()),
        pa.array([str(s) for s in source], type=pa.string()),
        _votes_array(votes, n),
        pa.array(_labels(label, n), type=pa.string()),
    ]
    table = pa.Table.from_arrays(columns, schema=CUTOUT_SCHEMA)
    if extras is not None and extras.num_columns:
        if extras_schema is not None:
            extras = extras.select(extras_schema.names).cast(extras_schema)
        for name, col in zip(extras.column_names, extras.columns):
            table = table.append_column(name, col)
    return table


def _floats(values: Any, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _labels(values: Any, n: int) -> list[str | None]:
    if values is None:
        return [None] * n
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA else str(v)
            for v in values]


def _votes_array(votes: np.ndarray | None, n: int) -> pa.Array:
    typ = pa.list_(pa.float32())
    if votes is None:
        return pa.nulls(n, type=typ)
    votes = np.asarray(votes, dtype=np.float32).reshape(n, len(GZ2_KAGGLE_COLUMNS))
    missing = np.isnan(votes).all(axis=1)
    offsets = pa.array(np.arange(0, (n + 1) * votes.shape[1], votes.shape[1], dtype=np.int32))
    values = pa.array(np.nan_to_num(votes, nan=0.0).ravel(), type=pa.float32())
    return pa.ListArray.from_arrays(offsets, values, type=typ, mask=pa.array(missing))


def read_many(uris: Sequence[str | None]) -> list[bytes | None]:
    """Bytes of many files, ``None`` for those missing or unreadable.

    One ``fsspec`` ``cat`` call per filesystem, so S3 reads overlap.
    """
    out: list[bytes | None] = [None] * len(uris)
    groups: dict[bool, list[tuple[int, str]]] = {}
    for i, uri in enumerate(uris):
        if isinstance(uri, str) and uri:
            groups.setdefault(storage.is_remote(uri), []).append((i, uri))
    for items in groups.values():
        fs, _ = storage.fsspec_filesystem(items[0][1])
        paths = [storage.strip_scheme(u) for _, u in items]
        got = fs.cat(sorted(set(paths)), on_error="return")
        for (i, _), p in zip(items, paths):
            value = got.get(p)
            out[i] = value if isinstance(value, (bytes, bytearray)) else None
    return out


def resolve(path: str, base: str) -> str:
    """A cutout path from a table: absolute, ``s3://``, or relative to ``base``."""
    path = str(path)
    if storage.is_remote(path) or "://" in path:
        return path
    if storage.is_remote(base) and not path.startswith("/"):
        return "s3://" + posixpath.normpath(posixpath.join(storage.strip_scheme(base), path))
    if path.startswith("/"):
        return path
    return storage.join(base, path)


def votes_from(meta: pd.DataFrame) -> np.ndarray | None:
    """The (N, 37) votes held in the metadata's Kaggle columns, or None."""
    if GZ2_KAGGLE_COLUMNS[0] not in meta.columns:
        return None
    return meta[list(GZ2_KAGGLE_COLUMNS)].to_numpy(dtype=np.float64, na_value=np.nan)


def require_kaggle_columns(columns: Sequence[str], where: str) -> bool:
    """True when all 37 ``ClassQ.k`` columns are there, False when none is; else an error."""
    present = [c for c in GZ2_KAGGLE_COLUMNS if c in columns]
    if not present:
        return False
    missing = [c for c in GZ2_KAGGLE_COLUMNS if c not in columns]
    if missing:
        raise GalaxyRayError(
            f"{where}: has {len(present)} of the 37 GZ2 vote columns but not {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}; give all of Class1.1 ... Class11.6 or none"
        )
    return True


def carried_names(columns: Sequence[str], where: str) -> dict[str, str]:
    """Each table column's name in the cutout table: its own, or ``input_<name>`` for galaxy-ray's own names.

    Renaming rather than refusing: the column is the user's data (a download log, an earlier
    model's ``p_merger`` to compare with the new one) and the table may not be theirs to edit; the
    caller says in one line which columns were renamed (:func:`renamed_line`).

    Raises
    ------
    GalaxyRayError
        The table also has the ``input_`` name already (one line naming both and what to do).
    """
    have = set(columns)
    out = {}
    for c in columns:
        if c in OWN_COLUMNS or str(c).startswith("prob_"):
            carried = CARRIED_PREFIX + c
            if carried in have:
                raise GalaxyRayError(f"{where}: has a column {c!r}, a name galaxy-ray writes itself, and also "
                                     f"{carried!r}, the name it would carry {c!r} under; rename one of them")
            out[c] = carried
        else:
            out[c] = c
    return out


def renamed_line(names: dict[str, str], where: str) -> str | None:
    """One line naming the columns :func:`carried_names` renamed, or None."""
    moved = [f"{old!r} as {new!r}" for old, new in names.items() if old != new]
    if not moved:
        return None
    names = "that name" if len(moved) == 1 else "those names"
    return (f"galaxy-ray: {where}: carrying {', '.join(moved)}: galaxy-ray gives {names} a meaning of its own "
            "(a row's error, a catalog column)")


class Source:
    """One input source: validated on construction, read in slices by workers.

    Subclasses set :attr:`format` and implement :meth:`metadata` and
    :meth:`read_rows`.  A reader is built from the :class:`SourceListing`
    that detection made, and keeps it on the driver only: instances are
    pickled into Ray tasks, so what travels is small configuration (never
    the listing or the metadata table).
    """

    format: str = ""

    def __init__(self, listing: SourceListing) -> None:
        self.uri = listing.uri
        #: the source's listing (driver side; ``None`` in a worker)
        self.listing: SourceListing | None = listing
        #: carried-through columns, and their Arrow types once known for the whole source
        self.extras_names: list[str] = []
        self.extras_schema: pa.Schema | None = None

    def __getstate__(self) -> dict:
        # A folder of 60,000 cutouts lists 60,000 URIs: workers need none of them.
        return {**self.__dict__, "listing": None}

    def metadata(self) -> pd.DataFrame:
        """One row per cutout, in the source's fixed order (driver side, no pixels)."""
        raise NotImplementedError

    def read_rows(self, meta: pd.DataFrame) -> pa.Table:
        """Rows of the cutout table for a slice of :meth:`metadata` (worker side)."""
        raise NotImplementedError

    def dataset(self, rows_per_block: int = ROWS_PER_BLOCK):
        """The cutout table as a streaming Ray Dataset."""
        import ray.data

        meta = self.metadata()
        if meta.empty:
            raise GalaxyRayError(f"{self.uri}: no cutouts found in this {self.format} source")
        chunks = [meta.iloc[i : i + rows_per_block] for i in range(0, len(meta), rows_per_block)]
        return ray.data.from_pandas(chunks).map_batches(
            self.read_rows, batch_format="pandas", batch_size=None
        )

    def set_extras(self, meta: pd.DataFrame, exclude: Sequence[str]) -> list[str]:
        """Fix the Arrow schema of the carried-through columns from the whole metadata."""
        names = [c for c in meta.columns if c not in set(exclude) and not str(c).startswith("_")]
        self.extras_names = names
        if names:
            schema = pa.Schema.from_pandas(meta[names], preserve_index=False).remove_metadata()
            # An all-null column infers as `null`: carry it as string.
            fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in schema]
            self.extras_schema = pa.schema(fields)
        else:
            self.extras_schema = None
        return names

    def extras_of(self, meta: pd.DataFrame) -> pa.Table | None:
        if not self.extras_names:
            return None
        return pa.Table.from_pandas(meta[self.extras_names], preserve_index=False)


class FileRowsSource(Source):
    """A source whose metadata names one image file per row (column ``_path``).

    The metadata holds ``object_id``, optional ``ra``/``dec``/``label``, the
    37 Kaggle columns for votes when present, and carried-through extras.
    """

    #: How many listed cutout files exist, once :meth:`check_cutouts` ran (driver side).
    presence: Presence | None = None

    def check_cutouts(self, paths: Sequence[str | None], where: str, naming: str, hint: str = "") -> Presence:
        """Refuse the source when most listed files are absent (:func:`.presence.require_present`).

        Parameters
        ----------
        paths : sequence of str or None
            Each row's cutout URI (the metadata's ``_path``).
        where, naming, hint
            For the message: the table, how files were named, what to do.
        """
        self.presence = count_present(list(paths), self.listing)
        require_present(self.presence, where, naming, hint)
        return self.presence

    def read_rows(self, meta: pd.DataFrame) -> pa.Table:
        uris = [None if pd.isna(u) else str(u) for u in meta[PATH]]
        images = read_many(uris)
        return cutout_table(
            object_id=meta[C.OBJECT_ID].tolist(),
            image=images,
            source=[u if u is not None else self.uri for u in uris],
            ra=meta[C.RA] if C.RA in meta else None,
            dec=meta[C.DEC] if C.DEC in meta else None,
            votes=votes_from(meta),
            label=meta[C.LABEL].tolist() if C.LABEL in meta else None,
            extras=self.extras_of(meta),
            extras_schema=self.extras_schema,
        )
