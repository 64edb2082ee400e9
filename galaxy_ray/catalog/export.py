"""FITS and VOTable exports that keep units, UCDs and the catalog's provenance.

Columns carry their unit, UCD and description (:mod:`~galaxy_ray.catalog.columns`; the
description is the catalog's own ``column_descriptions`` where its provenance has them, so a
cumulative fraction, a conditional ``_fraction`` and the calibrated ``p_merger`` each say what
they are):

* FITS: ``TUNITn`` (standard), ``TUCDn`` and ``TCOMMn`` (the column UCD and
  description keywords that STIL/TOPCAT read and write; ``TCOMMn`` is also the
  HEASARC column-comment convention), and astropy's own serialized column
  metadata, so ``Table.read`` gives back ``unit``, ``description`` and
  ``meta["ucd"]``;
* VOTable: ``FIELD`` ``unit``, ``ucd`` and ``DESCRIPTION``, RA/Dec referring to
  an ICRS ``COOSYS``.

The provenance goes with them: FITS header keywords of 8 characters or fewer
(:data:`PROVENANCE_KEYWORDS`, each with a comment naming the provenance entry)
and the whole provenance JSON in ``GRPROV`` (a long string continued over
``CONTINUE`` cards, the FITS long-string convention); in a VOTable, numbers as
``PARAM`` elements and text as ``INFO`` elements named after the provenance
entries, and the JSON in ``INFO name="galaxy_ray_provenance"``.
"""

from __future__ import annotations

import io
import json
import math
import re
import warnings
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from galaxy_ray import __version__
from galaxy_ray.catalog.columns import column_info

__all__ = ["PROVENANCE_KEYWORDS", "provenance_entries", "to_astropy", "annotated_table", "fits_bytes", "votable_bytes"]

#: (FITS keyword, path in the provenance, comment): what a FITS header or VOTable says of the catalog.
PROVENANCE_KEYWORDS: tuple[tuple[str, tuple, str], ...] = (
    ("GRTASK", ("task",), "model task: gz2 vote fractions or classes"),
    ("GRARCH", ("arch",), "network architecture"),
    ("GRCKPT", ("checkpoint",), "checkpoint the catalog was made with"),
    ("GRCKPTP", ("checkpoint_portable",), "checkpoint, relative to the catalog"),
    ("GRCKSHA", ("checkpoint_sha256",), "SHA-256 of the checkpoint file"),
    ("GRSOURCE", ("source",), "survey source classified"),
    ("GRSRCP", ("source_portable",), "source, relative to the catalog"),
    ("GRSRCFMT", ("source_format",), "format of the source"),
    ("GRTTA", ("tta",), "8-view test-time augmentation"),
    ("MRGCOL", ("merger",), "model output that is p_merger"),
    ("MRGTHR", ("merger_threshold",), "is_merger = p_merger >= MRGTHR"),
    ("MRGTHSRC", ("merger_threshold_source",), "where MRGTHR came from"),
    ("MRGTRUTH", ("merger_validation", "truth"), "what a true merger was on validation"),
    ("MRGVCUT", ("merger_validation", "vote_cut"), "GZ2 merger vote cut of the truth"),
    ("MRGPREC", ("merger_validation", "precision"), "validation precision at MRGTHR"),
    ("MRGPRLO", ("merger_validation", "precision_interval", 0), "precision 95% Wilson low"),
    ("MRGPRHI", ("merger_validation", "precision_interval", 1), "precision 95% Wilson high"),
    ("MRGRECAL", ("merger_validation", "recall"), "validation recall (completeness)"),
    ("MRGRCLO", ("merger_validation", "recall_interval", 0), "recall 95% Wilson low"),
    ("MRGRCHI", ("merger_validation", "recall_interval", 1), "recall 95% Wilson high"),
    ("MRGFPR", ("merger_validation", "false_positive_rate"), "validation false-positive rate"),
    ("MRGVPOS", ("merger_validation", "positives"), "validation mergers"),
    ("MRGVTP", ("merger_validation", "true_positives"), "validation mergers flagged"),
    ("MRGVNEG", ("merger_validation", "negatives"), "validation non-mergers"),
    ("MRGVFP", ("merger_validation", "false_positives"), "validation non-mergers flagged"),
)
#: Characters XML 1.0 cannot hold (its Char production), escaped or not.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
#: Name of the VOTable INFO holding the whole provenance JSON (FITS: keyword GRPROV).
PROVENANCE_INFO = "galaxy_ray_provenance"


def _lookup(provenance: Mapping, path: tuple) -> Any:
    value: Any = provenance
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _header_value(value: Any) -> Any:
    """A FITS-header-safe scalar (printable ASCII text, finite numbers), or None to leave the keyword out."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value if math.isfinite(value) else None
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, sort_keys=True, default=str)
    text = str(value)
    # FITS headers hold printable ASCII only: other characters as Python escapes (\n, \u00e9), never dropped
    return text if text.isascii() and text.isprintable() else text.encode("unicode_escape").decode("ascii")


def provenance_entries(provenance: Mapping | None) -> list[tuple[str, str, Any, str]]:
    """The provenance entries an export states, in :data:`PROVENANCE_KEYWORDS` order.

    Returns
    -------
    list of (keyword, name, value, comment)
        ``name`` is the provenance path joined with ``_`` (the VOTable name,
        e.g. ``merger_validation_precision``); entries the provenance lacks,
        and NaN numbers, are left out.
    """
    out = []
    for key, path, comment in PROVENANCE_KEYWORDS:
        value = _header_value(_lookup(provenance or {}, path))
        if value is not None:
            name = "_".join(str(p) for p in path).replace("_interval_0", "_interval_low").replace(
                "_interval_1", "_interval_high")
            out.append((key, name, value, comment))
    return out


def to_astropy(table: pa.Table):
    """An astropy ``Table`` (masked where null) from an Arrow table."""
    # astropy.table and its FITS writer are imported only for the outputs that need them:
    # they would add about half a second to every `galaxy-ray query`.
    from astropy.table import MaskedColumn, Table

    out = Table()
    for name in table.column_names:
        col = table[name]
        mask = np.asarray(col.is_null())
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_null(col.type):
            values = np.array([v if v is not None else "" for v in col.to_pylist()], dtype=str)
        elif pa.types.is_boolean(col.type):
            values = pc.fill_null(col, False).to_numpy()
        elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            values = pc.fill_null(col, 0).to_numpy()
        else:
            values = np.array(col.to_pylist(), dtype=object)
        out[name] = MaskedColumn(values, mask=mask) if mask.any() else values
    return out


def annotated_table(table: pa.Table, provenance: Mapping | None = None):
    """An astropy ``Table`` of ``table`` (masked where null) with each column's unit, UCD and description."""
    out = to_astropy(table)
    for name in out.colnames:
        info = column_info(name, provenance)
        if info is None:
            continue
        col = out[name]
        if info.unit:
            col.unit = info.unit
        col.description = info.description
        if info.ucd:
            col.meta["ucd"] = info.ucd
    return out


def _column_cards(header, names: list[str], provenance: Mapping | None) -> None:
    """``TUCDn`` and ``TCOMMn`` of each described column, placed after the column's own keywords."""
    for i, name in enumerate(names, start=1):
        info = column_info(name, provenance)
        if info is None:
            continue
        anchor = f"TUNIT{i}" if f"TUNIT{i}" in header else f"TFORM{i}"
        header.set(f"TCOMM{i}", _header_value(info.description), after=anchor)
        if info.ucd:
            header.set(f"TUCD{i}", info.ucd, "UCD1+ of the column", after=anchor)


def _provenance_cards(header, provenance: Mapping | None, query: Mapping | None) -> None:
    """The provenance (and the query) as short keywords, the whole provenance JSON as ``GRPROV``."""
    header["ORIGIN"] = (f"galaxy-ray {__version__}", "software that wrote this file")
    for key, _, value, comment in provenance_entries(provenance):
        # a card is 80 characters: a long value keeps its card whole by dropping the comment
        header[key] = (value, comment if not isinstance(value, str) or len(value) + len(comment) < 55 else "")
    for name, value in (query or {}).items():
        if value is not None:
            header[f"GRQ{name[:5].upper()}"] = (_header_value(value), f"query: {name}")
    if provenance:
        header["GRPROV"] = (json.dumps(provenance, sort_keys=True, default=str), "provenance JSON")
    header.add_comment("galaxy-ray provenance: the GR* and MRG* keywords; GRPROV holds all of it as JSON")


def _utf8_columns(t) -> list[str]:
    """Store text columns holding non-ASCII characters as UTF-8 bytes (FITS ``A`` columns hold bytes).

    astropy's FITS writer encodes text as ASCII and fails on anything else;
    UTF-8 bytes keep an id such as ``é-1`` exactly (astropy's reader decodes
    them back).  Returns the names of the columns changed.
    """
    from astropy.table import Column, MaskedColumn

    changed = []
    for name in t.colnames:
        col = t[name]
        values = np.asarray(col).tolist()  # masked entries hold "" (to_astropy)
        if col.dtype.kind != "U" or all(v.isascii() for v in values):
            continue
        data = np.array([v.encode("utf-8") for v in values], dtype=bytes)
        kind = MaskedColumn if isinstance(col, MaskedColumn) else Column
        extra = {"mask": col.mask} if kind is MaskedColumn else {}
        t.replace_column(name, kind(data, name=name, unit=col.unit, description=col.description,
                                    meta=col.meta, **extra))
        changed.append(name)
    return changed


def fits_bytes(table: pa.Table, provenance: Mapping | None = None, query: Mapping | None = None) -> bytes:
    """A FITS file (empty primary HDU, then the BINTABLE ``CATALOG``) of ``table``, annotated.

    Parameters
    ----------
    table : pyarrow.Table
        Query results.
    provenance : mapping, optional
        The catalog's provenance (``Catalog.provenance``).
    query : mapping, optional
        What was asked (catalog, region, filter); each entry becomes a ``GRQ*`` keyword.

    Returns
    -------
    bytes
        The FITS file.
    """
    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning

    t = annotated_table(table, provenance)
    utf8 = _utf8_columns(t)
    with warnings.catch_warnings():
        # FITS column names longer than 8 characters are fine in binary tables (TTYPE)
        warnings.simplefilter("ignore", VerifyWarning)
        first = io.BytesIO()
        t.write(first, format="fits")  # astropy's writer also serializes descriptions and UCDs for Table.read
        first.seek(0)
        with fits.open(first) as hdus:
            header = hdus[1].header
            header["EXTNAME"] = ("CATALOG", "galaxy-ray morphology catalog rows")
            _column_cards(header, t.colnames, provenance)
            _provenance_cards(header, provenance, query)
            if utf8:
                header.add_comment(f"text of column(s) {', '.join(utf8)} is UTF-8 (it holds non-ASCII characters)")
            out = io.BytesIO()
            hdus.writeto(out)
    return out.getvalue()


def _param(votable, name: str, value: Any, comment: str):
    """A VOTable ``PARAM`` holding a number or a flag."""
    from astropy.io.votable.tree import Param

    datatype = "boolean" if isinstance(value, bool) else "long" if isinstance(value, int) else "double"
    param = Param(votable, name=name, datatype=datatype, value=value)
    param.description = comment
    return param


def votable_bytes(table: pa.Table, provenance: Mapping | None = None, query: Mapping | None = None) -> bytes:
    """A VOTable of ``table``: FIELDs with unit, UCD and description; provenance as PARAM and INFO.

    Parameters are those of :func:`fits_bytes`.
    """
    from astropy.io.votable import from_table
    from astropy.io.votable.tree import CooSys, Info

    vot = from_table(annotated_table(table, provenance))
    resource = vot.resources[0]
    vtable = resource.tables[0]
    vtable.name = "catalog"
    coosys = CooSys(ID="icrs", system="ICRS")
    resource.coordinate_systems.append(coosys)
    for field in vtable.fields:
        if field.ucd and field.ucd.startswith(("pos.eq.ra", "pos.eq.dec")):
            field.ref = coosys.ID
    resource.infos.append(Info(name="origin", value=f"galaxy-ray {__version__}"))
    for key, name, value, comment in provenance_entries(provenance):
        if isinstance(value, (bool, int, float)):
            vtable.params.append(_param(vot, name, value, f"{comment} (FITS {key})"))
        else:
            vtable.infos.append(Info(name=name, value=str(value)))
    for name, value in (query or {}).items():
        if value is not None:
            resource.infos.append(Info(name=f"query_{name}", value=str(value)))
    if provenance:
        vtable.infos.append(Info(name=PROVENANCE_INFO, value=json.dumps(provenance, sort_keys=True, default=str)))
    buf = io.BytesIO()
    # XML 1.0 cannot hold most control characters, even escaped: text holding one goes in a BINARY2 stream
    binary = any(_XML_ILLEGAL.search(str(v)) for f in table.schema if pa.types.is_string(f.type)
                 for v in table[f.name].drop_null().unique().to_pylist())
    vot.to_xml(buf, tabledata_format="binary2" if binary else "tabledata")
    return buf.getvalue()
