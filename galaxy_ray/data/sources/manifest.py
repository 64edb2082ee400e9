"""A manifest: a CSV or Parquet table listing cutout files (JPEG, PNG or FITS), local or ``s3://``.

Columns: ``object_id`` (or the column named by ``id_column``), ``path``
(relative to the manifest, absolute, or ``s3://``; files outside the
manifest's folder only with ``allow_outside_paths``, :mod:`.containment`), optional ``ra``/``dec``
(degrees, or sexagesimal text: RA in hours, :mod:`.positions`), ``label`` and the 37 ``Class1.1`` ... ``Class11.6`` cumulative vote
fractions; any other column is carried through, those named like galaxy-ray's own (``error``,
``image``, ``source``, ``p_merger``, ``morphology``, ``prob_*``, ...: a download log, a catalog
re-used as a manifest) as ``input_<name>`` (:func:`._common.carried_names`, said in one line).
A blank ``path`` cell (a failed download) gives that row the ``error`` "no path".  The manifest may be
gzip/bzip2-compressed (``manifest.csv.bz2``).  A listed file that is missing
gives a row with a null image (decoding reports it), not a failure -- unless
most are missing, which refuses the source before any work (:mod:`.presence`).

The manifest itself is streamed with ``ray.data.read_csv`` / ``read_parquet``
when reading, after a driver pass over its ids, paths and positions (the
checks above); ``pack`` reads it on the driver (about 100 bytes per row) to cut
deterministic shards.  A compressed manifest is read on the driver.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from galaxy_ray import runtime
from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import GZ2_KAGGLE_COLUMNS, CatalogColumns as C
from galaxy_ray.data.sources._common import (PATH, FileRowsSource, carried_names, read_parquet, renamed_line,
                                             require_kaggle_columns, resolve)
from galaxy_ray.data.sources.containment import refuse_outside_paths
from galaxy_ray.data.sources.identity import exact_float_ids
from galaxy_ray.data.sources.listing import SourceListing, as_listing, parent
from galaxy_ray.data.sources.positions import parse_positions
from galaxy_ray.data.sources.tables import file_compression, is_parquet, read_table

#: The file names that make a directory a manifest source, in the order looked for.
MANIFEST_CSV = "manifest.csv"
MANIFEST_PARQUET = "manifest.parquet"
NAMES = (MANIFEST_CSV, MANIFEST_PARQUET)
#: Column of each cutout's file.
PATH_COLUMN = "path"
#: The usual folder of the listed cutouts, beside the manifest (any path is read).
IMAGE_DIR = "images"


def find_manifest(listing: SourceListing) -> str:
    """The listed file itself, or ``manifest.csv`` / ``manifest.parquet`` in the listed directory."""
    if not listing.is_dir:
        return listing.uri
    for name in NAMES:
        found = listing.named(name)
        if found:
            return found
    raise GalaxyRayError(f"{listing.uri}: no {' or '.join(NAMES)} in this directory")


class Manifest(FileRowsSource):
    """Cutout files listed in a table."""

    format = "manifest"

    def __init__(self, source: SourceListing | str, id_column: str | None = None,
                 allow_outside_paths: bool = False) -> None:
        listing = as_listing(source)
        super().__init__(listing)
        #: whether the manifest may name files outside its own folder (:mod:`.containment`)
        self.allow_outside_paths = bool(allow_outside_paths)
        self.table_uri = find_manifest(listing)
        self.base = parent(self.table_uri)
        columns = listing.table_columns(self.table_uri)
        self.id_column = id_column or C.OBJECT_ID
        if self.id_column not in columns:
            raise GalaxyRayError(
                f"{self.table_uri}: no id column '{self.id_column}'; a manifest needs object_id and path "
                "(or name the id column with --id-column)"
            )
        if PATH_COLUMN not in columns:
            raise GalaxyRayError(f"{self.table_uri}: no '{PATH_COLUMN}' column; a manifest needs object_id and path")
        self.has_votes = require_kaggle_columns(columns, self.table_uri)
        reserved = {self.id_column, C.OBJECT_ID, PATH_COLUMN, C.RA, C.DEC, C.LABEL, *GZ2_KAGGLE_COLUMNS}
        extras = [c for c in columns if c not in reserved and not c.startswith("_")]
        #: each carried column's name in the cutout table (galaxy-ray's own names get ``input_``)
        self.carried = carried_names(extras, self.table_uri)
        self.extras_names = list(self.carried.values())
        if (line := renamed_line(self.carried, self.table_uri)) is not None:
            runtime.say(line)
        self.strings = [self.id_column, PATH_COLUMN] + ([C.LABEL] if C.LABEL in columns else [])
        #: position columns, read from a CSV as text (sexagesimal is parsed, not taken for a time)
        self.positions = [c for c in (C.RA, C.DEC) if c in columns]

    def normalise(self, table: pd.DataFrame) -> pd.DataFrame:
        """Manifest rows -> metadata rows (ids as strings, positions in degrees, paths resolved)."""
        meta = self.located(table)
        if C.LABEL in table.columns:
            meta[C.LABEL] = table[C.LABEL]
        if self.has_votes:
            for c in GZ2_KAGGLE_COLUMNS:
                meta[c] = pd.to_numeric(table[c], errors="coerce")
        for c, carried in self.carried.items():
            meta[carried] = table[c]
        return meta

    def located(self, table: pd.DataFrame) -> pd.DataFrame:
        """``object_id``, ``ra``/``dec`` (checked degrees, when the manifest has them) and ``_path`` of manifest rows."""
        meta = pd.DataFrame(index=table.index)
        ids = table[self.id_column]
        if ids.isna().any():
            raise GalaxyRayError(f"{self.table_uri}: empty values in id column '{self.id_column}'")
        if pd.api.types.is_float_dtype(ids):  # a Parquet manifest streamed by Ray Data keeps its types
            ids = exact_float_ids(ids, self.id_column, self.table_uri)
        meta[C.OBJECT_ID] = ids.astype(str).str.strip()
        if C.RA in table.columns or C.DEC in table.columns:
            ra, dec = (table[c] if c in table.columns else pd.Series(pd.NA, index=table.index) for c in (C.RA, C.DEC))
            meta[C.RA], meta[C.DEC] = parse_positions(ra, dec, meta[C.OBJECT_ID], self.table_uri)
        # object dtype: a blank cell stays None (a str column would hold it as NaN, "nan" in messages)
        meta[PATH] = pd.Series([None if pd.isna(p) or not str(p).strip() else resolve(str(p).strip(), self.base)
                                for p in table[PATH_COLUMN]], index=table.index, dtype=object)
        return meta

    def metadata(self) -> pd.DataFrame:
        meta = self.normalise(read_table(self.table_uri, columns_as_string=self.strings, csv_text=self.positions,
                                          id_columns=[self.id_column]))
        self._check_cutouts(meta)
        exclude = [C.OBJECT_ID, C.RA, C.DEC, C.LABEL, *GZ2_KAGGLE_COLUMNS]
        self.set_extras(meta, exclude)
        return meta

    def _check_cutouts(self, meta: pd.DataFrame) -> None:
        if not self.allow_outside_paths:
            refuse_outside_paths(meta[PATH].tolist(), self.base, self.table_uri, PATH_COLUMN)
        self.check_cutouts(meta[PATH], self.table_uri, f"the files of its '{PATH_COLUMN}' column",
                           f"check the '{PATH_COLUMN}' column (relative to {self.base}, absolute, or s3://)")

    def dataset(self, rows_per_block: int = 64):
        """Stream the manifest with Ray Data's table readers and read each block's files.

        A driver pass over the ids, paths and positions comes first, so a bad
        position or a manifest whose files are mostly absent stops before any work.
        """
        import pyarrow.csv as pacsv
        import ray.data

        if file_compression(self.table_uri) is not None:
            # Ray's readers take the wrapping from the file name only; read such a manifest here.
            return super().dataset(rows_per_block)
        needed = [self.id_column, PATH_COLUMN, *self.positions]
        head = read_table(self.table_uri, columns_as_string=self.strings, csv_text=self.positions, columns=needed,
                          id_columns=[self.id_column])
        self._check_cutouts(self.located(head))
        fs, path = storage.pyarrow_filesystem(self.table_uri)
        if is_parquet(self.table_uri):
            rows = read_parquet(path, fs, file_extensions=None)
        else:
            types = {c: pa.string() for c in (*self.strings, *self.positions)}
            rows = ray.data.read_csv(path, filesystem=fs, file_extensions=None,
                                     convert_options=pacsv.ConvertOptions(column_types=types))
        return rows.map_batches(self._read_manifest_rows, batch_format="pandas", batch_size=rows_per_block)

    def _read_manifest_rows(self, batch: pd.DataFrame):
        return self.read_rows(self.normalise(batch))

    def read_rows(self, meta: pd.DataFrame) -> pa.Table:
        """Rows of the cutout table; a row whose ``path`` cell is blank (a failed download) gets the ``error``
        "no path", the others a null ``error`` (every block has the column)."""
        table = super().read_rows(meta)
        errors = [None if isinstance(p, str) and p else
                  f"{self.table_uri}: no path (object {oid}: blank '{PATH_COLUMN}' cell); fill in its cutout's file"
                  for p, oid in zip(meta[PATH], meta[C.OBJECT_ID])]
        return table.append_column(C.ERROR, pa.array(errors, type=pa.string()))
