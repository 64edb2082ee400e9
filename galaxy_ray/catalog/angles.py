"""One grammar for angles in every command and the API.

An angle is a number with an astropy unit, written as one word or two
(``5arcsec``, ``0.5deg``, ``30arcmin``, ``"2 deg"``); **a bare number is
degrees** in every command (``query``/``stats``/``similar`` ``--cone`` and
``--box``, ``crossmatch --radius``, ``hats --margin``) and for every Python
string.  A Python float keeps the unit its parameter names: ``radius`` is
degrees, ``radius_arcsec`` arcseconds.
"""

from __future__ import annotations

import astropy.units as u

from galaxy_ray.errors import GalaxyRayError

__all__ = ["ANGLE_HELP", "parse_angle", "angle_deg"]

#: What a command's --help says about an angle.
ANGLE_HELP = "an angle: 5arcsec, 30arcmin, 0.5deg; a bare number is degrees"


def parse_angle(text: str | float | u.Quantity, what: str = "angle", default_unit: str = "deg") -> u.Quantity:
    """``text`` as an astropy angle.

    Parameters
    ----------
    text : str, float or astropy.units.Quantity
        ``"5arcsec"``, ``"0.5 deg"``, ``"30arcmin"``, a bare number (in ``default_unit``) or a Quantity.
    what : str
        The option or parameter, for the message (``--radius``).
    default_unit : str
        The unit of a bare number: degrees unless a Python parameter names another.

    Raises
    ------
    GalaxyRayError
        Not a number with an angle unit (one line naming ``what`` and the value).
    """
    if isinstance(text, u.Quantity):
        quantity = text
    else:
        try:
            return float(text) * u.Unit(default_unit)
        except (TypeError, ValueError):
            pass
        try:
            quantity = u.Quantity(str(text).strip())
        except (TypeError, ValueError):
            raise GalaxyRayError(f"{what} {text!r}: give {ANGLE_HELP}") from None
    if not quantity.unit.is_equivalent(u.deg) or not quantity.isscalar:
        raise GalaxyRayError(f"{what} {text!r}: not an angle; give {ANGLE_HELP}")
    return quantity.to(u.deg)


def angle_deg(text: str | float | u.Quantity, what: str = "angle") -> float:
    """:func:`parse_angle` in degrees, a float."""
    return float(parse_angle(text, what).to_value(u.deg))
