"""Synthetic galaxies as bytes: PNG, JPEG and FITS files, and rows of the cutout table."""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import pyarrow as pa

from galaxy_ray import schema
from galaxy_ray.data.sources import CUTOUT_SCHEMA
from galaxy_ray.data.sources import fits as fits_source
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.synthetic.galaxy import SyntheticGalaxy
from galaxy_ray.synthetic.render import BANDS, LUPTON_Q, LUPTON_STRETCH, LUPTON_WEIGHTS


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (H, W, 3) image, at the fastest compression (PNG is lossless anyway)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    """JPEG bytes of a uint8 (H, W, 3) image (the Kaggle and SDSS cutouts are JPEGs)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_fits(galaxy: SyntheticGalaxy) -> bytes:
    """A FITS file of the g, r, z cube with a TAN WCS centred on the galaxy and its labels in the header.

    Returns
    -------
    bytes
        One primary HDU: float32 (3, S, S) nanomaggies; ``OBJECT``, ``LABEL``,
        ``GALAXY10``, ``PIXSCALE``, ``REDSHIFT`` and the Lupton stretch used for
        the colour images (``LUPQ``, ``LUPSTR``, ``LUPW_G/R/Z``) in the header.
    """
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
    header[fits_source.OBJECT_CARD] = galaxy.object_id
    header[fits_source.LABEL_CARD] = (galaxy.label, "Galaxy10 DECaLS class")
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


def source_name(seed: int, index: int) -> str:
    """The cutout table's ``source`` of a synthetic galaxy: ``synthetic(seed=S)[I]``."""
    return f"synthetic(seed={seed})[{index}]"


def cutout_table(galaxies: Sequence[SyntheticGalaxy]) -> pa.Table:
    """Galaxies as rows of the cutout table (docs/contracts.md), images as PNG bytes.

    Returns
    -------
    pyarrow.Table
        :data:`galaxy_ray.data.sources.CUTOUT_SCHEMA`: ``votes`` the 37 GZ2
        cumulative fractions, ``label`` the Galaxy10 class name.
    """
    n_votes = len(schema.GZ2_KAGGLE_COLUMNS)
    votes = np.stack([g.votes for g in galaxies]) if galaxies else np.zeros((0, n_votes), np.float32)
    return pa.Table.from_pydict({
        C.OBJECT_ID: [g.object_id for g in galaxies],
        C.RA: [g.ra for g in galaxies],
        C.DEC: [g.dec for g in galaxies],
        C.IMAGE: [encode_png(g.rgb) for g in galaxies],
        C.SOURCE: [source_name(g.seed, g.index) for g in galaxies],
        C.VOTES: pa.FixedSizeListArray.from_arrays(pa.array(votes.reshape(-1), pa.float32()), n_votes).cast(
            pa.list_(pa.float32())),
        C.LABEL: [g.label for g in galaxies],
    }, schema=CUTOUT_SCHEMA)
