"""Resize and centre-crop 8-bit display images as uint8, with Pillow's compiled resampling.

A display image (JPEG, PNG, TIFF: 8 bits a channel) is resized without ever
becoming float: Pillow's bilinear filter widens its support by the scale
factor when it shrinks an image (antialiasing), which is the filter
torchvision's ``resize(..., antialias=True)`` reproduces on floats.  On real
424-px Galaxy Zoo JPEGs the two agree within 1 of 255 (0.1 on average, at
224, 96 and 64 px; ``jobs/bench_decode.py`` measures it), while Pillow's
bicubic and Lanczos filters differ by up to 19-35 (ringing at bright cores).

Fluxes (FITS, float ``.npy``) are stretched to float colours and resized on
floats by :func:`galaxy_ray.data.transforms.prepare_image`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["resize_uint8", "center_crop_offset", "center_crop_uint8"]


def resize_uint8(rgb: Any, side: int) -> np.ndarray:
    """(H, W, 3) uint8, or a Pillow RGB image -> (side, side, 3) uint8 with Pillow's antialiased bilinear filter.

    An image already of that size comes back unchanged (a model-sized pack
    decodes to exactly the model's resize side, so its bytes pass as they are).
    """
    from PIL import Image

    if isinstance(rgb, np.ndarray):
        if rgb.shape[0] == side and rgb.shape[1] == side:
            return rgb
        rgb = Image.fromarray(np.ascontiguousarray(rgb))  # (H, W, 3) uint8 is RGB
    if rgb.size != (side, side):
        rgb = rgb.resize((int(side), int(side)), Image.Resampling.BILINEAR)
    return np.asarray(rgb)


def center_crop_offset(side: int, size: int) -> int:
    """First row (or column) of a centre crop of ``size`` from ``side`` pixels, as torchvision's ``center_crop``."""
    return int(round((side - size) / 2.0))


def center_crop_uint8(rgb: np.ndarray, size: int) -> np.ndarray:
    """(R, R, 3) -> the central (size, size, 3) (a view; the image itself when ``size`` is R)."""
    top = center_crop_offset(rgb.shape[0], size)
    left = center_crop_offset(rgb.shape[1], size)
    return rgb[top : top + size, left : left + size]
