"""Query results as pandas, astropy or Arrow tables, and as files.

CSV and Parquet are written by pyarrow; FITS and VOTable by astropy (:mod:`~galaxy_ray.catalog.export`); the
Kaggle Galaxy Challenge submission is a CSV in the challenge's column layout.
"""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from galaxy_ray.catalog.export import fits_bytes, to_astropy, votable_bytes
from galaxy_ray.catalog.write import METADATA_KEY
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.schema import GZ2_ANSWER_COLUMNS, GZ2_KAGGLE_COLUMNS, CatalogColumns as C

__all__ = ["to_astropy", "convert_table", "write_table", "write_kaggle_submission"]

#: --out file suffix -> format
_OUT_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".fits": "fits", ".fit": "fits",
                ".fits.gz": "fits", ".vot": "votable", ".votable": "votable", ".xml": "votable"}


def convert_table(table: pa.Table, output: str):
    """``table`` as ``"arrow"`` (itself), ``"pandas"`` or ``"astropy"``.

    Raises
    ------
    GalaxyRayError
        ``output`` is none of these.
    """
    if output == "arrow":
        return table
    if output == "pandas":
        return table.to_pandas()
    if output == "astropy":
        return to_astropy(table)
    raise GalaxyRayError(f"output {output!r}: one of pandas, astropy, arrow")


def _out_format(uri: str) -> str:
    low = str(uri).lower()
    for suffix in sorted(_OUT_FORMATS, key=len, reverse=True):
        if low.endswith(suffix):
            return _OUT_FORMATS[suffix]
    raise GalaxyRayError(f"--out {uri}: unknown format; end the name with .csv, .parquet, .fits or .vot")


def write_table(table: pa.Table, uri: str, provenance: dict | None = None, query: dict | None = None) -> str:
    """Write query results to ``uri`` (local or ``s3://``), format from the suffix.

    CSV and Parquet via pyarrow; FITS and VOTable via astropy, with each
    column's unit, UCD and description and the catalog's provenance
    (:mod:`~galaxy_ray.catalog.export`; nulls masked: FITS stores masked
    strings as empty and masked floats as NaN); ``.fits.gz`` is
    gzip-compressed FITS.  Parquet keeps the provenance JSON in its key-value
    metadata (key ``galaxy_ray``), as the catalog's own files do.

    Parameters
    ----------
    table : pyarrow.Table
        The rows.
    uri : str
        Output file; its suffix picks the format.
    provenance : dict, optional
        The catalog's provenance, stated in FITS, VOTable and Parquet outputs.
    query : dict, optional
        What was asked (``catalog``, ``cone``, ``box``, ``where``, ...), stated in FITS and VOTable.

    Returns
    -------
    str
        The format written.

    Raises
    ------
    GalaxyRayError
        The suffix names no known format.
    """
    fmt = _out_format(uri)
    buf = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(table, buf)
    elif fmt == "parquet":
        if provenance:
            meta = dict(table.schema.metadata or {})
            meta[METADATA_KEY.encode()] = json.dumps(provenance, sort_keys=True, default=str).encode()
            table = table.replace_schema_metadata(meta)
        pq.write_table(table, buf)
    elif fmt == "fits":
        buf.write(fits_bytes(table, provenance, query))
        if str(uri).lower().endswith(".gz"):
            buf = io.BytesIO(gzip.compress(buf.getvalue()))
    else:
        buf.write(votable_bytes(table, provenance, query))
    storage.write_bytes_atomic(str(uri), buf.getvalue())
    return fmt


def _id_quoting(ids: pa.ChunkedArray) -> str:
    """pyarrow's CSV quoting for an id column: ``"none"`` (the challenge's plain layout) unless an id needs quotes.

    An id holding a comma, a double quote or a line break (RFC 4180's structural
    characters) makes every id quoted (``"needed"`` quotes each string), so that
    it reads back as written.
    """
    text = pc.cast(ids, pa.string())
    needs = pc.any(pc.match_substring_regex(text, '[,"\r\n]')).as_py()
    return "needed" if needs else "none"


def write_kaggle_submission(table: pa.Table, uri: str) -> int:
    """Write a GZ2 catalog's rows in the Kaggle Galaxy Challenge submission layout.

    ``GalaxyID`` (the ``object_id``) and ``Class1.1`` ... ``Class11.6`` in
    challenge order.  Rows without predictions (``error`` set) are left out.
    Ids are written as they are: unquoted, or, when one holds a comma, a quote
    or a line break, every id quoted (RFC 4180) so that each reads back whole.

    Returns
    -------
    int
        Rows written.

    Raises
    ------
    GalaxyRayError
        ``table`` lacks one of the 37 GZ2 answer columns.
    """
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
    pacsv.write_csv(out, buf, pacsv.WriteOptions(quoting_style=_id_quoting(out["GalaxyID"])))
    storage.write_bytes_atomic(str(uri), buf.getvalue())
    return out.num_rows
