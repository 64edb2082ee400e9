"""Synthetic survey: galaxy cutouts that look like SDSS / DECaLS, with labels.

The embedded demo and test data of galaxy_ray.  Each galaxy is drawn from its
own random stream ``numpy.random.default_rng([seed, index])``, so galaxy
``index`` of survey ``seed`` is the same whatever range, order or process
renders it, and at any cutout size (only the pixel grid changes).

The stages, one module each:

* :mod:`.sky`: footprint, sky positions, cutout sizes and pixel scale;
* :mod:`.profiles`: astropy light profiles (Sersic, logarithmic spiral, Gaussian knots);
* :mod:`.recipes`: what each Galaxy10 class is built from;
* :mod:`.votes`: GZ2 volunteers walking the decision tree;
* :mod:`.render`: pixels: dust, field objects, Moffat PSF, noise, Lupton colour;
* :mod:`.galaxy`: one galaxy put together (:func:`render_galaxy`);
* :mod:`.encode`: PNG / JPEG / FITS bytes and the cutout table;
* :mod:`.layouts`: each input format's files and tables;
* :mod:`.survey`: a whole survey in parallel processes (:func:`synthesize`);
* :mod:`.preview`, :mod:`.cli`: the preview grid and ``galaxy-ray synth``.

Brightness, size, orientation and colour are drawn independently of the
class, so no class can be told from one pixel statistic.  Each galaxy carries
its Galaxy10 DECaLS class and GZ2 vote fractions (37 cumulative fractions that
obey the tree exactly and are noisy the way volunteer votes are).

Pixel values are nanomaggies per pixel.  A cutout of ``size`` pixels always
spans the Galaxy10 DECaLS field of view (256 pixels of 0.262 arcsec), so the
pixel scale is ``0.262 * 256 / size`` arcsec and the picture is the same at
every size, only resampled.
"""

from __future__ import annotations

from galaxy_ray.synthetic.cli import main
from galaxy_ray.synthetic.galaxy import SyntheticGalaxy, render_galaxy, render_range
from galaxy_ray.synthetic.layouts import FORMATS
from galaxy_ray.synthetic.preview import save_preview
from galaxy_ray.synthetic.profiles import LogSpiral2D, Sersic2D
from galaxy_ray.synthetic.recipes import galaxy_class
from galaxy_ray.synthetic.sky import DEFAULT_FOOTPRINT, pixel_scale, sky_position
from galaxy_ray.synthetic.survey import synthesize, synthetic_table
from galaxy_ray.synthetic.votes import expected_votes

__all__ = [
    "FORMATS",
    "DEFAULT_FOOTPRINT",
    "SyntheticGalaxy",
    "Sersic2D",
    "LogSpiral2D",
    "galaxy_class",
    "pixel_scale",
    "sky_position",
    "render_galaxy",
    "render_range",
    "expected_votes",
    "synthetic_table",
    "synthesize",
    "save_preview",
    "main",
]
