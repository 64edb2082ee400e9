"""One synthetic galaxy: its draws, votes and pixels put together.

Each galaxy is drawn from its own random stream
``numpy.random.default_rng([seed, index])``, so galaxy ``index`` of survey
``seed`` is the same whatever range, order or process renders it, and at any
cutout size (only the pixel grid changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from galaxy_ray import schema
from galaxy_ray.synthetic.recipes import CLASSES, draw_galaxy
from galaxy_ray.synthetic.render import draw_field, lupton_rgb, paint
from galaxy_ray.synthetic.sky import DEFAULT_FOOTPRINT, REFERENCE_PIXEL_SCALE, check_size, pixel_scale
from galaxy_ray.synthetic.votes import simulate_votes

#: Every synthetic ``object_id`` starts with this: ``synth-<seed>-<index:07d>``.
OBJECT_ID_PREFIX = "synth-"


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

    Raises
    ------
    GalaxyRayError
        ``size`` out of range.
    """
    size = check_size(size)
    rng, galaxy10, (ra, dec), look, recipe = draw_galaxy(seed, index, footprint)
    conditional = simulate_votes(rng, galaxy10, recipe.info)
    field_ = draw_field(rng)
    # pixel noise has its own stream: its number of draws depends on the size
    bands = paint(recipe, look, field_, size, np.random.default_rng([seed, index, 1]))
    return SyntheticGalaxy(
        object_id=f"{OBJECT_ID_PREFIX}{seed}-{index:07d}",
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
    """Galaxies ``start`` .. ``stop - 1`` of survey ``seed``, rendered one at a time.

    Parameters
    ----------
    seed, start, stop, size : int
        As for :func:`render_galaxy`.
    footprint : sequence of 4 floats
        ``(ra_min, ra_max, dec_min, dec_max)`` in degrees.

    Yields
    ------
    SyntheticGalaxy
    """
    for index in range(start, stop):
        yield render_galaxy(seed, index, size, footprint)
