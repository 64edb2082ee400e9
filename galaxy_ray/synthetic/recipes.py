"""Per-class recipes: which components a galaxy of each Galaxy10 class is drawn with.

Every galaxy first draws its class, then its sky position, then a
class-independent :class:`Look` (brightness, size, orientation, colour,
seeing), then its class's recipe.  Because brightness, size, orientation and
colour come from the same distributions whatever the class, no class can be
told from one pixel statistic such as mean brightness or colour.

* round, in-between and cigar-shaped ellipticals (Sersic bodies, some with a
  faint outer envelope);
* barred, tight and loose spirals: an inclined exponential disk, a bulge,
  1-4 logarithmic arms of varying pitch, a boxy bar, star-forming knots;
* edge-on disks with and without bulges, with or without a dust lane;
* disturbed galaxies (warped, lopsided bodies, plumes) and irregulars
  (clumpy, low surface brightness);
* mergers: two overlapping galaxies with tidal tails.

All lengths are in frame units (the cutout is 1 wide).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from galaxy_ray import schema
from galaxy_ray.synthetic.profiles import Builder, knots, sersic, spiral
from galaxy_ray.synthetic.sky import sky_position

CLASSES = schema.GALAXY10_CLASSES
#: Galaxy10 DECaLS class codes, in the order of ``schema.GALAXY10_CLASSES``.
(DISTURBED, MERGING, ROUND, IN_BETWEEN, CIGAR, BARRED, TIGHT, LOOSE, EDGE_ON, EDGE_ON_BULGE) = range(10)


@dataclass
class Look:
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
class Component:
    """One astropy model in frame units, the share of the galaxy's light it gets, and its tint."""

    model: Builder
    weight: float
    dcolour: float = 0.0  # added to g - r (and half of it to r - z); > 0 is redder
    warp: tuple[float, float, float, float] | None = None  # amplitude, wavelength, phase x, phase y
    dusty: bool = True  # dimmed by a dust lane when there is one


@dataclass
class Recipe:
    """A galaxy's components, what was drawn for them (``info``, which the votes follow), and its dust lane."""

    components: list[Component]
    info: dict[str, Any] = field(default_factory=dict)
    dust: tuple[float, float, float, float, float] | None = None  # x0, y0, theta, width, tau_r (frame units)


class Draw(NamedTuple):
    """The random draws that fix a galaxy before its votes and pixels."""

    rng: np.random.Generator  # the galaxy's stream, positioned after the recipe
    galaxy10: int
    position: tuple[float, float]  # ICRS (ra, dec), degrees
    look: Look
    recipe: Recipe


def galaxy_class(seed: int, index: int) -> int:
    """Galaxy10 class code of galaxy ``index`` of survey ``seed`` without rendering it.

    It is the first draw of the galaxy's stream ``numpy.random.default_rng([seed, index])``.
    """
    return int(np.random.default_rng([seed, index]).integers(len(CLASSES)))


def draw_galaxy(seed: int, index: int, footprint: Sequence[float]) -> Draw:
    """Class, sky position, look and recipe of galaxy ``index`` of survey ``seed``.

    Parameters
    ----------
    seed, index : int
        The galaxy's stream is ``numpy.random.default_rng([seed, index])``, so the
        draws do not depend on which range, order or process renders it.
    footprint : sequence of 4 floats
        ``(ra_min, ra_max, dec_min, dec_max)`` in degrees.

    Returns
    -------
    Draw
        With ``rng`` left where the votes' and the field's draws continue.
    """
    rng = np.random.default_rng([seed, index])
    galaxy10 = int(rng.integers(len(CLASSES)))  # first draw: see galaxy_class()
    position = sky_position(rng, footprint)
    look = _draw_look(rng)
    return Draw(rng, galaxy10, position, look, RECIPES[galaxy10](rng, look))


def _draw_look(rng: np.random.Generator) -> Look:
    gr = rng.uniform(0.35, 0.95)
    return Look(
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


def _smooth(rng, look: Look, n_range, ellip_range, c: float = 0.0) -> Recipe:
    n = rng.uniform(*n_range)
    ellip = rng.uniform(*ellip_range)
    # elongated bodies are sized along the major axis, so stretch them to keep similar areas
    r_eff = look.r_half / np.sqrt(1 - ellip) * 0.85
    parts = [Component(sersic(look.x0, look.y0, r_eff, n, ellip, look.pa, c), 1.0, 0.1)]
    if rng.random() < 0.4:  # a faint outer envelope (cD-like halo or shells)
        parts.append(Component(sersic(look.x0, look.y0, 2.2 * r_eff, 1.0, ellip * 0.8, look.pa), 0.2, 0.05))
    return Recipe(parts, {"ellip": ellip, "n": n})


def _round(rng, look):
    return _smooth(rng, look, (2.5, 5.0), (0.0, 0.12))


def _in_between(rng, look):
    return _smooth(rng, look, (2.0, 4.5), (0.25, 0.5))


def _cigar(rng, look):
    return _smooth(rng, look, (1.2, 3.5), (0.58, 0.78), c=rng.uniform(0.0, 0.4))


def _spiral_galaxy(rng, look: Look, *, bar: bool, pitch_deg, arms: int, bulge_frac, arm_frac, knot_count: int,
                   x0=None, y0=None, scale=1.0) -> Recipe:
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
        Component(sersic(x0, y0, 1.68 * r_d, 1.0, ellip, pa), 1.0 - bulge_frac - arm_frac),
        Component(sersic(x0, y0, rng.uniform(0.12, 0.22) * look.r_half * scale, rng.uniform(1.5, 3.5),
                         ellip * 0.4, pa, extent=8.0), bulge_frac, 0.2),
        Component(spiral(x0, y0, r_in, 1.3 * r_d, ellip, pa, arms, pitch, phase, rng.uniform(2.0, 5.0)),
                  arm_frac, -0.3),
    ]
    if bar:
        # the bar lies along the arms' starting azimuth in the disk plane, projected to the sky
        u, v = np.cos(phase), np.sin(phase) * q
        bar_theta = pa + np.arctan2(v, u)
        foreshortening = np.hypot(u, v)
        parts.append(Component(sersic(x0, y0, 0.55 * bar_len * foreshortening, 0.5, rng.uniform(0.62, 0.78),
                                      bar_theta, c=0.6, extent=3.0), rng.uniform(0.1, 0.2), 0.1))
    if knot_count:
        parts.append(Component(knots(*_arm_knots(rng, x0, y0, r_in, 3.0 * r_d, ellip, pa, arms, pitch, phase,
                                                 knot_count)), rng.uniform(0.04, 0.1), -0.45))
    info = {"arms": arms, "pitch_deg": float(abs(np.degrees(pitch))), "bar": bar, "bulge_frac": bulge_frac,
            "ellip": ellip}
    return Recipe(parts, info)


def _arm_count(rng, weights) -> int:
    return int(rng.choice([1, 2, 3, 4], p=weights))


def _barred(rng, look):
    return _spiral_galaxy(rng, look, bar=True, pitch_deg=rng.uniform(12, 28),
                          arms=_arm_count(rng, [0.05, 0.8, 0.1, 0.05]), bulge_frac=rng.uniform(0.08, 0.3),
                          arm_frac=rng.uniform(0.18, 0.35), knot_count=int(rng.integers(0, 8)))


def _tight(rng, look):
    return _spiral_galaxy(rng, look, bar=False, pitch_deg=rng.uniform(7, 14),
                          arms=_arm_count(rng, [0.02, 0.6, 0.25, 0.13]), bulge_frac=rng.uniform(0.15, 0.4),
                          arm_frac=rng.uniform(0.15, 0.3), knot_count=int(rng.integers(0, 6)))


def _loose(rng, look):
    return _spiral_galaxy(rng, look, bar=False, pitch_deg=rng.uniform(22, 40),
                          arms=_arm_count(rng, [0.1, 0.55, 0.25, 0.1]), bulge_frac=rng.uniform(0.02, 0.18),
                          arm_frac=rng.uniform(0.25, 0.42), knot_count=int(rng.integers(3, 14)))


def _edge_on(rng, look: Look, bulge: bool) -> Recipe:
    ellip = rng.uniform(0.8, 0.91)
    r_eff = look.r_half / np.sqrt(1 - ellip) * 0.7
    bulge_frac = rng.uniform(0.25, 0.55) if bulge else 0.0
    parts = [Component(sersic(look.x0, look.y0, r_eff, rng.uniform(0.7, 1.2), ellip, look.pa), 1.0 - bulge_frac)]
    if bulge:
        parts.append(Component(sersic(look.x0, look.y0, r_eff * rng.uniform(0.2, 0.35), rng.uniform(1.5, 4.0),
                                      rng.uniform(0.05, 0.4), look.pa, c=rng.choice([0.0, 0.0, 0.8])),
                               bulge_frac, 0.2))
    dust = None
    if rng.random() < (0.6 if bulge else 0.3):
        thickness = r_eff * (1 - ellip)
        offset = rng.normal(0, 0.2) * thickness  # not exactly edge-on: the lane sits off the midplane
        dust = (look.x0 - offset * np.sin(look.pa), look.y0 + offset * np.cos(look.pa), look.pa,
                thickness * rng.uniform(0.25, 0.45), rng.uniform(0.3, 0.75))
    return Recipe(parts, {"ellip": ellip, "bulge_frac": bulge_frac, "dust": dust is not None}, dust)


def _edge_on_disk(rng, look):
    return _edge_on(rng, look, bulge=False)


def _edge_on_bulge(rng, look):
    return _edge_on(rng, look, bulge=True)


def _disturbed(rng, look: Look) -> Recipe:
    irregular = rng.random() < 0.4
    pa = look.pa
    warp = (rng.uniform(0.15, 0.35) * look.r_half, rng.uniform(1.5, 3.0) * look.r_half,
            rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi))
    parts: list[Component] = []
    if irregular:  # low surface brightness body, mostly knots
        ellip = rng.uniform(0.1, 0.5)
        parts.append(Component(sersic(look.x0, look.y0, look.r_half * 1.2, rng.uniform(0.5, 1.0), ellip, pa),
                               rng.uniform(0.4, 0.6), -0.1, warp))
        clumps = _disk_knots(rng, look.x0, look.y0, 1.6 * look.r_half, ellip, pa, int(rng.integers(6, 16)),
                             (0.006, 0.02))
        parts.append(Component(knots(*clumps), rng.uniform(0.3, 0.5), -0.35))
    else:  # a warped, lopsided body with a plume
        ellip = rng.uniform(0.1, 0.6)
        parts.append(Component(sersic(look.x0, look.y0, look.r_half, rng.uniform(0.8, 2.5), ellip, pa),
                               rng.uniform(0.5, 0.75), 0.05, warp))
        ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.4, 0.9) * look.r_half
        parts.append(Component(sersic(look.x0 + dist * np.cos(ang), look.y0 + dist * np.sin(ang),
                                      look.r_half * rng.uniform(0.5, 0.9), rng.uniform(0.6, 1.5),
                                      rng.uniform(0.2, 0.6), rng.uniform(0, np.pi)),
                               rng.uniform(0.15, 0.3), -0.1, warp))
        clumps = _disk_knots(rng, look.x0, look.y0, 1.3 * look.r_half, ellip, pa, int(rng.integers(2, 8)))
        parts.append(Component(knots(*clumps), rng.uniform(0.05, 0.15), -0.35))
        if rng.random() < 0.5:
            parts.append(_tail(rng, look.x0, look.y0, look.r_half, pa, weight=rng.uniform(0.05, 0.12)))
    return Recipe(parts, {"irregular": irregular, "ellip": ellip})


def _tail(rng, x0, y0, r_half, pa, weight, sense=None) -> Component:
    sense = rng.choice([-1.0, 1.0]) if sense is None else sense
    model = spiral(x0, y0, r_in=r_half * rng.uniform(0.8, 1.3), r_scale=r_half * rng.uniform(1.2, 2.2),
                   ellip=rng.uniform(0.0, 0.5), theta=pa, arms=1.0, pitch=sense * np.radians(rng.uniform(18, 35)),
                   phase=rng.uniform(0, 2 * np.pi), sharpness=rng.uniform(6, 14))
    return Component(model, weight, -0.15)


def _merging(rng, look: Look) -> Recipe:
    ratio = rng.uniform(0.3, 1.0)  # flux of the second galaxy relative to the first
    late = rng.random() < 0.3  # late stage: two nuclei in one envelope
    sep = look.r_half * (rng.uniform(0.35, 0.7) if late else rng.uniform(1.0, 2.0))
    ang = rng.uniform(0, 2 * np.pi)
    # the light-weighted centre sits near the frame centre
    x1, y1 = look.x0 - sep * ratio / (1 + ratio) * np.cos(ang), look.y0 - sep * ratio / (1 + ratio) * np.sin(ang)
    x2, y2 = x1 + sep * np.cos(ang), y1 + sep * np.sin(ang)
    share = 0.78 / (1 + ratio)
    parts: list[Component] = []
    for (x, y), frac, scale in (((x1, y1), share, 0.8), ((x2, y2), share * ratio, 0.8 * np.sqrt(ratio))):
        r = look.r_half * scale
        if rng.random() < 0.5:  # a spheroid
            parts.append(Component(sersic(x, y, r, rng.uniform(2.0, 4.0), rng.uniform(0.0, 0.4),
                                          rng.uniform(0, np.pi)), frac, 0.1))
        else:  # a disk galaxy with a bulge, tidally warped
            warp = (rng.uniform(0.1, 0.25) * r, rng.uniform(2.0, 3.5) * r, rng.uniform(0, 2 * np.pi),
                    rng.uniform(0, 2 * np.pi))
            ellip, theta = 1 - _inclined_q(rng, 70.0), rng.uniform(0, np.pi)
            parts.append(Component(sersic(x, y, r * 1.2, 1.0, ellip, theta), frac * 0.7, -0.05, warp))
            parts.append(Component(sersic(x, y, r * 0.25, 2.5, ellip * 0.4, theta, extent=8.0), frac * 0.3, 0.15))
    sense = rng.choice([-1.0, 1.0])
    parts.append(_tail(rng, x1, y1, look.r_half * 0.9, look.pa, rng.uniform(0.08, 0.14), sense))
    if rng.random() < 0.75:
        parts.append(_tail(rng, x2, y2, look.r_half * 0.9 * np.sqrt(ratio), look.pa + np.pi,
                           rng.uniform(0.05, 0.1), sense))
    if late and rng.random() < 0.6:  # shared envelope
        parts.append(Component(sersic(look.x0, look.y0, 1.5 * look.r_half, 1.0, rng.uniform(0.1, 0.5),
                                      look.pa), 0.15))
    return Recipe(parts, {"ratio": ratio, "late": late})


RECIPES: dict[int, Callable[[np.random.Generator, Look], Recipe]] = {
    DISTURBED: _disturbed,
    MERGING: _merging,
    ROUND: _round,
    IN_BETWEEN: _in_between,
    CIGAR: _cigar,
    BARRED: _barred,
    TIGHT: _tight,
    LOOSE: _loose,
    EDGE_ON: _edge_on_disk,
    EDGE_ON_BULGE: _edge_on_bulge,
}
