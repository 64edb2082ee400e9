"""The light profiles galaxies are built from: astropy models, and builders that size them.

:class:`Sersic2D` (bulges, ellipticals, exponential disks with n = 1, boxy
bars) and :class:`LogSpiral2D` (spiral arms; one arm makes a tidal tail) are
astropy :class:`~astropy.modeling.Fittable2DModel` s; star-forming clumps are
astropy's ``Gaussian2D``.  A recipe describes a galaxy in *frame units* (the
cutout is 1 wide) so it does not depend on the cutout size; a builder turns
that description into :class:`Profile` s in pixels once the size is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from astropy.modeling import Fittable2DModel, Parameter
from astropy.modeling.models import Gaussian2D, GeneralSersic2D

#: pixels per frame -> profiles in pixel units
Builder = Callable[[float], "list[Profile]"]


def sersic_bn(n: np.ndarray | float) -> np.ndarray | float:
    """b_n such that half the light of a Sersic profile of index ``n`` lies inside r_eff.

    The Ciotti & Bertin (1999, A&A 352, 447) asymptotic expansion, relative
    error below 1e-4 for n > 0.36.  A closed form, because astropy's
    ``GeneralSersic2D`` calls ``scipy.special.gammaincinv`` on every evaluation.
    """
    return (2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n**2)
            + 131.0 / (1148175.0 * n**3) - 2194697.0 / (30690717750.0 * n**4))


class Sersic2D(GeneralSersic2D):
    """astropy's :class:`~astropy.modeling.functional_models.GeneralSersic2D` with a closed-form b_n.

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
        return amplitude * np.exp(-sersic_bn(n) * (z ** (1.0 / n) - 1.0))


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


@dataclass(frozen=True)
class Profile:
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


def sersic(x0, y0, r_eff, n, ellip, theta, c=0.0, extent=None) -> Builder:
    """A Sersic profile in frame units; ``extent`` (in units of r_eff) limits it to a stamp, for compact parts."""
    def build(px: float) -> list[Profile]:
        r = max(r_eff * px, 0.35)  # much narrower than a pixel, the light would fall between pixel centres
        stamp = None if extent is None else (x0 * px, y0 * px, extent * r + 2.0)
        return [Profile(Sersic2D, (1.0, r, n, x0 * px, y0 * px, ellip, theta, c), stamp)]
    return build


def spiral(x0, y0, r_in, r_scale, ellip, theta, arms, pitch, phase, sharpness) -> Builder:
    """Logarithmic spiral arms (:class:`LogSpiral2D`) in frame units."""
    def build(px: float) -> list[Profile]:
        return [Profile(LogSpiral2D, (1.0, x0 * px, y0 * px, max(r_in * px, 0.5), r_scale * px, ellip, theta,
                                      arms, pitch, phase, sharpness))]
    return build


def knots(xs, ys, sigmas, amps) -> Builder:
    """Round Gaussian clumps in frame units, each evaluated on a small stamp around itself."""
    def build(px: float) -> list[Profile]:
        out = []
        for x, y, sigma, amp in zip(xs, ys, sigmas, amps):
            s = max(sigma * px, 0.45)
            out.append(Profile(Gaussian2D, (amp / s**2, x * px, y * px, s, s, 0.0), (x * px, y * px, 4 * s + 1)))
        return out
    return build
