"""Sky positions read from tables: degrees or sexagesimal text, checked to lie on the sky.

Catalogs give RA/Dec as numbers in degrees (``187.70592``) or as sexagesimal
text, RA in hours and Dec in degrees (``12:30:49.42``, ``+12:23:28.0``, as in
Hart et al. 2016's ``rastring``/``decstring``; ``12h30m49.42s`` and
``187d42m21s`` carry their own units).  Text is parsed with astropy's
:class:`~astropy.coordinates.Angle`.  An empty cell is an absent position
(null); anything else that is not a position on the sky -- junk text, a Dec
beyond +-90 deg, an RA outside [0, 360) deg, an infinity -- is a
:class:`GalaxyRayError` naming the file, the row's id and the value.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from galaxy_ray import runtime
from galaxy_ray.errors import GalaxyRayError, one_line

#: What a table's positions may look like, for error messages.
FORMS = "degrees, or RA as hh:mm:ss.s and Dec as +dd:mm:ss.s"


def _angles(text: Sequence[str], hours: bool) -> np.ndarray:
    """Degrees of sexagesimal or unit-suffixed strings; ValueError naming the first that fails."""
    import astropy.units as u
    from astropy.coordinates import Angle

    unit = u.hourangle if hours else u.deg
    try:
        return np.asarray(Angle(list(text), unit=unit).deg, dtype=np.float64)
    except Exception:  # astropy raises ValueError subclasses, and others for odd input
        pass
    out = np.empty(len(text))
    for k, value in enumerate(text):
        try:
            out[k] = Angle(value, unit=unit).deg
        except Exception as exc:
            raise _BadValue(k, value, one_line(exc)) from None
    return out


class _BadValue(ValueError):
    def __init__(self, index: int, value: Any, why: str) -> None:
        super().__init__(why)
        self.index, self.value, self.why = index, value, why


def _degrees(values: Any, hours: bool) -> np.ndarray:
    """One column as float64 degrees (NaN where empty); :class:`_BadValue` for a value that is no angle."""
    series = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    text = series.astype("string").str.strip()
    absent = text.isna() | (text == "") | text.str.lower().isin(["nan", "null", "none"])
    out = pd.to_numeric(text.mask(absent), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    needs_parse = np.flatnonzero(~absent.to_numpy() & np.isnan(out))
    if len(needs_parse):
        unique, inverse = np.unique(text.to_numpy(dtype=object)[needs_parse].astype(str), return_inverse=True)
        try:
            out[needs_parse] = _angles(unique.tolist(), hours)[inverse]
        except _BadValue as bad:
            first = needs_parse[np.flatnonzero(inverse == bad.index)[0]]
            raise _BadValue(int(first), bad.value, bad.why) from None
    return out


def _off_sky(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the RA values outside [0, 360) and Dec values beyond +-90 (NaN is absent, not off)."""
    bad_ra = ~np.isnan(ra) & ~((ra >= 0.0) & (ra < 360.0))
    bad_dec = ~np.isnan(dec) & ~(np.abs(dec) <= 90.0)
    return bad_ra, bad_dec


def check_positions(ra: Any, dec: Any, ids: Sequence[Any], where: str, given: tuple[Any, Any] | None = None) -> None:
    """Raise when a numeric RA/Dec (degrees; NaN for absent) lies off the sky.

    Parameters
    ----------
    ra, dec : array-like of float, shape (N,)
        Degrees; NaN marks an absent position.
    ids : sequence, length N
        Each row's object id, for the message.
    where : str
        The file the positions came from.
    given : (ra, dec), optional
        The columns as the file gives them (text), quoted in the message instead of degrees.

    Raises
    ------
    GalaxyRayError
        An RA outside [0, 360) deg, a Dec beyond +-90 deg or an infinity, naming
        the first such row and how many there are.
    """
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    bad_ra, bad_dec = _off_sky(ra, dec)
    rows = np.flatnonzero(bad_ra | bad_dec)
    if not len(rows):
        return
    k = int(rows[0])
    column, value, why = (("ra", ra[k], "RA must lie in [0, 360) deg") if bad_ra[k]
                          else ("dec", dec[k], "Dec must lie in [-90, 90] deg"))
    shown = f"{value:g}" if given is None else repr(str(list(given[0 if column == "ra" else 1])[k]))
    raise GalaxyRayError(
        f"{where}: row object_id={list(ids)[k]}: {column} {shown} is not a sky position ({why}; "
        f"{len(rows)} row{'s' if len(rows) > 1 else ''} like it); fix the table or drop those rows"
    )


def parse_positions(ra: Any, dec: Any, ids: Sequence[Any], where: str) -> tuple[np.ndarray, np.ndarray]:
    """RA/Dec columns of a table (numbers or sexagesimal text) as checked ICRS degrees.

    Parameters
    ----------
    ra, dec : array-like, shape (N,)
        Numbers in degrees, or text: RA in hours (``12:30:49.42``, ``12 30 49.42``)
        and Dec in degrees (``+12:23:28.0``), or either with explicit units
        (``12h30m49.42s``, ``187d42m21s``).  Empty cells, NaN and the words
        ``nan``/``null``/``none`` are absent positions.
    ids : sequence, length N
        Each row's object id, for messages.
    where : str
        The table's URI, for messages.

    Returns
    -------
    ra, dec : numpy.ndarray of float64, shape (N,)
        Degrees; NaN where the table gives no position.

    Raises
    ------
    GalaxyRayError
        A value that is no angle, or a position off the sky (see :func:`check_positions`),
        naming the file, the row's id and the value.
    """
    out = []
    for column, values, hours in (("ra", ra, True), ("dec", dec, False)):
        try:
            out.append(_degrees(values, hours))
        except _BadValue as bad:
            raise GalaxyRayError(
                f"{where}: row object_id={list(ids)[bad.index]}: {column} {bad.value!r} is not a position "
                f"({bad.why}); give {FORMS}"
            ) from None
    check_positions(out[0], out[1], ids, where, given=(ra, dec))
    if pd.api.types.is_numeric_dtype(pd.Series(ra).dtype) and looks_like_hours(out[0], out[1]):
        finite = np.isfinite(out[1])
        runtime.say(f"galaxy-ray: warning: {where}: every RA lies in [0, 24] while Dec spans "
                    f"{np.min(out[1][finite]):.1f} to {np.max(out[1][finite]):.1f} deg: is the ra column in hours? "
                    "galaxy-ray reads numbers as degrees; multiply it by 15, or give hh:mm:ss text")
    return out[0], out[1]


def looks_like_hours(ra: np.ndarray, dec: np.ndarray, min_rows: int = 10) -> bool:
    """True when numeric RA values read as degrees look like hours of RA instead.

    Every finite RA lies in [0, 24] while the Dec values span more degrees than
    the RA values do: a footprint of hours read as degrees is squeezed 15
    times in RA.  A real field within RA 0-24 deg that is taller than wide
    also matches; the caller only warns.

    Parameters
    ----------
    ra, dec : numpy.ndarray of float, shape (N,)
        Degrees (NaN for absent).
    min_rows : int
        Fewer positions than this say nothing.
    """
    keep = np.isfinite(ra) & np.isfinite(dec)
    if keep.sum() < min_rows:
        return False
    ra, dec = ra[keep], dec[keep]
    return bool(ra.max() <= 24.0 and np.ptp(dec) > max(np.ptp(ra), 1.0))
