"""CSV and Parquet tables that list cutouts (catalogs, manifests, Kaggle solutions, shards).

Reading a table's column names costs one open of the file: the start of a
CSV, or the footer of a Parquet file.  :class:`SourceListing` caches them, so
detection and the reader that follows sniff each table once.

Tables may come wrapped in gzip, bzip2, xz or zstd, as surveys distribute
them (``gz2_hart16.csv.gz``).  The wrapping is told from the file's first
bytes, not its name, and is undone while streaming; the name only decides
whether a file is a table (``.csv``/``.parquet``/``.pq``, optionally followed
by ``.gz``/``.bz2``/``.xz``/``.zst``).
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import lzma
import re
from typing import IO, Iterator, Sequence

import pandas as pd
import pyarrow as pa

from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.io import storage
from galaxy_ray.data.sources.identity import exact_float_ids, refuse_float_text_ids

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)
#: Name endings of a compressed file, and the codec each one names (Arrow's codec names).
COMPRESSION_SUFFIXES: dict[str, str] = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}
#: Table names as listed: plain, or with a compression ending.
TABLE_SUFFIXES = tuple(s + c for s in (*CSV_SUFFIXES, *PARQUET_SUFFIXES) for c in ("", *COMPRESSION_SUFFIXES))
#: First bytes of each compressed format (RFC 1952; bzip2; xz; zstd frames, RFC 8878).
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd"))
#: Most decompressed bytes read to find a CSV's header line.
_HEADER_BYTES = 1 << 20


def plain_name(uri: str) -> str:
    """The file name of ``uri`` without a compression ending (``a/b.csv.gz`` -> ``b.csv``)."""
    name = str(uri).rstrip("/").rsplit("/", 1)[-1]
    for suffix in COMPRESSION_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_parquet(uri: str) -> bool:
    return plain_name(uri).lower().endswith(PARQUET_SUFFIXES)


def is_table(uri: str) -> bool:
    return str(uri).lower().endswith(TABLE_SUFFIXES)


def compression_of(head: bytes) -> str | None:
    """The codec (``gzip``, ``bz2``, ``xz``, ``zstd``) whose magic bytes start ``head``, or None."""
    return next((codec for magic, codec in _MAGIC if head.startswith(magic)), None)


def file_compression(uri: str) -> str | None:
    """The codec wrapping the file ``uri`` (one small read), or None when it is plain."""
    with storage.open_input(uri) as raw:
        return compression_of(raw.read(8))


def _decompressing(raw: IO[bytes], codec: str) -> IO[bytes]:
    if codec == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if codec == "bz2":
        return bz2.BZ2File(raw)
    if codec == "xz":
        return lzma.LZMAFile(raw)
    return pa.CompressedInputStream(pa.PythonFile(raw, mode="r"), codec)


@contextlib.contextmanager
def open_table(uri: str) -> Iterator[tuple[IO[bytes], str | None]]:
    """Open a table for streaming, undoing any compression: ``(stream, codec or None)``.

    Raises
    ------
    GalaxyRayError
        The file is missing.
    """
    with storage.open_input(uri) as raw:
        codec = compression_of(raw.read(8))
        raw.seek(0)
        if codec is None:
            yield raw, None
            return
        stream = _decompressing(raw, codec)
        try:
            yield stream, codec
        finally:
            stream.close()


def read_table(
    uri: str, columns_as_string: Sequence[str] = (), *, csv_text: Sequence[str] = (),
    columns: Sequence[str] | None = None, id_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """A CSV or Parquet table (compressed or not) as pandas, read with one open of the file.

    Parameters
    ----------
    uri : str
        Local path or ``s3://`` URI; Parquet when its name (less a compression
        ending) ends ``.parquet``/``.pq``, else CSV.
    columns_as_string : sequence of str
        Columns read as strings (18-digit ids keep all their digits); absent names are ignored.
    csv_text : sequence of str
        Columns of a CSV kept as the text in the file (positions such as
        ``12:30:49.42`` that Arrow would take for times); Parquet keeps its types.
    columns : sequence of str, optional
        Read only these columns, all of which the table has; every column when None.
    id_columns : sequence of str
        Object-id columns among ``columns_as_string``: float ids become their integer
        digits, and floats that cannot be exact ids are refused
        (:func:`galaxy_ray.data.sources.identity.exact_float_ids`).

    Raises
    ------
    GalaxyRayError
        The file is missing or not a readable (or decompressible) table, or an id
        column holds floats above 2**53 or that are not integers.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        with open_table(uri) as (f, codec):
            if is_parquet(uri):
                # Parquet needs to seek: a compressed one is decompressed whole first.
                source = pa.BufferReader(f.read()) if codec else f
                table = pq.read_table(source, columns=None if columns is None else list(columns))
            else:
                types = {c: pa.string() for c in (*columns_as_string, *csv_text)}
                # Arrow ignores types given for columns the file does not have.
                options = pacsv.ConvertOptions(column_types=types, include_columns=columns)
                table = pacsv.read_csv(f, convert_options=options)
    except GalaxyRayError:
        raise
    except (pa.ArrowInvalid, OSError, EOFError, lzma.LZMAError) as exc:
        raise GalaxyRayError(f"{uri}: not a readable CSV/Parquet table ({_without_content(exc)})") from None
    for c in columns_as_string:
        if c in table.column_names:
            table = table.set_column(table.column_names.index(c), c, _as_text(table[c], c, uri, c in id_columns))
    return table.to_pandas()


#: Arrow's CSV parse errors end with the offending line itself: what a message must not show.
_CSV_ROW = re.compile(r"^(CSV parse error: .*?Expected \d+ columns, got \d+)(: .*)?$")


def _without_content(exc: BaseException) -> str:
    """One line of a table reader's error, less the file's text that Arrow's CSV parse errors quote."""
    line = one_line(exc)
    match = _CSV_ROW.match(line)
    return match.group(1) if match else line


def _as_text(values: pa.ChunkedArray, column: str, uri: str, is_id: bool) -> pa.Array | pa.ChunkedArray:
    """A column as strings; an id column's floats checked first (exact integers only)."""
    if not is_id:
        return values.cast(pa.string())
    if pa.types.is_floating(values.type):
        return pa.array(exact_float_ids(values.to_pandas(), column, uri), type=pa.string())
    text = values.cast(pa.string())
    refuse_float_text_ids(text.to_pandas(), column, uri)
    return text


def table_columns(uri: str, parquet: bool | None = None) -> list[str]:
    """Column names of a CSV or Parquet table without reading it all (one open).

    Parameters
    ----------
    uri : str
        The table, compressed or not.
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
            with open_table(uri) as (f, codec):
                return list(pq.ParquetFile(pa.BufferReader(f.read()) if codec else f).schema_arrow.names)
        except (pa.ArrowInvalid, OSError, EOFError, lzma.LZMAError) as exc:
            raise GalaxyRayError(f"{uri}: not a readable Parquet file ({one_line(exc)})") from None
    return csv_header(uri)


def csv_header(uri: str) -> list[str]:
    """The names in a CSV file's first line (decompressing as much of it as that takes)."""
    raw = b""
    with open_table(uri) as (f, _):
        try:
            # A bzip2 block holds up to 900 kB: read on until the first line ends.
            while b"\n" not in raw and len(raw) < _HEADER_BYTES:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                raw += chunk
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise GalaxyRayError(f"{uri}: cannot decompress this table ({one_line(exc)})") from None
    text = raw.decode("utf-8", errors="replace").lstrip("\ufeff")
    first = text.splitlines()[0] if text else ""
    return [c.strip() for c in next(csv.reader([first]))] if first else []
