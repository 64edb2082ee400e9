"""Cutout bytes to pixels: JPEG / PNG through Pillow, FITS band cubes and float
``.npy`` cubes through astropy's Lupton et al. (2004) asinh colour stretch,
uint8 ``.npy`` as raw RGB.  Every decoder returns float32 (H, W, 3) in [0, 1]
and fails with a one-line :class:`DecodeError` naming the cutout's source.
"""

from __future__ import annotations

import io

import numpy as np

from galaxy_ray.errors import GalaxyRayError, one_line

__all__ = ["DecodeError", "detect_encoding", "decode_image", "lupton_rgb"]

_MAGIC = {
    b"\xff\xd8": "jpeg",
    b"\x89PNG": "png",
    b"SIMPLE  =": "fits",
    b"\x93NUMPY": "npy",
}


class DecodeError(GalaxyRayError):
    """A cutout whose bytes cannot be turned into pixels (one line, names its source)."""


def detect_encoding(data: bytes) -> str | None:
    """``jpeg``, ``png``, ``fits`` or ``npy`` from the leading magic bytes; None if unknown."""
    head = bytes(data[:16])
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def _name(source: str) -> str:
    return source or "<cutout>"


def _decode_pillow(data: bytes, source: str, kind: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # forces the full decode: a truncated file fails here
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        reason = one_line(exc)
        raise DecodeError(f"{_name(source)}: corrupt or truncated {kind.upper()} ({reason}); re-fetch the cutout") from None
    return rgb.astype(np.float32) / 255.0


def lupton_rgb(bands: np.ndarray, source: str = "") -> np.ndarray:
    """Colour image of a (bands, H, W) cube with astropy's Lupton asinh stretch.

    Bands are ordered blue to red (e.g. g, r, z), so the last band becomes red.
    One or two bands are repeated to fill three channels.  NaN pixels (masked
    or off the detector) become the band's minimum; a cube with no finite pixel
    is a :class:`DecodeError`.

    Returns
    -------
    numpy.ndarray
        float32 (H, W, 3) in [0, 1].
    """
    from astropy.visualization import make_lupton_rgb

    cube = np.asarray(bands, dtype=np.float32)
    if cube.ndim == 2:
        cube = cube[None]
    if cube.ndim != 3 or cube.shape[0] < 1 or min(cube.shape[1:]) < 2:
        raise DecodeError(f"{_name(source)}: band cube has shape {cube.shape}; expected (bands, H, W)")
    finite = np.isfinite(cube)
    if not finite.any():
        raise DecodeError(f"{_name(source)}: image is all NaN or infinite; the cutout has no data")
    if not finite.all():
        cube = np.where(finite, cube, np.nanmin(np.where(finite, cube, np.nan)))
    if cube.shape[0] >= 3:
        b, g, r = cube[-3], cube[-2], cube[-1]
    elif cube.shape[0] == 2:
        b, r = cube[0], cube[1]
        g = 0.5 * (b + r)
    else:
        b = g = r = cube[0]
    # The stretch adapts to each cutout's flux scale (counts, nanomaggies, ...):
    # sky (a low percentile) maps to black and the bright core to near white.
    low = float(np.percentile(cube, 1.0))
    high = float(np.percentile(cube, 99.5))
    span = max(high - low, 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):  # astropy divides by 0 on black pixels, then masks them
        rgb = make_lupton_rgb(r, g, b, minimum=low, stretch=span / 4.0, Q=8)
    return np.asarray(rgb, dtype=np.float32) / 255.0


def _decode_fits(data: bytes, source: str) -> np.ndarray:
    from astropy.io import fits

    try:
        with fits.open(io.BytesIO(data), memmap=False) as hdul:
            hdu = next((h for h in hdul if getattr(h, "data", None) is not None and h.data.ndim >= 2), None)
            if hdu is None:
                raise DecodeError(f"{_name(source)}: FITS file has no image data")
            cube = np.array(hdu.data, dtype=np.float32)
    except DecodeError:
        raise
    except (OSError, ValueError, TypeError, IndexError) as exc:
        reason = one_line(exc)
        raise DecodeError(f"{_name(source)}: corrupt or truncated FITS ({reason}); re-fetch the cutout") from None
    if cube.ndim == 3 and cube.shape[-1] in (1, 3) and cube.shape[0] > 4:
        cube = np.moveaxis(cube, -1, 0)  # (H, W, bands) written by some tools
    if cube.ndim > 3 or cube.ndim < 2:
        raise DecodeError(f"{_name(source)}: FITS image has shape {cube.shape}; expected (bands, H, W) or (H, W)")
    return lupton_rgb(cube, source)


def _decode_npy(data: bytes, source: str) -> np.ndarray:
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        reason = one_line(exc)
        raise DecodeError(f"{_name(source)}: corrupt .npy pixels ({reason}); re-fetch the cutout") from None
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] == 3:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint8 and arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=-1).astype(np.float32) / 255.0
    if np.issubdtype(arr.dtype, np.floating) and arr.ndim in (2, 3) and (arr.ndim == 2 or arr.shape[0] <= 5):
        return lupton_rgb(arr, source)
    raise DecodeError(
        f"{_name(source)}: raw pixels of shape {arr.shape} and dtype {arr.dtype}; "
        "expected uint8 (H, W, 3) or float32 (bands, H, W)"
    )


def decode_image(data: bytes | None, source: str = "") -> np.ndarray:
    """Decode one cutout to float32 (H, W, 3) in [0, 1].

    Parameters
    ----------
    data : bytes or None
        Encoded JPEG, PNG, FITS or ``.npy`` bytes (detected from magic bytes).
        None means the source could not read the file.
    source : str
        Where the bytes came from; every error message names it.

    Raises
    ------
    DecodeError
        One line naming ``source`` and what is wrong.
    """
    if data is None or len(data) == 0:
        raise DecodeError(f"{_name(source)}: no image bytes (file missing or empty); check the source")
    data = bytes(data)
    kind = detect_encoding(data)
    if kind in ("jpeg", "png"):
        img = _decode_pillow(data, source, kind)
    elif kind == "fits":
        img = _decode_fits(data, source)
    elif kind == "npy":
        img = _decode_npy(data, source)
    else:
        raise DecodeError(f"{_name(source)}: not JPEG, PNG, FITS or .npy bytes (starts with {data[:8]!r})")
    if img.ndim != 3 or img.shape[-1] != 3 or min(img.shape[:2]) < 2:
        raise DecodeError(f"{_name(source)}: decoded image has shape {img.shape}; expected (H, W, 3) with H, W >= 2")
    return img
