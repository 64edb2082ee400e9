"""A manifest: a CSV or Parquet table listing cutout files (JPEG, PNG or FITS), local or ``s3://``.

Columns: ``object_id`` (or the column named by ``id_column``), ``path``
(relative to the manifest, absolute, or ``s3://``), optional ``ra``/``dec``
(degrees), ``label`` and the 37 ``Class1.1`` ... ``Class11.6`` cumulative vote
fractions; any other column is carried through.  A listed file that is missing
gives a row with a null image (decoding reports it), not a failure.

The manifest itself is streamed with ``ray.data.read_csv`` / ``read_parquet``
when reading; ``pack`` reads it on the driver (about 100 bytes per row) to cut
deterministic shards.
"""

from __future__ import annotations

import pandas as pd

from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import GZ2_KAGGLE_COLUMNS, CatalogColumns as C
from galaxy_ray.data.sources._common import PATH, FileRowsSource, read_parquet, require_kaggle_columns, resolve
from galaxy_ray.data.sources.listing import SourceListing, as_listing, parent
from galaxy_ray.data.sources.tables import is_parquet, read_table

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
        if name in listing.names:
            return storage.join(listing.uri, name)
    raise GalaxyRayError(f"{listing.uri}: no {' or '.join(NAMES)} in this directory")


class Manifest(FileRowsSource):
    """Cutout files listed in a table."""

    format = "manifest"

    def __init__(self, source: SourceListing | str, id_column: str | None = None) -> None:
        listing = as_listing(source)
        super().__init__(listing)
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
        reserved = {self.id_column, C.OBJECT_ID, PATH_COLUMN, C.RA, C.DEC, C.LABEL, C.IMAGE, C.SOURCE, C.VOTES,
                    *GZ2_KAGGLE_COLUMNS}
        self.extras_names = [c for c in columns if c not in reserved and not c.startswith("_")]
        self.strings = [self.id_column, PATH_COLUMN] + ([C.LABEL] if C.LABEL in columns else [])

    def normalise(self, table: pd.DataFrame) -> pd.DataFrame:
        """Manifest rows -> metadata rows (ids as strings, paths resolved)."""
        meta = pd.DataFrame(index=table.index)
        ids = table[self.id_column]
        if ids.isna().any():
            raise GalaxyRayError(f"{self.table_uri}: empty values in id column '{self.id_column}'")
        meta[C.OBJECT_ID] = ids.astype(str).str.strip()
        for name in (C.RA, C.DEC, C.LABEL):
            if name in table.columns:
                meta[name] = table[name]
        meta[PATH] = [None if pd.isna(p) or not str(p).strip() else resolve(str(p).strip(), self.base)
                      for p in table[PATH_COLUMN]]
        if self.has_votes:
            for c in GZ2_KAGGLE_COLUMNS:
                meta[c] = pd.to_numeric(table[c], errors="coerce")
        for c in self.extras_names:
            meta[c] = table[c]
        return meta

    def metadata(self) -> pd.DataFrame:
        meta = self.normalise(read_table(self.table_uri, columns_as_string=self.strings))
        exclude = [C.OBJECT_ID, C.RA, C.DEC, C.LABEL, *GZ2_KAGGLE_COLUMNS]
        self.set_extras(meta, exclude)
        return meta

    def dataset(self, rows_per_block: int = 64):
        """Stream the manifest with Ray Data's table readers and read each block's files."""
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import ray.data

        fs, path = storage.pyarrow_filesystem(self.table_uri)
        if is_parquet(self.table_uri):
            rows = read_parquet(path, fs, file_extensions=None)
        else:
            types = {c: pa.string() for c in self.strings}
            rows = ray.data.read_csv(path, filesystem=fs, file_extensions=None,
                                     convert_options=pacsv.ConvertOptions(column_types=types))
        return rows.map_batches(self._read_manifest_rows, batch_format="pandas", batch_size=rows_per_block)

    def _read_manifest_rows(self, batch: pd.DataFrame):
        return self.read_rows(self.normalise(batch))
