"""Sky regions (cones and RA/Dec boxes) and their HEALPix covers.

A region's *cover* is a set of half-open ranges ``[lo, hi)`` of order-29
NESTED HEALPix indices holding every point of the region: the Multi-Order
Coverage map (MOC) of the region at a coarse order, from mocpy, expressed at
order 29 (``MOC.to_depth29_ranges``).  Spatial queries read only the Parquet
row groups whose ``_healpix_29`` statistics meet the cover, then keep the rows
that the exact test (:meth:`Cone.contains`, :meth:`Box.contains`) accepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle, Latitude, Longitude, angular_separation

from galaxy_ray.errors import GalaxyRayError

__all__ = ["Cone", "Box", "Ranges", "in_ranges", "as_region"]

#: Sorted, disjoint half-open ranges ``[lo, hi)`` of order-29 indices (two int64 arrays).
Ranges = tuple[np.ndarray, np.ndarray]

#: Side of a HEALPix cell at order 0, in degrees (sqrt(4 pi / 12) rad).
_ORDER0_SIDE_DEG = math.degrees(math.sqrt(4 * math.pi / 12))
#: Widening of every region before the HEALPix cover, in degrees, so that
#: floating-point rounding at a cell edge can never drop a row (the exact
#: cut afterwards removes the extra rows).
_COVER_MARGIN_DEG = 1e-6
#: About how many tiles (each covered by one cone) a box is cut into (see Box.cover).
_BOX_TILES = 64


def _cover_depth(size_deg: float, max_depth: int = 12) -> int:
    """Coarse HEALPix order whose cells are about half ``size_deg`` across."""
    if size_deg <= 0:
        return max_depth
    return int(min(max_depth, max(0, math.ceil(math.log2(2 * _ORDER0_SIDE_DEG / size_deg)))))


def _cones_cover(ra: np.ndarray, dec: np.ndarray, radius: np.ndarray, depth: int) -> Ranges | None:
    """Cover of the union of cones (degrees) at ``depth``; None when one is half the sky or more."""
    radius = np.asarray(radius, dtype=np.float64) + _COVER_MARGIN_DEG
    if radius.max() >= 90:
        return None  # half the sky or more: pruning cannot pay
    from mocpy import MOC  # imports matplotlib and networkx: paid only when a region is searched

    lon, lat = Longitude(np.mod(ra, 360.0), unit=u.deg), Latitude(dec, unit=u.deg)
    if radius.size == 1:
        moc = MOC.from_cone(lon=lon[0], lat=lat[0], radius=Angle(radius[0], u.deg), max_depth=depth)
    else:
        moc = MOC.from_cones(lon=lon, lat=lat, radius=Angle(radius, u.deg), max_depth=depth,
                             union_strategy="large_cones")
    ranges = moc.to_depth29_ranges.astype(np.int64)  # < 12 * 4**29 < 2**63
    return ranges[:, 0], ranges[:, 1]


def in_ranges(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Boolean mask: ``values`` inside one of the sorted, disjoint ``[lo, hi)`` ranges.

    Parameters
    ----------
    values : numpy.ndarray of int64, shape (N,)
    lo, hi : numpy.ndarray of int64, shape (R,)
        A cover, as :meth:`Cone.cover` returns it.

    Returns
    -------
    numpy.ndarray of bool, shape (N,)
    """
    k = np.searchsorted(lo, values, side="right") - 1
    inside = k >= 0
    inside[inside] = values[inside] < hi[k[inside]]
    return inside


@dataclass(frozen=True)
class Cone:
    """All positions within ``radius`` degrees of (``ra``, ``dec``) degrees (ICRS)."""

    ra: float
    dec: float
    radius: float

    def __post_init__(self) -> None:
        for name in ("ra", "dec", "radius"):
            if not math.isfinite(getattr(self, name)):
                raise GalaxyRayError(f"cone {name} {getattr(self, name)!r}: not a finite number of degrees")
        if not -90.0 <= self.dec <= 90.0:
            raise GalaxyRayError(f"cone Dec {self.dec:g}: outside [-90, 90] degrees")
        if self.radius <= 0:
            raise GalaxyRayError(f"cone radius {self.radius:g}: must be > 0 degrees")
        if self.radius > 180:
            raise GalaxyRayError(f"cone radius {self.radius:g}: must be <= 180 degrees")

    def cover(self) -> Ranges | None:
        """Ranges of ``_healpix_29`` that hold every point of the cone (None: the whole sky)."""
        return _cones_cover(np.array([self.ra]), np.array([self.dec]), np.array([self.radius]),
                            _cover_depth(self.radius))

    def contains(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Exact test by angular separation (astropy's Vincenty formula); NaN is outside."""
        sep = angular_separation(np.radians(ra), np.radians(dec), math.radians(self.ra), math.radians(self.dec))
        with np.errstate(invalid="ignore"):
            return np.degrees(sep) <= self.radius


def _band_tiles(lo: float, width: float, dec0: float, dec1: float, side: float) -> np.ndarray:
    """RA edges of the tiles of one Dec band, each about ``side`` degrees wide and at most 90."""
    widest = 1.0 if dec0 <= 0.0 <= dec1 else max(math.cos(math.radians(dec0)), math.cos(math.radians(dec1)))
    # tiles at most 90 degrees wide, so that their farthest points are corners
    n_ra = max(1, math.ceil(width * widest / side), math.ceil(width / 90.0))
    return lo + width * np.arange(n_ra + 1) / n_ra


def _box_tile_cones(lo: float, width: float, dec_min: float, dec_max: float) -> tuple[np.ndarray, ...]:
    """Centres and radii (degrees) of the cones through the corners of about ``_BOX_TILES`` tiles."""
    d0, d1 = math.radians(dec_min), math.radians(dec_max)
    area = math.degrees(math.radians(width)) * math.degrees(math.sin(d1) - math.sin(d0))  # deg^2
    side = max(math.sqrt(max(area, 0.0) / _BOX_TILES), 1e-4)
    bands = np.linspace(dec_min, dec_max, max(1, math.ceil((dec_max - dec_min) / side)) + 1)
    ra0, ra1, b0, b1 = [], [], [], []
    for lo_dec, hi_dec in zip(bands[:-1], bands[1:]):
        edges = _band_tiles(lo, width, float(lo_dec), float(hi_dec), side)
        ra0.append(edges[:-1])
        ra1.append(edges[1:])
        b0.append(np.full(edges.size - 1, lo_dec))
        b1.append(np.full(edges.size - 1, hi_dec))
    ra0, ra1, b0, b1 = (np.radians(np.concatenate(x)) for x in (ra0, ra1, b0, b1))
    ra_c, dec_c = (ra0 + ra1) / 2, (b0 + b1) / 2
    corners_ra = np.stack([ra0, ra1, ra0, ra1], axis=1)
    corners_dec = np.stack([b0, b0, b1, b1], axis=1)
    radius = np.degrees(angular_separation(corners_ra, corners_dec, ra_c[:, None], dec_c[:, None])).max(axis=1)
    return np.degrees(ra_c), np.degrees(dec_c), np.maximum(radius, 1e-6)


@dataclass(frozen=True)
class Box:
    """Positions with ``ra_min <= RA <= ra_max`` and ``dec_min <= Dec <= dec_max`` (degrees).

    ``ra_min > ra_max`` (after wrapping to [0, 360)) is a box across RA = 0/360,
    e.g. ``Box(350, 10, -5, 5)``; a span of 360 degrees or more is every RA.
    """

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float

    def __post_init__(self) -> None:
        for name in ("ra_min", "ra_max", "dec_min", "dec_max"):
            if not math.isfinite(getattr(self, name)):
                raise GalaxyRayError(f"box {name} {getattr(self, name)!r}: not a finite number of degrees")
        for name in ("dec_min", "dec_max"):
            if not -90.0 <= getattr(self, name) <= 90.0:
                raise GalaxyRayError(f"box {name} {getattr(self, name):g}: outside [-90, 90] degrees")
        if self.dec_min > self.dec_max:
            raise GalaxyRayError(f"box Dec range {self.dec_min:g} > {self.dec_max:g}: give DEC_MIN first")

    @property
    def full_ra(self) -> bool:
        """True when the box spans every RA."""
        return self.ra_max - self.ra_min >= 360.0

    def _ra_bounds(self) -> tuple[float, float]:
        return self.ra_min % 360.0, self.ra_max % 360.0

    def cover(self) -> Ranges | None:
        """Ranges of ``_healpix_29`` that hold every point of the box (None: the whole sky).

        The box is cut into about :data:`_BOX_TILES` tiles of similar angular
        size, and the cover is that of the union of the cones through each
        tile's corners.  mocpy's ``MOC.from_zone`` (an RA/Dec zone directly) is
        not used: in mocpy 0.21, as in cdshealpix 0.9's ``zone_search``, it
        misses cells of zones near the poles (RA 0-10, Dec 86-90 loses about 60%
        of the points inside; Dec 80-86 about 75%).
        """
        lo, hi = self._ra_bounds()
        width = 360.0 if self.full_ra else (hi - lo) % 360.0
        if width >= 360.0 and self.dec_min <= -90.0 and self.dec_max >= 90.0:
            return None
        ra, dec, radius = _box_tile_cones(lo, width, self.dec_min, self.dec_max)
        return _cones_cover(ra, dec, radius, _cover_depth(float(radius.max())))

    def contains(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """Exact test on RA/Dec ranges, inclusive, across RA = 0/360 when needed; NaN is outside."""
        with np.errstate(invalid="ignore"):
            in_dec = (dec >= self.dec_min) & (dec <= self.dec_max)
            if self.full_ra:
                return in_dec & np.isfinite(ra)
            lo, hi = self._ra_bounds()
            ra = np.mod(ra, 360.0)
            in_ra = (ra >= lo) & (ra <= hi) if lo <= hi else (ra >= lo) | (ra <= hi)
        return in_dec & in_ra


def as_region(cone: Sequence[float | str] | Cone | None, box: Sequence[float | str] | Box | None) -> Cone | Box | None:
    """The region of a query: ``cone`` (ra, dec, radius) or ``box`` (ra_min, ra_max, dec_min, dec_max).

    Each value is an angle (:mod:`galaxy_ray.catalog.angles`): a number in degrees, or a string
    such as ``"5arcsec"``, ``"30arcmin"`` or ``"0.5deg"``.

    Raises
    ------
    GalaxyRayError
        Both are given, or the numbers are not a valid region.
    """
    if cone is not None and box is not None:
        raise GalaxyRayError("give --cone or --box, not both")
    if isinstance(cone, (Cone, Box)):
        return cone
    if isinstance(box, Box):
        return box
    from galaxy_ray.catalog.angles import angle_deg

    if cone is not None:
        if len(cone) != 3:
            raise GalaxyRayError(f"--cone {' '.join(map(str, cone))}: give RA DEC RADIUS")
        return Cone(*(angle_deg(v, f"--cone {w}") for v, w in zip(cone, ("RA", "DEC", "RADIUS"))))
    if box is not None:
        if len(box) != 4:
            raise GalaxyRayError(f"--box {' '.join(map(str, box))}: give RA_MIN RA_MAX DEC_MIN DEC_MAX")
        return Box(*(angle_deg(v, "--box") for v in box))
    return None
