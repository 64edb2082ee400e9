"""A labelled grid of synthetic cutouts, to see what a survey looks like."""

from __future__ import annotations

import io
import math
from typing import Iterable, Sequence

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.synthetic.galaxy import SyntheticGalaxy, render_galaxy
from galaxy_ray.synthetic.recipes import CLASSES, galaxy_class


def preview_galaxies(seed: int, n: int, size: int, footprint: Sequence[float],
                     per_class: int = 4) -> list[SyntheticGalaxy]:
    """Up to ``per_class`` galaxies of each class among the first 2000 of ``n``, class by class.

    Classes are found with :func:`galaxy_class` (one draw each), so only the
    galaxies shown are rendered.
    """
    chosen: dict[int, list[int]] = {k: [] for k in range(len(CLASSES))}
    for index in range(min(n, 2000)):
        picks = chosen[galaxy_class(seed, index)]
        if len(picks) < per_class:
            picks.append(index)
    return [render_galaxy(seed, i, size, footprint) for k in sorted(chosen) for i in chosen[k]]


def save_preview(galaxies: Iterable[SyntheticGalaxy], path: str, ncols: int = 8) -> str:
    """A labelled grid PNG of galaxies (class name above each tile), local or ``s3://``.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    GalaxyRayError
        No galaxies.
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
