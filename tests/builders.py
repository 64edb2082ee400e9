"""Cutout bytes the tests build: one definition of each, shared by every test module.

Import as ``from builders import encode_image, noise_png, fits_bytes`` (``tests/`` is on
``sys.path`` beside ``conftest.py``).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode_image(pixels: np.ndarray | Image.Image, fmt: str = "PNG", **options) -> bytes:
    """``pixels`` (an array Pillow takes, or an image) encoded as ``fmt`` (PNG, JPEG, TIFF, ...)."""
    buf = io.BytesIO()
    (pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)).save(buf, fmt, **options)
    return buf.getvalue()


def noise_png(seed: int = 0, side: int = 16) -> bytes:
    """A ``side`` x ``side`` RGB PNG of uniform noise in [20, 235): a real image with signal, no blank."""
    return encode_image(np.random.default_rng(seed).integers(20, 235, (side, side, 3), dtype=np.uint8))


def fits_bytes(cube: np.ndarray, compressed: bool = False) -> bytes:
    """``cube`` as float32 FITS: a primary HDU, or losslessly tile-compressed (``CompImageHDU`` in HDU 1)."""
    from astropy.io import fits

    buf = io.BytesIO()
    data = np.asarray(cube).astype(np.float32)
    if compressed:
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, compression_type="GZIP_2",
                                                            quantize_level=0.0)]).writeto(buf)
    else:
        fits.PrimaryHDU(data).writeto(buf)
    return buf.getvalue()
