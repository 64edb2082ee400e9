"""CSV and Parquet tables that list cutouts (catalogs, manifests, Kaggle solutions, shards).

Reading a table's column names costs one open of the file: the first 64 KiB
of a CSV, or the footer of a Parquet file.  :class:`SourceListing` caches
them, so detection and the reader that follows sniff each table once.
"""

from __future__ import annotations

import csv
import gzip
import io
from typing import Sequence

import pandas as pd
import pyarrow as pa

from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.io import storage

PARQUET_SUFFIXES = (".parquet", ".pq")
TABLE_SUFFIXES = (".csv", ".csv.gz", *PARQUET_SUFFIXES)
#: Bytes read to find a CSV's header line.
_HEADER_BYTES = 1 << 16


def is_parquet(uri: str) -> bool:
    return str(uri).lower().endswith(PARQUET_SUFFIXES)


def is_table(uri: str) -> bool:
    return str(uri).lower().endswith(TABLE_SUFFIXES)


def read_table(uri: str, columns_as_string: Sequence[str] = ()) -> pd.DataFrame:
    """A CSV or Parquet table as pandas, read with one open of the file.

    Parameters
    ----------
    uri : str
        Local path or ``s3://`` URI; Parquet when it ends ``.parquet``/``.pq``, else CSV.
    columns_as_string : sequence of str
        Columns read as strings (18-digit ids keep all their digits); absent names are ignored.

    Raises
    ------
    GalaxyRayError
        The file is missing or not a readable table.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        with storage.open_input(uri) as f:
            if is_parquet(uri):
                table = pq.read_table(f)
            else:
                # Arrow's CSV reader ignores types given for columns the file does not have.
                types = {c: pa.string() for c in columns_as_string}
                table = pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(column_types=types))
    except GalaxyRayError:
        raise
    except (pa.ArrowInvalid, OSError) as exc:
        raise GalaxyRayError(f"{uri}: not a readable CSV/Parquet table ({one_line(exc)})") from None
    for c in columns_as_string:
        if c in table.column_names:
            table = table.set_column(table.column_names.index(c), c, table[c].cast(pa.string()))
    return table.to_pandas()


def table_columns(uri: str, parquet: bool | None = None) -> list[str]:
    """Column names of a CSV or Parquet table without reading it all (one open).

    Parameters
    ----------
    uri : str
        The table.
    parquet : bool, optional
        Read it as Parquet (True) or CSV (False); from the file name when None.

    Raises
    ------
    GalaxyRayError
        The file is missing, or a Parquet file whose footer cannot be read.
    """
    import pyarrow.parquet as pq

    if parquet if parquet is not None else is_parquet(uri):
        try:
            with storage.open_input(uri) as f:
                return list(pq.ParquetFile(f).schema_arrow.names)
        except (pa.ArrowInvalid, OSError) as exc:
            raise GalaxyRayError(f"{uri}: not a readable Parquet file ({one_line(exc)})") from None
    return csv_header(uri)


def csv_header(uri: str) -> list[str]:
    """The names in a CSV file's first line (gzip-compressed when it ends ``.gz``)."""
    with storage.open_input(uri) as f:
        raw = f.read(_HEADER_BYTES)
    if uri.lower().endswith(".gz"):
        try:
            raw = gzip.GzipFile(fileobj=io.BytesIO(raw)).read(_HEADER_BYTES)
        except (OSError, EOFError):
            pass
    text = raw.decode("utf-8", errors="replace")
    first = text.splitlines()[0] if text else ""
    return [c.strip() for c in next(csv.reader([first]))] if first else []
