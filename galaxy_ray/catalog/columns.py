"""What each catalog column is: its unit, its UCD and a one-line description.

FITS and VOTable exports (:mod:`~galaxy_ray.catalog.export`) carry these so
that TOPCAT, Aladin, astropy or a VO service find RA/Dec, the identifier and
the probabilities by meaning, not by guessing from column names.

UCDs are words of the IVOA UCD1+ controlled vocabulary (UCDlist 1.6, IVOA
Endorsed Note 2024-12-18; astropy ships the list and checks it with
``astropy.io.votable.ucd.check_ucd(..., check_controlled_vocabulary=True)``).
Units are strings of the IAU/FITS unit syntax (``deg``, ``arcsec``); columns
without a unit (probabilities, fractions, flags, text) get none.  Where the
catalog's provenance holds ``column_descriptions`` (what ``infer`` writes: what
each probability column is and, for ``p_merger``, the truth it was calibrated
on), those descriptions are the ones given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from galaxy_ray.schema import GZ2_ANSWERS, CatalogColumns as C, class_columns
from galaxy_ray.trees import GZ2

__all__ = ["ColumnInfo", "column_info", "POSITION_UCDS"]


@dataclass(frozen=True)
class ColumnInfo:
    """Unit (or None), UCD (or None) and description of one column."""

    unit: str | None
    ucd: str | None
    description: str


#: UCDs that mark a table's main position (what TOPCAT and Aladin plot and cross-match on).
POSITION_UCDS = {C.RA: "pos.eq.ra;meta.main", C.DEC: "pos.eq.dec;meta.main"}

_PROBABILITY = "stat.probability;src.morph"

_FIXED = {
    C.OBJECT_ID: ColumnInfo(None, "meta.id;meta.main", "object identifier, as the source gave it"),
    C.RA: ColumnInfo("deg", POSITION_UCDS[C.RA], "right ascension (ICRS) of the cutout centre"),
    C.DEC: ColumnInfo("deg", POSITION_UCDS[C.DEC], "declination (ICRS) of the cutout centre"),
    C.HEALPIX: ColumnInfo(None, "pos.healpix", "HEALPix order-29 NESTED index of (ra, dec)"),
    C.MORPHOLOGY: ColumnInfo(None, "src.morph.type", "morphology label (most probable class or GZ2 branch)"),
    C.P_MERGER: ColumnInfo(None, _PROBABILITY, "merger probability (calibrated on validation)"),
    C.IS_MERGER: ColumnInfo(None, "meta.code.class;src.morph", "merger flag: p_merger >= MRGTHR"),
    C.ERROR: ColumnInfo(None, "meta.note", "why the cutout was not classified (null if it was)"),
    C.COVERAGE: ColumnInfo(None, "stat.filling;obs.image", "fraction of the cutout's pixels holding data"),
    C.P_MERGER_STD: ColumnInfo(None, "stat.stdev;stat.probability", "std of p_merger over the 8 TTA views"),
    C.MORPHOLOGY_PROB_STD: ColumnInfo(None, "stat.stdev;stat.probability",
                                      "std of the morphology's probability over the 8 TTA views"),
    "separation_arcsec": ColumnInfo("arcsec", "pos.angDistance", "separation of the cross-matched pair"),
}

_GZ2 = {a.column: ColumnInfo(None, _PROBABILITY, f"GZ2 cumulative vote fraction, {a.kaggle} {a.question} {a.key}")
        for a in GZ2_ANSWERS}
_GZ2.update({name: ColumnInfo(None, _PROBABILITY, f"GZ2 conditional vote fraction, {a.question} {a.key}")
             for a, name in zip(GZ2_ANSWERS, GZ2.fraction_columns)})
_GZ2.update({name: ColumnInfo(None, _PROBABILITY, f"proportion of volunteers who would be asked {q.key}")
             for q, name in zip(GZ2.questions, GZ2.proportion_asked_columns)})



def _tree_columns() -> dict[str, ColumnInfo]:
    """Every tree's columns (GZ2, GZ DECaLS DR5, DR8 / GZ DESI): conditional fractions, proportion
    asked and the 90% interval bounds, each with its UCD and a description naming question and answer."""
    from galaxy_ray.trees import SCHEMAS

    out: dict[str, ColumnInfo] = {}
    # GZ DECaLS DR5 and DR8 / GZ DESI share most column names: the descriptions name no tree
    for schema in {id(s): s for s in SCHEMAS.values()}.values():
        lower, upper = schema.interval_columns
        answers = [(q, a) for q in schema.questions for a in q.answers]
        for (q, a), frac, lo, hi in zip(answers, schema.fraction_columns, lower, upper):
            what = f"'{a.name.removeprefix(q.key + '_')}' to '{q.key}'"
            out.setdefault(frac, ColumnInfo(None, _PROBABILITY, "Galaxy Zoo conditional vote fraction: of the "
                                                                f"volunteers asked, the share answering {what}"))
            out.setdefault(lo, ColumnInfo(None, "stat.probability;stat.min",
                                          f"lower end of the 90% interval of the vote fraction answering {what}"))
            out.setdefault(hi, ColumnInfo(None, "stat.probability;stat.max",
                                          f"upper end of the 90% interval of the vote fraction answering {what}"))
        for q, name in zip(schema.questions, schema.proportion_asked_columns):
            out.setdefault(name, ColumnInfo(None, "stat.probability",
                                            f"proportion of volunteers who would be asked '{q.key}'"))
    return out


_TREES = _tree_columns()


def _described(info: ColumnInfo | None, name: str, provenance: Mapping | None) -> ColumnInfo | None:
    """``info`` with the description the catalog's provenance gives ``name`` (``column_descriptions``), if any."""
    text = ((provenance or {}).get("column_descriptions") or {}).get(name)
    if not text:
        return info
    return ColumnInfo(info.unit if info else None, info.ucd if info else None, str(text))


def column_info(name: str, provenance: Mapping | None = None) -> ColumnInfo | None:
    """Unit, UCD and description of a catalog column; None for a column galaxy-ray did not make.

    Parameters
    ----------
    name : str
        Column name.
    provenance : mapping, optional
        The catalog's provenance: its ``column_descriptions`` (written by
        ``infer``, :func:`galaxy_ray.catalog.galaxy_zoo.column_descriptions`)
        give the description where they name the column; its ``output_names``
        name the class of each ``prob_<class>`` column.

    Returns
    -------
    ColumnInfo or None
        None for a column neither galaxy-ray nor the provenance describes.
    """
    if name in _FIXED:
        info = _FIXED[name]
    elif name in _GZ2:
        info = _GZ2[name]
    elif name in _TREES:
        info = _TREES[name]
    elif name.startswith("prob_"):
        names = (provenance or {}).get("output_names") or []
        classes = dict(zip(class_columns(names), names))
        label = classes.get(name, name[len("prob_"):])
        info = ColumnInfo(None, _PROBABILITY, f"probability of class '{label}'")
    else:
        info = None
    return _described(info, name, provenance)
