"""Where a synthetic cutout sits on the sky and how big its pixels are.

A cutout of ``size`` pixels always spans the Galaxy10 DECaLS field of view
(256 pixels of 0.262 arcsec, 67 arcsec across), so the picture is the same at
every size, only resampled.  Galaxies fall uniformly on the sphere inside an
RA/Dec box, the *footprint*.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from galaxy_ray.errors import GalaxyRayError

#: (RA min, RA max, Dec min, Dec max) in degrees: roughly the SDSS north galactic cap.
DEFAULT_FOOTPRINT: tuple[float, float, float, float] = (120.0, 240.0, -5.0, 65.0)
#: The Galaxy10 DECaLS frame: 256 pixels of 0.262 arcsec (DECaLS), 67 arcsec across.
REFERENCE_SIZE = 256
REFERENCE_PIXEL_SCALE = 0.262
MIN_SIZE, MAX_SIZE = 16, 1024


def pixel_scale(size: int) -> float:
    """Arcsec per pixel of a ``size``-pixel cutout (the Galaxy10 DECaLS field of view)."""
    return REFERENCE_PIXEL_SCALE * REFERENCE_SIZE / size


def check_size(size: int) -> int:
    """``size`` as an int when it is a cutout side from :data:`MIN_SIZE` to :data:`MAX_SIZE` pixels.

    Raises
    ------
    GalaxyRayError
        Not an integer, or out of range.
    """
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or not MIN_SIZE <= size <= MAX_SIZE:
        raise GalaxyRayError(f"size={size!r}: the cutout size must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels")
    return int(size)


def check_footprint(footprint: Sequence[float]) -> tuple[float, float, float, float]:
    """``(ra_min, ra_max, dec_min, dec_max)`` as floats, in degrees.

    Raises
    ------
    GalaxyRayError
        Not four numbers, Dec outside [-90, 90] or not increasing, or RA not finite.
    """
    try:
        ra_min, ra_max, dec_min, dec_max = (float(v) for v in footprint)
    except (TypeError, ValueError):
        raise GalaxyRayError(f"footprint={footprint!r}: expected (ra_min, ra_max, dec_min, dec_max) in degrees") from None
    if not -90.0 <= dec_min < dec_max <= 90.0 or not all(map(math.isfinite, (ra_min, ra_max))):
        raise GalaxyRayError(f"footprint={footprint!r}: need -90 <= dec_min < dec_max <= 90 degrees and finite RA")
    return ra_min, ra_max, dec_min, dec_max


def sky_position(rng: np.random.Generator, footprint: Sequence[float]) -> tuple[float, float]:
    """A position uniform on the sphere inside an RA/Dec box.

    Parameters
    ----------
    rng : numpy.random.Generator
        Two draws are taken from it.
    footprint : sequence of 4 floats
        ``(ra_min, ra_max, dec_min, dec_max)`` in degrees; RA may wrap through 0
        (``ra_min > ra_max``).

    Returns
    -------
    (float, float)
        ICRS ``(ra, dec)`` in degrees; RA in [0, 360).  Dec is drawn uniform in
        sin(dec), which is what makes equal sky areas equally likely.
    """
    ra_min, ra_max, dec_min, dec_max = map(float, footprint)
    width = (ra_max - ra_min) % 360.0 or 360.0
    ra = (ra_min + rng.uniform(0.0, width)) % 360.0
    sin_lo, sin_hi = np.sin(np.radians([dec_min, dec_max]))
    dec = float(np.degrees(np.arcsin(rng.uniform(sin_lo, sin_hi))))
    return float(ra), dec
