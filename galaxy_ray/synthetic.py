"""Synthetic survey: galaxy cutouts that look like SDSS / DECaLS, with labels.

The embedded demo and test data of galaxy_ray.  Each galaxy is drawn from its
own random stream ``numpy.random.default_rng([seed, index])``, so galaxy
``index`` of survey ``seed`` is the same whatever range, order or process
renders it, and at any cutout size (only the pixel grid changes).

A galaxy is built from astropy.modeling profiles in three bands (g, r, z):

* Sersic bulges and ellipticals, inclined exponential disks (Sersic n = 1),
  boxy Sersic bars;
* logarithmic spiral arms (:class:`LogSpiral2D`) of 1-4 arms and varying
  pitch; the same model with one arm makes tidal tails;
* edge-on disks with and without bulges, with or without a dust lane;
* round, in-between and cigar-shaped ellipticals;
* mergers (two overlapping galaxies with tidal tails), and disturbed or
  irregular clumpy galaxies (warped, lopsided bodies plus star-forming knots).

The light then passes through a Moffat PSF, sky and photon noise are added,
field stars and faint background galaxies scattered, and the g, r, z bands
coloured with astropy's Lupton et al. (2004) asinh stretch.  Brightness,
size, orientation and colour are drawn independently of the class, so no
class can be told from one pixel statistic such as mean brightness or colour.

Each galaxy carries its Galaxy10 DECaLS class and GZ2 vote fractions: about
40 simulated volunteers walk the GZ2 decision tree with class-dependent
answer probabilities (perturbed per galaxy), so the 37 cumulative fractions
obey the tree exactly and are noisy the way volunteer votes are.

Pixel values are nanomaggies per pixel.  A cutout of ``size`` pixels always
spans the Galaxy10 DECaLS field of view (256 pixels of 0.262 arcsec), so the
pixel scale is ``0.262 * 256 / size`` arcsec and the picture is the same at
every size, only resampled.
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from astropy.modeling import Fittable2DModel, Parameter
from astropy.modeling.models import Gaussian2D, GeneralSersic2D

from galaxy_ray import schema
from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError

__all__ = [
    "FORMATS",
    "DEFAULT_FOOTPRINT",
    "SyntheticGalaxy",
    "Sersic2D",
    "LogSpiral2D",
    "galaxy_class",
    "pixel_scale",
    "render_galaxy",
    "render_range",
    "expected_votes",
    "synthetic_table",
    "synthesize",
    "save_preview",
    "main",
]

#: Output layouts of docs/contracts.md "Source layouts".
FORMATS: tuple[str, ...] = ("galaxy10-h5", "kaggle-gz2", "gz2-catalog", "fits", "manifest", "shards")
#: (RA min, RA max, Dec min, Dec max) in degrees: roughly the SDSS north galactic cap.
DEFAULT_FOOTPRINT: tuple[float, float, float, float] = (120.0, 240.0, -5.0, 65.0)
BANDS = "grz"
#: The Galaxy10 DECaLS frame: 256 pixels of 0.262 arcsec (DECaLS), 67 arcsec across.
REFERENCE_SIZE = 256
REFERENCE_PIXEL_SCALE = 0.262
MIN_SIZE, MAX_SIZE = 16, 1024

#: Sky noise per band, nanomaggies per square arcsec (DECaLS-like depths: z is shallowest).
SKY_SIGMA = np.array([0.030, 0.050, 0.110])
#: Lupton colour stretch: Q, stretch (nanomaggies per square arcsec) and per-band weights (g, r, z)
#: that give a typical galaxy (g - r = 0.65) the warm tone of survey cutouts, star-forming parts blue.
LUPTON_Q = 8.0
LUPTON_STRETCH = 1.0
LUPTON_WEIGHTS = np.array([1.4, 1.0, 0.7])

CLASSES = schema.GALAXY10_CLASSES
(DISTURBED, MERGING, ROUND, IN_BETWEEN, CIGAR, BARRED, TIGHT, LOOSE, EDGE_ON, EDGE_ON_BULGE) = range(10)


# --------------------------------------------------------------------------- models


def _sersic_bn(n: np.ndarray | float) -> np.ndarray | float:
    """b_n with half the light inside r_eff: Ciotti & Bertin (1999) asymptotic expansion.

    Relative error below 1e-4 for n > 0.36; used instead of
    ``scipy.special.gammaincinv`` because scipy is not a dependency.
    """
    return (2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n**2)
            + 131.0 / (1148175.0 * n**3) - 2194697.0 / (30690717750.0 * n**4))


class Sersic2D(GeneralSersic2D):
    """astropy's :class:`~astropy.modeling.functional_models.GeneralSersic2D` without scipy.

    Same parameters (``amplitude`` at ``r_eff``, ``n``, ``x_0``, ``y_0``,
    ``ellip``, ``theta`` in radians, boxiness ``c``: 0 elliptical, > 0 boxy).
    """

    @staticmethod
    def evaluate(x, y, amplitude, r_eff, n, x_0, y_0, ellip, theta, c):
        cos_t, sin_t = np.cos(theta), np.sin(theta)
        dx, dy = x - x_0, y - y_0
        x_maj = (dx * cos_t + dy * sin_t) / r_eff
        x_min = (-dx * sin_t + dy * cos_t) / ((1.0 - ellip) * r_eff)
        if np.all(c == 0):  # elliptical isophotes: skip the slow general powers
            z = np.hypot(x_maj, x_min)
        else:
            expon = 2.0 + c
            z = (np.abs(x_maj) ** expon + np.abs(x_min) ** expon) ** (1.0 / expon)
        return amplitude * np.exp(-_sersic_bn(n) * (z ** (1.0 / n) - 1.0))


class LogSpiral2D(Fittable2DModel):
    """Logarithmic spiral arms on an inclined exponential disk.

    In the disk plane (the ellipse ``ellip``, ``theta`` deprojected) at radius
    r and azimuth phi, arm ``k`` of ``arms`` lies where
    ``phi - ln(r / r_in) / tan(pitch) = phase + 2 pi k / arms``.  The light
    is ``amplitude * [(1 + cos(arms * psi)) / 2] ** sharpness`` times an
    exponential envelope of scale ``r_scale`` that switches on beyond ``r_in``.
    A negative pitch winds the other way.  One arm with a wide pitch and a
    long envelope makes a tidal tail.
    """

    amplitude = Parameter(default=1.0)
    x_0 = Parameter(default=0.0)
    y_0 = Parameter(default=0.0)
    r_in = Parameter(default=5.0)
    r_scale = Parameter(default=10.0)
    ellip = Parameter(default=0.0)
    theta = Parameter(default=0.0)
    arms = Parameter(default=2.0)
    pitch = Parameter(default=0.3)
    phase = Parameter(default=0.0)
    sharpness = Parameter(default=3.0)

    @staticmethod
    def evaluate(x, y, amplitude, x_0, y_0, r_in, r_scale, ellip, theta, arms, pitch, phase, sharpness):
        cos_t, sin_t = np.cos(theta), np.sin(theta)
        dx, dy = x - x_0, y - y_0
        u = dx * cos_t + dy * sin_t
        v = (-dx * sin_t + dy * cos_t) / (1.0 - ellip)
        r = np.hypot(u, v) + 1e-6
        psi = np.arctan2(v, u) - np.log(r / r_in) / np.tan(pitch) - phase
        pattern = (0.5 * (1.0 + np.cos(arms * psi))) ** sharpness
        rise = (r / r_in) ** 2
        envelope = np.exp(-r / r_scale) * -np.expm1(-rise * rise)
        return amplitude * pattern * envelope


# --------------------------------------------------------------------------- galaxy description


@dataclass
class SyntheticGalaxy:
    """One rendered galaxy.

    Attributes
    ----------
    object_id : str
        ``synth-<seed>-<index:07d>``.
    ra, dec : float
        ICRS degrees.
    bands : numpy.ndarray
        float32 (3, size, size): g, r, z in nanomaggies per pixel.
    rgb : numpy.ndarray
        uint8 (size, size, 3), Lupton colour of ``bands``.
    galaxy10 : int
        Galaxy10 DECaLS class code (index into ``schema.GALAXY10_CLASSES``).
    label : str
        Galaxy10 class name.
    votes : numpy.ndarray
        float32 (37,): GZ2 cumulative vote fractions in Kaggle order.
    redshift : float
        Drawn redshift (for the Galaxy10 HDF5 layout; no physical effect).
    pixel_scale : float
        Arcsec per pixel.
    index, seed : int
        Where the galaxy comes from.
    """

    object_id: str
    ra: float
    dec: float
    bands: np.ndarray
    rgb: np.ndarray
    galaxy10: int
    label: str
    votes: np.ndarray
    redshift: float = 0.0
    pixel_scale: float = REFERENCE_PIXEL_SCALE
    index: int = 0
    seed: int = 0


@dataclass
class _Look:
    """Class-independent appearance, in frame units (frame width = 1)."""

    flux: float  # r-band nanomaggies in the cutout
    r_half: float  # half-light radius of the main body
    pa: float  # position angle, radians
    x0: float
    y0: float
    gr: float  # g - r colour, mag
    rz: float  # r - z colour, mag
    psf_fwhm: float  # r-band seeing, arcsec
    redshift: float


@dataclass
class _Component:
    """One astropy model in frame units, the share of the galaxy's light it gets, and its tint."""

    model: Callable[[float], list[_Profile]]  # pixels per frame -> profiles in pixel units
    weight: float
    dcolour: float = 0.0  # added to g - r (and half of it to r - z); > 0 is redder
    warp: tuple[float, float, float, float] | None = None  # amplitude, wavelength, phase x, phase y
    dusty: bool = True  # dimmed by a dust lane when there is one


@dataclass
class _Recipe:
    components: list[_Component]
    info: dict[str, Any] = field(default_factory=dict)
    dust: tuple[float, float, float, float, float] | None = None  # x0, y0, theta, width, tau_r (frame units)


def _check_size(size: int) -> int:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or not MIN_SIZE <= size <= MAX_SIZE:
        raise GalaxyRayError(f"size={size!r}: the cutout size must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels")
    return int(size)


def pixel_scale(size: int) -> float:
    """Arcsec per pixel of a ``size``-pixel cutout (the Galaxy10 DECaLS field of view)."""
    return REFERENCE_PIXEL_SCALE * REFERENCE_SIZE / size


def galaxy_class(seed: int, index: int) -> int:
    """Galaxy10 class code of galaxy ``index`` without rendering it (its stream's first draw)."""
    return int(np.random.default_rng([seed, index]).integers(len(CLASSES)))


def _sky_position(rng: np.random.Generator, footprint: Sequence[float]) -> tuple[float, float]:
    """Uniform on the sphere inside an RA/Dec box (RA may wrap through 0)."""
    ra_min, ra_max, dec_min, dec_max = map(float, footprint)
    width = (ra_max - ra_min) % 360.0 or 360.0
    ra = (ra_min + rng.uniform(0.0, width)) % 360.0
    sin_lo, sin_hi = np.sin(np.radians([dec_min, dec_max]))
    dec = float(np.degrees(np.arcsin(rng.uniform(sin_lo, sin_hi))))
    return float(ra), dec


def _check_footprint(footprint: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        ra_min, ra_max, dec_min, dec_max = (float(v) for v in footprint)
    except (TypeError, ValueError):
        raise GalaxyRayError(f"footprint={footprint!r}: expected (ra_min, ra_max, dec_min, dec_max) in degrees") from None
    if not -90.0 <= dec_min < dec_max <= 90.0 or not all(map(math.isfinite, (ra_min, ra_max))):
        raise GalaxyRayError(f"footprint={footprint!r}: need -90 <= dec_min < dec_max <= 90 degrees and finite RA")
    return ra_min, ra_max, dec_min, dec_max


def _draw_look(rng: np.random.Generator) -> _Look:
    gr = rng.uniform(0.35, 0.95)
    return _Look(
        flux=10 ** ((22.5 - rng.uniform(14.3, 17.3)) / 2.5),
        r_half=float(np.exp(rng.uniform(np.log(0.06), np.log(0.17)))),
        pa=rng.uniform(0.0, np.pi),
        x0=rng.normal(0.0, 0.008),
        y0=rng.normal(0.0, 0.008),
        gr=gr,
        rz=0.45 * gr + rng.uniform(0.05, 0.4),
        psf_fwhm=rng.uniform(1.0, 1.6),
        redshift=float(rng.uniform(0.01, 0.15)),
    )


# --------------------------------------------------------------------------- building blocks


@dataclass(frozen=True)
class _Profile:
    """An astropy model's profile with its parameters in pixels, and where it needs evaluating.

    Rendering calls the model class's ``evaluate`` directly: building an astropy model
    instance deep-copies its parameters (about 1.5 ms), more than evaluating it.
    """

    model: type
    params: tuple[float, ...]  # in ``model.param_names`` order, lengths in pixels
    stamp: tuple[float, float, float] | None = None  # centre x, y and half-width (pixels); None: whole cutout

    def to_model(self):
        """The astropy model instance (for inspection and plotting)."""
        return self.model(*self.params)


def _sersic(x0, y0, r_eff, n, ellip, theta, c=0.0, extent=None) -> Callable[[float], list[_Profile]]:
    """A Sersic profile; ``extent`` (in units of r_eff) limits it to a stamp, for compact parts."""
    def build(px: float) -> list[_Profile]:
        r = max(r_eff * px, 0.35)
        stamp = None if extent is None else (x0 * px, y0 * px, extent * r + 2.0)
        return [_Profile(Sersic2D, (1.0, r, n, x0 * px, y0 * px, ellip, theta, c), stamp)]
    return build


def _spiral(x0, y0, r_in, r_scale, ellip, theta, arms, pitch, phase, sharpness) -> Callable[[float], list[_Profile]]:
    def build(px: float) -> list[_Profile]:
        return [_Profile(LogSpiral2D, (1.0, x0 * px, y0 * px, max(r_in * px, 0.5), r_scale * px, ellip, theta,
                                       arms, pitch, phase, sharpness))]
    return build


def _knots(xs, ys, sigmas, amps) -> Callable[[float], list[_Profile]]:
    """Round Gaussian clumps, each evaluated on a small stamp around itself."""
    def build(px: float) -> list[_Profile]:
        out = []
        for x, y, sigma, amp in zip(xs, ys, sigmas, amps):
            s = max(sigma * px, 0.45)
            out.append(_Profile(Gaussian2D, (amp / s**2, x * px, y * px, s, s, 0.0), (x * px, y * px, 4 * s + 1)))
        return out
    return build


def _inclined_q(rng: np.random.Generator, max_incl_deg: float) -> float:
    """Axis ratio of a thick disk (intrinsic 0.15) at a random inclination (isotropic)."""
    cos_i = rng.uniform(np.cos(np.radians(max_incl_deg)), 1.0)
    return float(np.sqrt(cos_i**2 * (1 - 0.15**2) + 0.15**2))


def _disk_knots(rng, x0, y0, radius, ellip, theta, count, size_range=(0.005, 0.014)) -> tuple:
    """Positions of ``count`` clumps scattered over an inclined disk."""
    r = radius * np.sqrt(rng.uniform(0.02, 1.0, count))
    phi = rng.uniform(0, 2 * np.pi, count)
    u, v = r * np.cos(phi), r * np.sin(phi) * (1 - ellip)
    xs = x0 + u * np.cos(theta) - v * np.sin(theta)
    ys = y0 + u * np.sin(theta) + v * np.cos(theta)
    return xs, ys, rng.uniform(*size_range, count), rng.uniform(0.3, 1.0, count)


def _arm_knots(rng, x0, y0, r_in, r_max, ellip, theta, arms, pitch, phase, count) -> tuple:
    """Star-forming knots strung along logarithmic spiral arms."""
    r = r_in * np.exp(rng.uniform(0.0, np.log(max(r_max / r_in, 1.01)), count))
    k = rng.integers(0, int(arms), count)
    phi = phase + 2 * np.pi * k / arms + np.log(r / r_in) / np.tan(pitch) + rng.normal(0, 0.08, count)
    u, v = r * np.cos(phi), r * np.sin(phi) * (1 - ellip)
    xs = x0 + u * np.cos(theta) - v * np.sin(theta)
    ys = y0 + u * np.sin(theta) + v * np.cos(theta)
    return xs, ys, rng.uniform(0.004, 0.01, count), rng.uniform(0.3, 1.0, count)


# --------------------------------------------------------------------------- classes


def _smooth(rng, look: _Look, n_range, ellip_range, c: float = 0.0) -> _Recipe:
    n = rng.uniform(*n_range)
    ellip = rng.uniform(*ellip_range)
    # elongated bodies are sized along the major axis, so stretch them to keep similar areas
    r_eff = look.r_half / np.sqrt(1 - ellip) * 0.85
    parts = [_Component(_sersic(look.x0, look.y0, r_eff, n, ellip, look.pa, c), 1.0, 0.1)]
    if rng.random() < 0.4:  # a faint outer envelope (cD-like halo or shells)
        parts.append(_Component(_sersic(look.x0, look.y0, 2.2 * r_eff, 1.0, ellip * 0.8, look.pa), 0.2, 0.05))
    return _Recipe(parts, {"ellip": ellip, "n": n})


def _render_round(rng, look):
    return _smooth(rng, look, (2.5, 5.0), (0.0, 0.12))


def _render_in_between(rng, look):
    return _smooth(rng, look, (2.0, 4.5), (0.25, 0.5))


def _render_cigar(rng, look):
    return _smooth(rng, look, (1.2, 3.5), (0.58, 0.78), c=rng.uniform(0.0, 0.4))


def _spiral_galaxy(rng, look: _Look, *, bar: bool, pitch_deg, arms: int, bulge_frac, arm_frac, knots: int,
                   x0=None, y0=None, scale=1.0) -> _Recipe:
    x0 = look.x0 if x0 is None else x0
    y0 = look.y0 if y0 is None else y0
    r_d = look.r_half * scale / 1.68  # disk scale length from its half-light radius
    q = _inclined_q(rng, 62.0)
    ellip, pa = 1.0 - q, look.pa
    pitch = np.radians(pitch_deg) * rng.choice([-1.0, 1.0])
    bar_len = rng.uniform(0.9, 1.5) * r_d
    phase = rng.uniform(0, 2 * np.pi)
    r_in = bar_len if bar else rng.uniform(0.5, 0.9) * r_d
    parts = [
        _Component(_sersic(x0, y0, 1.68 * r_d, 1.0, ellip, pa), 1.0 - bulge_frac - arm_frac),
        _Component(_sersic(x0, y0, rng.uniform(0.12, 0.22) * look.r_half * scale, rng.uniform(1.5, 3.5),
                           ellip * 0.4, pa, extent=8.0), bulge_frac, 0.2),
        _Component(_spiral(x0, y0, r_in, 1.3 * r_d, ellip, pa, arms, pitch, phase, rng.uniform(2.0, 5.0)),
                   arm_frac, -0.3),
    ]
    if bar:
        # the bar lies along the arms' starting azimuth in the disk plane, projected to the sky
        u, v = np.cos(phase), np.sin(phase) * q
        bar_theta = pa + np.arctan2(v, u)
        foreshortening = np.hypot(u, v)
        parts.append(_Component(_sersic(x0, y0, 0.55 * bar_len * foreshortening, 0.5, rng.uniform(0.62, 0.78),
                                        bar_theta, c=0.6, extent=3.0), rng.uniform(0.1, 0.2), 0.1))
    if knots:
        parts.append(_Component(_knots(*_arm_knots(rng, x0, y0, r_in, 3.0 * r_d, ellip, pa, arms, pitch, phase,
                                                   knots)), rng.uniform(0.04, 0.1), -0.45))
    info = {"arms": arms, "pitch_deg": float(abs(np.degrees(pitch))), "bar": bar, "bulge_frac": bulge_frac,
            "ellip": ellip}
    return _Recipe(parts, info)


def _arm_count(rng, weights) -> int:
    return int(rng.choice([1, 2, 3, 4], p=weights))


def _render_barred(rng, look):
    return _spiral_galaxy(rng, look, bar=True, pitch_deg=rng.uniform(12, 28), arms=_arm_count(rng, [0.05, 0.8, 0.1, 0.05]),
                          bulge_frac=rng.uniform(0.08, 0.3), arm_frac=rng.uniform(0.18, 0.35),
                          knots=int(rng.integers(0, 8)))


def _render_tight(rng, look):
    return _spiral_galaxy(rng, look, bar=False, pitch_deg=rng.uniform(7, 14), arms=_arm_count(rng, [0.02, 0.6, 0.25, 0.13]),
                          bulge_frac=rng.uniform(0.15, 0.4), arm_frac=rng.uniform(0.15, 0.3),
                          knots=int(rng.integers(0, 6)))


def _render_loose(rng, look):
    return _spiral_galaxy(rng, look, bar=False, pitch_deg=rng.uniform(22, 40), arms=_arm_count(rng, [0.1, 0.55, 0.25, 0.1]),
                          bulge_frac=rng.uniform(0.02, 0.18), arm_frac=rng.uniform(0.25, 0.42),
                          knots=int(rng.integers(3, 14)))


def _edge_on(rng, look: _Look, bulge: bool) -> _Recipe:
    ellip = rng.uniform(0.8, 0.91)
    r_eff = look.r_half / np.sqrt(1 - ellip) * 0.7
    bulge_frac = rng.uniform(0.25, 0.55) if bulge else 0.0
    parts = [_Component(_sersic(look.x0, look.y0, r_eff, rng.uniform(0.7, 1.2), ellip, look.pa), 1.0 - bulge_frac)]
    if bulge:
        parts.append(_Component(_sersic(look.x0, look.y0, r_eff * rng.uniform(0.2, 0.35), rng.uniform(1.5, 4.0),
                                        rng.uniform(0.05, 0.4), look.pa, c=rng.choice([0.0, 0.0, 0.8])),
                                bulge_frac, 0.2))
    dust = None
    if rng.random() < (0.6 if bulge else 0.3):
        thickness = r_eff * (1 - ellip)
        offset = rng.normal(0, 0.2) * thickness  # not exactly edge-on: the lane sits off the midplane
        dust = (look.x0 - offset * np.sin(look.pa), look.y0 + offset * np.cos(look.pa), look.pa,
                thickness * rng.uniform(0.25, 0.45), rng.uniform(0.3, 0.75))
    return _Recipe(parts, {"ellip": ellip, "bulge_frac": bulge_frac, "dust": dust is not None}, dust)


def _render_edge_on(rng, look):
    return _edge_on(rng, look, bulge=False)


def _render_edge_on_bulge(rng, look):
    return _edge_on(rng, look, bulge=True)


def _render_disturbed(rng, look: _Look) -> _Recipe:
    irregular = rng.random() < 0.4
    pa = look.pa
    warp = (rng.uniform(0.15, 0.35) * look.r_half, rng.uniform(1.5, 3.0) * look.r_half,
            rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi))
    parts: list[_Component] = []
    if irregular:  # low surface brightness body, mostly knots
        ellip = rng.uniform(0.1, 0.5)
        parts.append(_Component(_sersic(look.x0, look.y0, look.r_half * 1.2, rng.uniform(0.5, 1.0), ellip, pa),
                                rng.uniform(0.4, 0.6), -0.1, warp))
        knots = _disk_knots(rng, look.x0, look.y0, 1.6 * look.r_half, ellip, pa, int(rng.integers(6, 16)),
                            (0.006, 0.02))
        parts.append(_Component(_knots(*knots), rng.uniform(0.3, 0.5), -0.35))
    else:  # a warped, lopsided body with a plume
        ellip = rng.uniform(0.1, 0.6)
        parts.append(_Component(_sersic(look.x0, look.y0, look.r_half, rng.uniform(0.8, 2.5), ellip, pa),
                                rng.uniform(0.5, 0.75), 0.05, warp))
        ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.4, 0.9) * look.r_half
        parts.append(_Component(_sersic(look.x0 + dist * np.cos(ang), look.y0 + dist * np.sin(ang),
                                        look.r_half * rng.uniform(0.5, 0.9), rng.uniform(0.6, 1.5),
                                        rng.uniform(0.2, 0.6), rng.uniform(0, np.pi)),
                                rng.uniform(0.15, 0.3), -0.1, warp))
        knots = _disk_knots(rng, look.x0, look.y0, 1.3 * look.r_half, ellip, pa, int(rng.integers(2, 8)))
        parts.append(_Component(_knots(*knots), rng.uniform(0.05, 0.15), -0.35))
        if rng.random() < 0.5:
            parts.append(_tail(rng, look.x0, look.y0, look.r_half, pa, weight=rng.uniform(0.05, 0.12)))
    return _Recipe(parts, {"irregular": irregular, "ellip": ellip})


def _tail(rng, x0, y0, r_half, pa, weight, sense=None) -> _Component:
    sense = rng.choice([-1.0, 1.0]) if sense is None else sense
    model = _spiral(x0, y0, r_in=r_half * rng.uniform(0.8, 1.3), r_scale=r_half * rng.uniform(1.2, 2.2),
                    ellip=rng.uniform(0.0, 0.5), theta=pa, arms=1.0, pitch=sense * np.radians(rng.uniform(18, 35)),
                    phase=rng.uniform(0, 2 * np.pi), sharpness=rng.uniform(6, 14))
    return _Component(model, weight, -0.15)


def _render_merging(rng, look: _Look) -> _Recipe:
    ratio = rng.uniform(0.3, 1.0)  # flux of the second galaxy relative to the first
    late = rng.random() < 0.3  # late stage: two nuclei in one envelope
    sep = look.r_half * (rng.uniform(0.35, 0.7) if late else rng.uniform(1.0, 2.0))
    ang = rng.uniform(0, 2 * np.pi)
    # the light-weighted centre sits near the frame centre
    x1, y1 = look.x0 - sep * ratio / (1 + ratio) * np.cos(ang), look.y0 - sep * ratio / (1 + ratio) * np.sin(ang)
    x2, y2 = x1 + sep * np.cos(ang), y1 + sep * np.sin(ang)
    share = 0.78 / (1 + ratio)
    parts: list[_Component] = []
    for (x, y), frac, scale in (((x1, y1), share, 0.8), ((x2, y2), share * ratio, 0.8 * np.sqrt(ratio))):
        r = look.r_half * scale
        if rng.random() < 0.5:  # a spheroid
            parts.append(_Component(_sersic(x, y, r, rng.uniform(2.0, 4.0), rng.uniform(0.0, 0.4),
                                            rng.uniform(0, np.pi)), frac, 0.1))
        else:  # a disk galaxy with a bulge, tidally warped
            warp = (rng.uniform(0.1, 0.25) * r, rng.uniform(2.0, 3.5) * r, rng.uniform(0, 2 * np.pi),
                    rng.uniform(0, 2 * np.pi))
            ellip, theta = 1 - _inclined_q(rng, 70.0), rng.uniform(0, np.pi)
            parts.append(_Component(_sersic(x, y, r * 1.2, 1.0, ellip, theta), frac * 0.7, -0.05, warp))
            parts.append(_Component(_sersic(x, y, r * 0.25, 2.5, ellip * 0.4, theta, extent=8.0), frac * 0.3, 0.15))
    sense = rng.choice([-1.0, 1.0])
    parts.append(_tail(rng, x1, y1, look.r_half * 0.9, look.pa, rng.uniform(0.08, 0.14), sense))
    if rng.random() < 0.75:
        parts.append(_tail(rng, x2, y2, look.r_half * 0.9 * np.sqrt(ratio), look.pa + np.pi,
                           rng.uniform(0.05, 0.1), sense))
    if late and rng.random() < 0.6:  # shared envelope
        parts.append(_Component(_sersic(look.x0, look.y0, 1.5 * look.r_half, 1.0, rng.uniform(0.1, 0.5),
                                        look.pa), 0.15))
    return _Recipe(parts, {"ratio": ratio, "late": late})


_RENDERERS: dict[int, Callable[[np.random.Generator, _Look], _Recipe]] = {
    DISTURBED: _render_disturbed,
    MERGING: _render_merging,
    ROUND: _render_round,
    IN_BETWEEN: _render_in_between,
    CIGAR: _render_cigar,
    BARRED: _render_barred,
    TIGHT: _render_tight,
    LOOSE: _render_loose,
    EDGE_ON: _render_edge_on,
    EDGE_ON_BULGE: _render_edge_on_bulge,
}


# --------------------------------------------------------------------------- GZ2 votes

# Per class, the probability of each answer among the volunteers who reach a question
# (Kaggle answer order).  Answers not listed for a class take _DEFAULT_PROBS.
_DEFAULT_PROBS: dict[str, tuple[float, ...]] = {
    "smooth_or_features": (0.6, 0.37, 0.03),
    "edgeon": (0.12, 0.88),
    "bar": (0.15, 0.85),
    "spiral": (0.25, 0.75),
    "bulge_prominence": (0.15, 0.4, 0.35, 0.1),
    "odd": (0.15, 0.85),
    "rounded": (0.3, 0.55, 0.15),
    "odd_feature": (0.18, 0.12, 0.15, 0.12, 0.3, 0.05, 0.08),
    "bulge_shape": (0.3, 0.15, 0.55),
    "arms_winding": (0.33, 0.34, 0.33),
    "arms_number": (0.1, 0.3, 0.1, 0.05, 0.05, 0.4),
}
_SPIRAL_PROBS = {
    "smooth_or_features": (0.17, 0.82, 0.01),
    "edgeon": (0.05, 0.95),
    "bar": (0.1, 0.9),
    "spiral": (0.88, 0.12),
    "odd_feature": (0.35, 0.1, 0.15, 0.12, 0.2, 0.03, 0.05),
}
_EDGE_PROBS = {
    "smooth_or_features": (0.28, 0.7, 0.02),
    "edgeon": (0.9, 0.1),
    "spiral": (0.3, 0.7),
    "rounded": (0.03, 0.32, 0.65),
    "odd_feature": (0.08, 0.1, 0.12, 0.1, 0.25, 0.05, 0.3),
}
_CLASS_PROBS: dict[int, dict[str, tuple[float, ...]]] = {
    DISTURBED: {"smooth_or_features": (0.42, 0.53, 0.05), "spiral": (0.35, 0.65), "odd": (0.72, 0.28),
                "bulge_prominence": (0.4, 0.4, 0.15, 0.05),
                "odd_feature": (0.04, 0.04, 0.42, 0.3, 0.12, 0.06, 0.02)},
    MERGING: {"smooth_or_features": (0.5, 0.45, 0.05), "spiral": (0.3, 0.7), "odd": (0.85, 0.15),
              "odd_feature": (0.02, 0.02, 0.17, 0.08, 0.05, 0.63, 0.03)},
    ROUND: {"smooth_or_features": (0.86, 0.12, 0.02), "rounded": (0.8, 0.18, 0.02), "odd": (0.1, 0.9),
            "bulge_prominence": (0.05, 0.25, 0.45, 0.25)},
    IN_BETWEEN: {"smooth_or_features": (0.8, 0.18, 0.02), "rounded": (0.18, 0.74, 0.08), "odd": (0.12, 0.88),
                 "bulge_prominence": (0.05, 0.25, 0.45, 0.25)},
    CIGAR: {"smooth_or_features": (0.65, 0.32, 0.03), "edgeon": (0.6, 0.4), "rounded": (0.03, 0.25, 0.72),
            "odd": (0.14, 0.86)},
    BARRED: dict(_SPIRAL_PROBS, bar=(0.78, 0.22), bulge_prominence=(0.08, 0.45, 0.42, 0.05)),
    TIGHT: dict(_SPIRAL_PROBS, bulge_prominence=(0.05, 0.35, 0.5, 0.1)),
    LOOSE: dict(_SPIRAL_PROBS, bulge_prominence=(0.3, 0.5, 0.18, 0.02)),
    EDGE_ON: dict(_EDGE_PROBS, bulge_shape=(0.1, 0.08, 0.82)),
    EDGE_ON_BULGE: dict(_EDGE_PROBS, bulge_shape=(0.72, 0.18, 0.1)),
}
_QUESTION_KEYS = tuple(q.key for q in schema.GZ2_QUESTIONS)


def _answer_probabilities(galaxy10: int, info: dict[str, Any]) -> dict[str, np.ndarray]:
    """Class-dependent answer probabilities, refined by what was actually drawn."""
    probs = {k: np.asarray(v, dtype=float) for k, v in _DEFAULT_PROBS.items()}
    probs.update({k: np.asarray(v, dtype=float) for k, v in _CLASS_PROBS[galaxy10].items()})
    if "pitch_deg" in info:  # arm winding and number follow the rendered arms
        pitch = info["pitch_deg"]
        tight = np.clip((20.0 - pitch) / 12.0, 0.0, 1.0)
        probs["arms_winding"] = np.array([0.05 + 0.7 * tight, 0.3, 0.05 + 0.7 * (1 - tight)])
        number = np.full(6, 0.03)
        number[info["arms"] - 1] = 0.7
        number[5] = 0.15
        probs["arms_number"] = number
    if info.get("dust"):
        probs["odd"] = np.array([0.3, 0.7])
        probs["odd_feature"] = np.array([0.03, 0.05, 0.07, 0.05, 0.1, 0.02, 0.68])
    return {k: v / v.sum() for k, v in probs.items()}


def _simulate_votes(rng: np.random.Generator, galaxy10: int, info: dict[str, Any]) -> np.ndarray:
    """About 40 volunteers walk the GZ2 tree; returns the 37 conditional fractions."""
    probs = _answer_probabilities(galaxy10, info)
    n_volunteers = int(rng.integers(30, 56))
    counts = np.zeros(len(schema.GZ2_ANSWERS), dtype=np.int64)
    conditional = np.zeros(len(schema.GZ2_ANSWERS))
    for question in schema.GZ2_QUESTIONS:  # parents come before their children
        reached = n_volunteers if question.parent is None else int(counts[question.parent])
        # galaxy-to-galaxy scatter around the class's answer probabilities, then the volunteers' own
        p = rng.dirichlet(probs[question.key] * 25.0 + 0.05)
        votes = rng.multinomial(reached, p)
        counts[question.indices] = votes
        if reached:
            conditional[question.indices] = votes / reached
    return conditional


def _debiased(conditional: np.ndarray, redshift: np.ndarray) -> np.ndarray:
    """Hart et al. (2016)-style debiased fractions: features recovered with redshift."""
    conditional = np.atleast_2d(conditional)
    boost = np.ones_like(conditional)
    for column in ("smooth_or_features_features_or_disk", "spiral_spiral", "bar_bar", "edgeon_yes"):
        boost[:, schema.GZ2_ANSWER_COLUMNS.index(column)] = 1.0 + 3.0 * np.asarray(redshift, dtype=float)
    out = np.zeros_like(conditional)
    for question in schema.GZ2_QUESTIONS:
        values = conditional[:, question.indices] * boost[:, question.indices]
        total = values.sum(axis=-1, keepdims=True)
        out[:, question.indices] = np.divide(values, total, out=np.zeros_like(values), where=total > 0)
    return out


# --------------------------------------------------------------------------- pixels


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (float32: numpy's float32 exp/log/cos are SIMD-fast), origin at the centre."""
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return x - np.float32(c), y - np.float32(c)


def _stamp_slices(stamp: tuple[float, float, float] | None, size: int) -> tuple[slice, slice] | None:
    """Rows and columns of the cutout that a stamp covers; None when it misses the cutout."""
    if stamp is None:
        return slice(None), slice(None)
    x, y, half = stamp
    c = (size - 1) / 2.0
    x0, x1 = max(int(math.floor(x + c - half)), 0), min(int(math.ceil(x + c + half)) + 1, size)
    y0, y1 = max(int(math.floor(y + c - half)), 0), min(int(math.ceil(y + c + half)) + 1, size)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


def _render_profiles(profiles: Iterable[_Profile], size: int, warp=None) -> np.ndarray:
    """Sum of profiles on the cutout grid, each only over its stamp."""
    x, y = _grid(size)
    image = np.zeros((size, size), dtype=np.float32)
    for profile in profiles:
        region = _stamp_slices(None if warp is not None else profile.stamp, size)
        if region is None:
            continue
        xs, ys = x[region], y[region]
        if warp is not None:  # tidal / irregular distortion of the coordinates
            amp, wavelength, phx, phy = warp
            k = 2 * np.pi / (wavelength * size)
            xs, ys = xs + amp * size * np.sin(k * ys + phx), ys + amp * size * np.sin(k * xs + phy)
        image[region] += profile.model.evaluate(xs, ys, *profile.params)
    return image


@lru_cache(maxsize=256)
def _psf_fft(size: int, fwhm_px_centi: int) -> tuple[np.ndarray, int]:
    """FFT of the g, r, z Moffat PSFs (astropy kernels) on the padded grid, and the pad.

    The seeing is worse in the blue: FWHM scales as wavelength^-0.2.
    """
    from astropy.convolution import Moffat2DKernel

    fwhm_r = fwhm_px_centi / 100.0
    beta = 3.5
    half = max(2, int(math.ceil(2.2 * fwhm_r * 1.1)))
    shape = _fft_length(size + 2 * half)
    kernels = []
    for scale in (1.07, 1.0, 0.93):
        gamma = fwhm_r * scale / (2.0 * math.sqrt(2 ** (1 / beta) - 1))
        k = Moffat2DKernel(gamma=gamma, alpha=beta, x_size=2 * half + 1, y_size=2 * half + 1, mode="oversample")
        k.normalize()
        kernels.append(np.fft.rfft2(k.array.astype(np.float32), s=(shape, shape)))
    return np.stack(kernels), half


def _fft_length(n: int) -> int:
    """Smallest length >= n with no prime factor above 5 (a fast FFT size)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _convolve_psf(cube: np.ndarray, fwhm_px: float) -> np.ndarray:
    """Blur the (3, S, S) cube by the PSF: zero-padded (not wrapped) linear convolution.

    The kernels are astropy's; the product is taken with numpy's real FFT directly
    because ``astropy.convolution.convolve_fft`` (NaN handling, complex FFTs) is
    ten times slower and the cube has no NaNs.
    """
    size = cube.shape[-1]
    kernel_fft, half = _psf_fft(size, int(round(fwhm_px * 10)) * 10)  # 0.1 px steps: few kernels to cache
    shape = _fft_length(size + 2 * half)
    # the image sits at the start of the padded grid, the kernel centre at (half, half)
    out = np.fft.irfft2(np.fft.rfft2(cube, s=(shape, shape)) * kernel_fft, s=(shape, shape))
    return out[:, half:half + size, half:half + size]


def _evaluate(component: _Component, size: int) -> np.ndarray:
    return _render_profiles(component.model(float(size)), size, component.warp)


def _band_factors(gr: float, rz: float) -> np.ndarray:
    """Flux in g, r, z relative to r for the given colours."""
    return np.array([10 ** (-0.4 * gr), 1.0, 10 ** (0.4 * rz)])


def _field(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Field stars and faint background galaxies, in frame units (drawn whatever the size)."""
    n_stars = int(rng.poisson(1.0))
    r = rng.uniform(0.18, 0.7, n_stars)  # keep the target itself free of stars
    phi = rng.uniform(0, 2 * np.pi, n_stars)
    stars = {
        "x": np.clip(r * np.cos(phi), -0.49, 0.49), "y": np.clip(r * np.sin(phi), -0.49, 0.49),
        "flux": 10 ** ((22.5 - rng.uniform(15.5, 21.5, n_stars)) / 2.5),
        "gr": rng.uniform(0.2, 1.5, n_stars),
    }
    n_bg = int(rng.poisson(2.0))
    background = {
        "x": rng.uniform(-0.5, 0.5, n_bg), "y": rng.uniform(-0.5, 0.5, n_bg),
        "sigma": rng.uniform(0.004, 0.012, n_bg), "ellip": rng.uniform(0.0, 0.6, n_bg),
        "theta": rng.uniform(0, np.pi, n_bg),
        "flux": 10 ** ((22.5 - rng.uniform(19.0, 22.0, n_bg)) / 2.5),
        "gr": rng.uniform(0.5, 1.4, n_bg),
    }
    return {"stars": stars, "background": background}


def _add_field(cube: np.ndarray, field_: dict[str, dict[str, np.ndarray]], size: int) -> None:
    stars, bg = field_["stars"], field_["background"]
    c = (size - 1) / 2.0
    if len(stars["x"]):
        # point sources spread bilinearly over 4 pixels; the PSF gives them their shape
        fx, fy = stars["x"] * size + c, stars["y"] * size + c
        ix, iy = np.floor(fx).astype(int), np.floor(fy).astype(int)
        dx, dy = fx - ix, fy - iy
        colours = np.array([10 ** (-0.4 * stars["gr"]), np.ones_like(stars["gr"]), 10 ** (0.2 * stars["gr"])])
        for ox, oy, w in ((0, 0, (1 - dx) * (1 - dy)), (1, 0, dx * (1 - dy)), (0, 1, (1 - dx) * dy), (1, 1, dx * dy)):
            px, py = np.clip(ix + ox, 0, size - 1), np.clip(iy + oy, 0, size - 1)
            for b in range(3):
                np.add.at(cube[b], (py, px), w * stars["flux"] * colours[b])
    if len(bg["x"]):
        colours = np.array([10 ** (-0.4 * bg["gr"]), np.ones_like(bg["gr"]), 10 ** (0.2 * bg["gr"])])
        for k in range(len(bg["x"])):
            s, q = max(bg["sigma"][k] * size, 0.45), 1.0 - bg["ellip"][k]
            x, y = bg["x"][k] * size, bg["y"][k] * size
            profile = _Profile(Gaussian2D, (bg["flux"][k] / (2 * np.pi * s * s * q), x, y, s, s * q, bg["theta"][k]),
                               (x, y, 4 * s + 1))
            image = _render_profiles([profile], size)
            cube += colours[:, k, None, None] * image


def _paint(recipe: _Recipe, look: _Look, field_: dict, size: int, noise_rng: np.random.Generator) -> np.ndarray:
    """Bands in nanomaggies per pixel: components, dust, field, PSF, noise."""
    area = pixel_scale(size) ** 2  # square arcsec per pixel
    cube = np.zeros((3, size, size), dtype=np.float32)
    dusty = np.zeros((3, size, size), dtype=np.float32)
    total_weight = sum(c.weight for c in recipe.components)
    for component in recipe.components:
        image = _evaluate(component, size)
        total = float(image.sum())
        if not total > 0:
            continue  # entirely outside the cutout
        rgb = _band_factors(look.gr + component.dcolour, look.rz + 0.5 * component.dcolour)
        rgb *= look.flux * component.weight / total_weight / total
        (dusty if component.dusty else cube)[...] += rgb.astype(np.float32)[:, None, None] * image
    if recipe.dust is not None:
        x0, y0, theta, width, tau = recipe.dust
        lane = _Profile(Gaussian2D, (1.0, x0 * size, y0 * size, 0.45 * size, max(width * size, 0.4), theta))
        dusty *= np.exp(-np.float32(tau) * np.array([1.4, 1.0, 0.6], np.float32)[:, None, None]
                        * _render_profiles([lane], size))
    cube += dusty
    _add_field(cube, field_, size)
    cube = _convolve_psf(cube, look.psf_fwhm / pixel_scale(size))
    sigma = (SKY_SIGMA * area).astype(np.float32)[:, None, None]
    # sky noise plus photon noise of the sources (the galaxy's core gets noisier, not cleaner)
    noise = np.sqrt(sigma * (sigma + np.maximum(cube, 0.0) / 4.0))
    noise *= noise_rng.standard_normal(cube.shape, dtype=np.float32)
    return (cube + noise).astype(np.float32)


def lupton_rgb(bands: np.ndarray, size: int | None = None) -> np.ndarray:
    """uint8 (S, S, 3) colour image of a g, r, z cube with astropy's Lupton stretch."""
    from astropy.visualization import make_lupton_rgb

    size = bands.shape[-1] if size is None else size
    area = pixel_scale(size) ** 2
    g, r, z = (bands[i] * np.float32(LUPTON_WEIGHTS[i]) for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        return make_lupton_rgb(z, r, g, minimum=0.0, stretch=LUPTON_STRETCH * area, Q=LUPTON_Q)


def _draw_galaxy(seed: int, index: int, footprint: Sequence[float]):
    """The random draws that fix a galaxy before its votes: (rng, class, (ra, dec), look, recipe)."""
    rng = np.random.default_rng([seed, index])
    galaxy10 = int(rng.integers(len(CLASSES)))  # first draw: see galaxy_class()
    position = _sky_position(rng, footprint)
    look = _draw_look(rng)
    return rng, galaxy10, position, look, _RENDERERS[galaxy10](rng, look)


def expected_votes(seed: int, index: int, footprint: Sequence[float] = DEFAULT_FOOTPRINT) -> np.ndarray:
    """The answer probabilities galaxy ``index`` was voted from, as 37 cumulative fractions.

    Its ``votes`` scatter around these (galaxy-to-galaxy and volunteer noise that
    the pixels do not show), so the RMSE of these against ``votes`` is the floor
    any model can reach on a synthetic survey.
    """
    _, galaxy10, _, _, recipe = _draw_galaxy(seed, index, footprint)
    probs = _answer_probabilities(galaxy10, recipe.info)
    conditional = np.zeros(len(schema.GZ2_ANSWERS))
    for question in schema.GZ2_QUESTIONS:
        conditional[question.indices] = probs[question.key]
    return schema.conditional_to_cumulative(conditional)


def render_galaxy(seed: int, index: int, size: int,
                  footprint: Sequence[float] = DEFAULT_FOOTPRINT) -> SyntheticGalaxy:
    """Render galaxy ``index`` of the synthetic survey ``seed``.

    Parameters
    ----------
    seed : int
        Survey seed.
    index : int
        Galaxy number (>= 0); the galaxy depends only on ``(seed, index)``.
    size : int
        Cutout side in pixels (16 to 1024).
    footprint : sequence of 4 floats
        ``(ra_min, ra_max, dec_min, dec_max)`` in degrees.

    Returns
    -------
    SyntheticGalaxy
    """
    size = _check_size(size)
    rng, galaxy10, (ra, dec), look, recipe = _draw_galaxy(seed, index, footprint)
    conditional = _simulate_votes(rng, galaxy10, recipe.info)
    field_ = _field(rng)
    # pixel noise has its own stream: its number of draws depends on the size
    bands = _paint(recipe, look, field_, size, np.random.default_rng([seed, index, 1]))
    return SyntheticGalaxy(
        object_id=f"synth-{seed}-{index:07d}",
        ra=ra,
        dec=dec,
        bands=bands,
        rgb=lupton_rgb(bands, size),
        galaxy10=galaxy10,
        label=CLASSES[galaxy10],
        votes=schema.conditional_to_cumulative(conditional).astype(np.float32),
        redshift=look.redshift,
        pixel_scale=pixel_scale(size),
        index=index,
        seed=seed,
    )


def render_range(seed: int, start: int, stop: int, size: int,
                 footprint: Sequence[float] = DEFAULT_FOOTPRINT) -> Iterator[SyntheticGalaxy]:
    """Galaxies ``start`` .. ``stop - 1`` of survey ``seed``."""
    for index in range(start, stop):
        yield render_galaxy(seed, index, size, footprint)


# --------------------------------------------------------------------------- encodings


def encode_png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)  # fast; PNG is lossless anyway
    return buf.getvalue()


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_fits(galaxy: SyntheticGalaxy) -> bytes:
    """The g, r, z cube with a TAN WCS centred on the galaxy and its labels in the header."""
    from astropy.io import fits
    from astropy.wcs import WCS

    size = galaxy.bands.shape[-1]
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [galaxy.ra, galaxy.dec]
    wcs.wcs.crpix = [(size + 1) / 2.0, (size + 1) / 2.0]  # FITS pixels are 1-based: the exact centre
    wcs.wcs.cdelt = [-galaxy.pixel_scale / 3600.0, galaxy.pixel_scale / 3600.0]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    header = wcs.to_header()
    header["BANDS"] = (BANDS, "planes of the cube, blue to red")
    header["OBJECT"] = galaxy.object_id
    header["LABEL"] = (galaxy.label, "Galaxy10 DECaLS class")
    header["GALAXY10"] = (galaxy.galaxy10, "Galaxy10 DECaLS class code")
    header["BUNIT"] = "nanomaggy"
    header["PIXSCALE"] = (galaxy.pixel_scale, "arcsec per pixel")
    header["REDSHIFT"] = galaxy.redshift
    header["LUPQ"] = (LUPTON_Q, "make_lupton_rgb Q used for the synthetic PNGs")
    header["LUPSTR"] = (LUPTON_STRETCH * galaxy.pixel_scale**2, "make_lupton_rgb stretch, nanomaggy")
    for band, weight in zip(BANDS, LUPTON_WEIGHTS):
        header[f"LUPW_{band.upper()}"] = (float(weight), f"{band}-band weight before the stretch")
    header["ORIGIN"] = "galaxy-ray synthetic survey"
    buf = io.BytesIO()
    fits.PrimaryHDU(data=galaxy.bands, header=header).writeto(buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- tables


def _table_schema():
    import pyarrow as pa

    C = schema.CatalogColumns
    return pa.schema([
        (C.OBJECT_ID, pa.string()), (C.RA, pa.float64()), (C.DEC, pa.float64()), (C.IMAGE, pa.binary()),
        (C.SOURCE, pa.string()), (C.VOTES, pa.list_(pa.float32())), (C.LABEL, pa.string()),
    ])


def _source_name(seed: int, index: int) -> str:
    return f"synthetic(seed={seed})[{index}]"


def _galaxies_to_table(galaxies: Sequence[SyntheticGalaxy]):
    import pyarrow as pa

    C = schema.CatalogColumns
    votes = np.stack([g.votes for g in galaxies]) if galaxies else np.zeros((0, 37), np.float32)
    return pa.Table.from_pydict({
        C.OBJECT_ID: [g.object_id for g in galaxies],
        C.RA: [g.ra for g in galaxies],
        C.DEC: [g.dec for g in galaxies],
        C.IMAGE: [encode_png(g.rgb) for g in galaxies],
        C.SOURCE: [_source_name(g.seed, g.index) for g in galaxies],
        C.VOTES: pa.FixedSizeListArray.from_arrays(pa.array(votes.reshape(-1), pa.float32()), 37).cast(
            pa.list_(pa.float32())),
        C.LABEL: [g.label for g in galaxies],
    }, schema=_table_schema())


def synthetic_table(n: int, size: int = 64, seed: int = 0, start: int = 0,
                    footprint: Sequence[float] = DEFAULT_FOOTPRINT):
    """The cutout table (docs/contracts.md) of galaxies ``start .. start + n - 1``.

    ``image`` holds PNG bytes of the Lupton colour image; ``votes`` the 37 GZ2
    cumulative fractions; ``label`` the Galaxy10 class name.

    Returns
    -------
    pyarrow.Table
    """
    n = _check_count(n)
    return _galaxies_to_table(list(render_range(seed, start, start + n, _check_size(size), footprint)))


def _check_count(n: int, what: str = "n") -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise GalaxyRayError(f"{what}={n!r}: must be a positive integer")
    return int(n)


# --------------------------------------------------------------------------- survey layouts


@dataclass(frozen=True)
class _Job:
    out: str
    fmt: str
    seed: int
    start: int
    stop: int
    size: int
    footprint: tuple[float, float, float, float]
    shard: int = 0


def _kaggle_id(index: int) -> int:
    return 100000 + index


def _dr7_objid(seed: int, index: int) -> int:
    # SDSS DR7 objids are 18-digit integers starting 587...; ours stay unique per (seed, index)
    return 587_000_000_000_000_000 + (seed % 10**7) * 10**9 + index


def _meta(galaxy: SyntheticGalaxy) -> dict[str, Any]:
    return {"object_id": galaxy.object_id, "ra": galaxy.ra, "dec": galaxy.dec, "galaxy10": galaxy.galaxy10,
            "label": galaxy.label, "votes": galaxy.votes, "redshift": galaxy.redshift,
            "pixel_scale": galaxy.pixel_scale, "index": galaxy.index}


def _run_job(job: _Job) -> dict[str, Any]:
    """Render one range of galaxies and write its per-object files (or shard); return its metadata."""
    galaxies = list(render_range(job.seed, job.start, job.stop, job.size, job.footprint))
    written: list[str] = []
    if job.fmt == "shards":
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(_galaxies_to_table(galaxies), buf, compression="zstd")
        written.append(storage.join(job.out, f"part-{job.shard:05d}.parquet"))
        storage.write_bytes_atomic(written[-1], buf.getvalue())
    for g in galaxies:
        if job.fmt == "fits":
            written.append(storage.join(job.out, f"{g.object_id}.fits"))
            storage.write_bytes_atomic(written[-1], encode_fits(g))
        elif job.fmt == "manifest":
            written.append(storage.join(job.out, "images", f"{g.object_id}.png"))
            storage.write_bytes_atomic(written[-1], encode_png(g.rgb))
        elif job.fmt == "kaggle-gz2":
            written.append(storage.join(job.out, "images_training_rev1", f"{_kaggle_id(g.index)}.jpg"))
            storage.write_bytes_atomic(written[-1], encode_jpeg(g.rgb))
        elif job.fmt == "gz2-catalog":
            written.append(storage.join(job.out, "images", f"{_dr7_objid(g.seed, g.index)}.jpg"))
            storage.write_bytes_atomic(written[-1], encode_jpeg(g.rgb))
    meta = [_meta(g) for g in galaxies]
    rgb = np.stack([g.rgb for g in galaxies]) if job.fmt == "galaxy10-h5" else None
    return {"meta": meta, "rgb": rgb, "written": written}


def _jobs(out: str, fmt: str, n: int, size: int, seed: int, rows_per_shard: int, workers: int,
          footprint) -> list[_Job]:
    if fmt == "shards":
        step = rows_per_shard
    else:  # a few chunks per worker keeps the pool busy to the end
        step = max(1, min(250, math.ceil(n / (4 * workers))))
    return [_Job(out, fmt, seed, start, min(start + step, n), size, footprint, shard)
            for shard, start in enumerate(range(0, n, step))]


def _map_jobs(jobs: list[_Job], workers: int) -> Iterator[dict[str, Any]]:
    """Results in job order, from this process or a pool of ``workers`` processes."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_run_job, jobs)
        return
    # spawn, not fork: the parent may hold threads (s3fs, Ray) that fork would copy half-way
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context,
                             initializer=_limit_threads) as pool:
        yield from pool.map(_run_job, jobs)


def _limit_threads() -> None:
    # one numpy thread per worker process: the pool provides the parallelism
    os.environ["OMP_NUM_THREADS"] = "1"


def _write_csv(uri: str, frame) -> None:
    storage.write_bytes_atomic(uri, frame.to_csv(index=False).encode())


def _votes_frame(meta: list[dict[str, Any]]):
    import pandas as pd

    votes = np.stack([m["votes"] for m in meta]).astype(np.float32)
    return pd.DataFrame(votes, columns=list(schema.GZ2_KAGGLE_COLUMNS))


def _write_tables(out: str, fmt: str, meta: list[dict[str, Any]], seed: int) -> list[str]:
    """The CSV tables that list the per-object files."""
    import pandas as pd

    if fmt == "kaggle-gz2":
        frame = pd.concat([pd.DataFrame({"GalaxyID": [_kaggle_id(m["index"]) for m in meta]}), _votes_frame(meta)],
                          axis=1)
        uri = storage.join(out, "training_solutions_rev1.csv")
    elif fmt == "gz2-catalog":
        ids = [_dr7_objid(seed, m["index"]) for m in meta]
        conditional = schema.cumulative_to_conditional(np.stack([m["votes"] for m in meta]).astype(np.float64))
        debiased = _debiased(conditional, np.array([m["redshift"] for m in meta]))
        columns: dict[str, Any] = {
            "dr7objid": np.array(ids, dtype=np.int64), "ra": [m["ra"] for m in meta], "dec": [m["dec"] for m in meta],
            "image": [f"images/{i}.jpg" for i in ids],
        }
        for j, stem in enumerate(schema.GZ2_HART_COLUMNS):
            columns[f"{stem}_fraction"] = conditional[:, j]
            columns[f"{stem}_debiased"] = debiased[:, j]
        frame = pd.DataFrame(columns)
        uri = storage.join(out, "gz2_catalog.csv")
    elif fmt == "manifest":
        frame = pd.concat([pd.DataFrame({
            "object_id": [m["object_id"] for m in meta], "ra": [m["ra"] for m in meta],
            "dec": [m["dec"] for m in meta], "path": [f"images/{m['object_id']}.png" for m in meta],
            "label": [m["label"] for m in meta],
        }), _votes_frame(meta)], axis=1)
        uri = storage.join(out, "manifest.csv")
    else:
        return []
    _write_csv(uri, frame)
    return [uri]


class _H5Writer:
    """Galaxy10 DECaLS HDF5 layout, filled chunk by chunk (a local temp file uploaded for s3://)."""

    def __init__(self, out: str, n: int, size: int):
        import h5py

        self.uri = storage.join(out, "Galaxy10_DECals.h5")
        storage.makedirs(out)
        directory = None if storage.is_remote(out) else storage.strip_scheme(out)
        fd, self.tmp = tempfile.mkstemp(suffix=".h5.tmp", dir=directory)
        os.close(fd)
        self.file = h5py.File(self.tmp, "w")
        self.images = self.file.create_dataset("images", (n, size, size, 3), dtype="uint8",
                                               chunks=(1, size, size, 3))
        self.columns = {name: self.file.create_dataset(name, (n,), dtype=dtype) for name, dtype in
                        (("ans", "uint8"), ("ra", "float64"), ("dec", "float64"), ("redshift", "float32"),
                         ("pxscale", "float32"))}
        self.row = 0

    def add(self, result: dict[str, Any]) -> None:
        rows = slice(self.row, self.row + len(result["meta"]))
        self.images[rows] = result["rgb"]
        for name, key in (("ans", "galaxy10"), ("ra", "ra"), ("dec", "dec"), ("redshift", "redshift"),
                          ("pxscale", "pixel_scale")):
            self.columns[name][rows] = [m[key] for m in result["meta"]]
        self.row = rows.stop

    def close(self) -> str:
        self.file.close()
        if storage.is_remote(self.uri):
            fs, path = storage.fsspec_filesystem(self.uri)
            try:
                fs.put_file(self.tmp, path)
            finally:
                os.unlink(self.tmp)
        else:
            os.replace(self.tmp, storage.strip_scheme(self.uri))
        return self.uri

    def abort(self) -> None:
        try:
            self.file.close()
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


_STALE_PATTERNS = {
    "shards": ["part-*.parquet"],
    "fits": ["synth-*.fits"],
    "manifest": ["images/synth-*.png"],
    "kaggle-gz2": ["images_training_rev1/*.jpg"],
    "gz2-catalog": ["images/587*.jpg"],
    "galaxy10-h5": [],
}


def _remove_stale(out: str, fmt: str, written: set[str]) -> int:
    """Delete files of this layout left by an earlier, larger run into the same directory."""
    fs, root = storage.fsspec_filesystem(out)
    keep = {storage.strip_scheme(w) if not storage.is_remote(w) else w[len("s3://"):] for w in written}
    removed = 0
    for pattern in _STALE_PATTERNS[fmt]:
        for path in fs.glob(f"{root}/{pattern}"):
            if path not in keep:
                fs.rm_file(path)
                removed += 1
    return removed


def synthesize(out: str, n: int, size: int = 128, fmt: str = "shards", seed: int = 0, preview: str | None = None,
               rows_per_shard: int = 1000, *, workers: int | None = None,
               footprint: Sequence[float] = DEFAULT_FOOTPRINT) -> str:
    """Write a synthetic survey of ``n`` galaxies in one of the source layouts.

    Parameters
    ----------
    out : str
        Output directory, local or ``s3://``.
    n : int
        Number of galaxies (indices 0 .. n - 1).
    size : int
        Cutout side in pixels.
    fmt : str
        One of :data:`FORMATS`; the files are those of docs/contracts.md "Source layouts".
    seed : int
        Survey seed.
    preview : str, optional
        Also write a labelled grid PNG of a few galaxies of each class here.
    rows_per_shard : int
        Rows per Parquet file (``shards`` format).
    workers : int, optional
        Processes rendering in parallel (default: the CPU count); 1 renders in this process.
    footprint : sequence of 4 floats
        ``(ra_min, ra_max, dec_min, dec_max)`` in degrees.

    Returns
    -------
    str
        ``out``.
    """
    if fmt not in FORMATS:
        raise GalaxyRayError(f"format {fmt!r} is unknown; choose one of {', '.join(FORMATS)}")
    n, size = _check_count(n), _check_size(size)
    rows_per_shard = _check_count(rows_per_shard, "rows_per_shard")
    footprint = _check_footprint(footprint)
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    if not storage.is_remote(out) and os.path.isfile(storage.strip_scheme(out)):
        raise GalaxyRayError(f"{out}: is a file; the synthetic survey needs a directory")
    storage.makedirs(out)
    jobs = _jobs(out, fmt, n, size, seed, rows_per_shard, workers, footprint)
    h5 = _H5Writer(out, n, size) if fmt == "galaxy10-h5" else None
    meta: list[dict[str, Any]] = []
    written: set[str] = set()
    try:
        for result in _map_jobs(jobs, workers):
            meta.extend(result["meta"])
            written.update(result["written"])
            if h5 is not None:
                h5.add(result)
    except BaseException:
        if h5 is not None:
            h5.abort()
        raise
    if h5 is not None:
        written.add(h5.close())
    written.update(_write_tables(out, fmt, meta, seed))
    _remove_stale(out, fmt, written)
    if preview:
        save_preview(_preview_galaxies(seed, n, min(size, 128), footprint), preview)
    return out


def _preview_galaxies(seed: int, n: int, size: int, footprint, per_class: int = 4) -> list[SyntheticGalaxy]:
    """Up to ``per_class`` galaxies of each class among the first 2000 indices, class by class."""
    chosen: dict[int, list[int]] = {k: [] for k in range(len(CLASSES))}
    for index in range(min(n, 2000)):
        picks = chosen[galaxy_class(seed, index)]
        if len(picks) < per_class:
            picks.append(index)
    return [render_galaxy(seed, i, size, footprint) for k in sorted(chosen) for i in chosen[k]]


def save_preview(galaxies: Iterable[SyntheticGalaxy], path: str, ncols: int = 8) -> str:
    """A labelled grid PNG of galaxies (class name under each tile), local or ``s3://``.

    Returns
    -------
    str
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    galaxies = list(galaxies)
    if not galaxies:
        raise GalaxyRayError(f"{path}: no galaxies to preview")
    ncols = min(ncols, len(galaxies))
    nrows = math.ceil(len(galaxies) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.8 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, g in zip(axes.ravel(), galaxies):
        ax.imshow(g.rgb, interpolation="nearest")
        ax.set_title(g.label, fontsize=7)
    fig.suptitle(f"synthetic survey: {len(galaxies)} cutouts, {galaxies[0].rgb.shape[0]} px, "
                 f"{galaxies[0].pixel_scale:.3f} arcsec/px", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    storage.write_bytes_atomic(path, buf.getvalue())
    return path


# --------------------------------------------------------------------------- command line


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as one :class:`GalaxyRayError` line, not usage + exit."""

    def error(self, message: str):  # type: ignore[override]
        raise GalaxyRayError(f"synth: {message}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="galaxy-ray synth",
        description="Render a synthetic survey of labelled galaxy cutouts (Galaxy10 class and GZ2 votes).",
    )
    p.add_argument("out", help="output directory, local or s3://")
    p.add_argument("--n", type=int, default=1000, help="number of galaxies (default 1000)")
    p.add_argument("--size", type=int, default=128, help="cutout side in pixels (default 128)")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="shards", help="layout to write")
    p.add_argument("--seed", type=int, default=0, help="survey seed (default 0)")
    p.add_argument("--preview", default=None, help="also write a labelled grid PNG here")
    p.add_argument("--rows-per-shard", type=int, default=1000, help="rows per Parquet shard (default 1000)")
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: CPU count)")
    p.add_argument("--footprint", type=float, nargs=4, default=DEFAULT_FOOTPRINT,
                   metavar=("RA_MIN", "RA_MAX", "DEC_MIN", "DEC_MAX"), help="sky box in degrees")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray synth OUT --n N --size PIXELS --format FMT --seed S [--preview grid.png]``."""
    import time

    args = build_parser().parse_args(argv)

    t0 = time.perf_counter()
    out = synthesize(args.out, args.n, args.size, args.fmt, args.seed, args.preview, args.rows_per_shard,
                     workers=args.workers, footprint=args.footprint)
    seconds = time.perf_counter() - t0
    print(f"wrote {args.n} synthetic {args.size}x{args.size} cutouts (seed {args.seed}) as {args.fmt} to {out} "
          f"in {seconds:.1f} s ({args.n / seconds:.0f} cutouts/s): {_describe(args.fmt, args.n, args.rows_per_shard)}")
    if args.preview:
        print(f"preview grid: {args.preview}")
    return 0


def _describe(fmt: str, n: int, rows_per_shard: int) -> str:
    return {
        "galaxy10-h5": "Galaxy10_DECals.h5",
        "kaggle-gz2": f"training_solutions_rev1.csv + {n} images_training_rev1/<GalaxyID>.jpg",
        "gz2-catalog": f"gz2_catalog.csv + {n} images/<dr7objid>.jpg",
        "fits": f"{n} <object_id>.fits",
        "manifest": f"manifest.csv + {n} images/<object_id>.png",
        "shards": f"{math.ceil(n / rows_per_shard)} part-NNNNN.parquet",
    }[fmt]


if __name__ == "__main__":
    from galaxy_ray.cli import run_entry_point

    sys.exit(run_entry_point(main))
