"""What a decoded cutout is: its size limits, its coverage, when it is blank, its colour stretch.

Limits
------
An image whose side exceeds :data:`MAX_CUTOUT_SIDE` pixels, or with more than
:data:`MAX_BANDS` planes, is refused from its header (Pillow's size, FITS
``NAXISn``, the ``.npy`` header) before any pixel is decoded
(:func:`check_size`).

Blank cutouts
-------------
A cutout with no signal (blank, or outside the survey footprint: fewer than
``MIN_COVERAGE`` of its pixels hold data, or all of them one value; see
:mod:`galaxy_ray.data.coverage`) is a :class:`BlankCutoutError`.  Every other
cutout is a :class:`Cutout`: its (H, W, 3) pixels and its coverage, the
fraction of its pixels that hold data.  8-bit display images are tested and
kept as uint8 (:func:`display_cutout`: no float copy of the cutout is made);
fluxes are float32.  Band data (FITS,
float ``.npy``) goes through astropy's Lupton et al. (2004) asinh colour
stretch (:func:`lupton_rgb`), with the pixels without data set to black.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from galaxy_ray.data.coverage import blank_reason, data_mask
from galaxy_ray.errors import GalaxyRayError, one_line

__all__ = [
    "MAX_CUTOUT_SIDE",
    "MAX_BANDS",
    "JPEG_BLACK",
    "JPEG_BLOCK",
    "Cutout",
    "DecodeError",
    "BlankCutoutError",
    "source_name",
    "check_size",
    "display_cutout",
    "display_image_coverage",
    "band_cutout",
    "lupton_rgb",
    "corrupt_error",
]

#: Largest side of a cutout, in pixels.  Galaxy cutouts are 64-512 pixels
#: (424 for the Galaxy Zoo 2 SDSS JPEGs, 256 for Galaxy10 DECaLS); 4096 leaves
#: room for wide fields while one decoded image (4096^2 x 3 float32, 192 MiB)
#: still fits a decode worker.  Pillow's own bomb limit is about 9459^2.
MAX_CUTOUT_SIDE = 4096

#: Brightest value (of 1) that still counts as black fill in a JPEG: the 8 x 8
#: DCT blocks and 2 x 2 chroma subsampling ring a few counts into a black region
#: next to data (up to about 10 of 255 at quality 60-90, measured with Pillow).
JPEG_BLACK = 12 / 255

#: Side of a JPEG's largest block (a 16 x 16 MCU with chroma subsampling): the
#: ringing next to a black margin reaches this far into the data.
JPEG_BLOCK = 16

#: Most planes of a FITS or .npy image (six survey filters, ugrizy, and room to spare).
MAX_BANDS = 16


class DecodeError(GalaxyRayError):
    """A cutout whose bytes cannot be turned into pixels (one line, names its source)."""


class BlankCutoutError(DecodeError):
    """A cutout with no signal; ``coverage`` is the fraction of its pixels that hold data."""

    def __init__(self, message: str, coverage: float = 0.0):
        super().__init__(message)
        self.coverage = float(coverage)

    def __reduce__(self):
        return type(self), (str(self), self.coverage)


@dataclass(frozen=True)
class Cutout:
    """A decoded cutout.

    Attributes
    ----------
    pixels : numpy.ndarray
        (H, W, 3): uint8 for an 8-bit display image (JPEG, PNG, TIFF, uint8
        ``.npy``) as :func:`galaxy_ray.data.decode.decode_pixels` returns it,
        else float32 in [0, 1] (what :func:`galaxy_ray.data.decode.decode_cutout`
        returns for every cutout).
    coverage : float
        Fraction of the pixels that hold data (1.0 for a cutout inside the footprint).
    """

    pixels: np.ndarray
    coverage: float


def source_name(source: str) -> str:
    """How error messages name a cutout (its source, or ``<cutout>``)."""
    return source or "<cutout>"


def check_size(axes: Sequence[int], name: str) -> None:
    """Refuse, from header values alone, an image too large to be one cutout."""
    sides = sorted((int(a) for a in axes), reverse=True)
    if len(sides) < 2:
        return  # not an image: the decoder names the shape
    planes = int(np.prod(sides[2:], dtype=np.int64))
    if sides[0] <= MAX_CUTOUT_SIDE and planes <= MAX_BANDS:
        return
    shape = " x ".join(str(int(a)) for a in axes)
    raise DecodeError(
        f"{name}: image of {shape} pixels is over the cap on one cutout "
        f"({MAX_CUTOUT_SIDE} x {MAX_CUTOUT_SIDE} pixels, {MAX_BANDS} bands); cut a smaller stamp around the galaxy"
    )


def _finish(values: np.ndarray, has_data: np.ndarray, name: str, scale: float = 1.0,
            channels_last: bool = False) -> float:
    """Coverage of a cutout whose (C, H, W) (or (H, W, C)) ``values`` have signal; BlankCutoutError otherwise."""
    reason = blank_reason(values, has_data, scale, channels_last)
    coverage = float(has_data.mean())
    if reason is not None:
        raise BlankCutoutError(f"{name}: no signal: blank or outside the survey footprint ({reason})", coverage)
    return coverage


def _black_level(dtype: np.dtype, lossy: bool) -> float:
    """Brightest value that counts as black fill: 0, or :data:`JPEG_BLACK` (12 of 255) for a lossy JPEG."""
    if not lossy:
        return 0
    return round(JPEG_BLACK * 255) if dtype == np.uint8 else JPEG_BLACK


def _channel_max(rgb: np.ndarray) -> np.ndarray:
    """Brightest channel of each pixel, (H, W); two elementwise maxima run faster than a reduction over axis -1."""
    return np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])


def _border_blank(rgb: np.ndarray, black: float) -> bool:
    """True when a whole border row or column is black: only then can the cutout have a blank margin."""
    return any(bool((_channel_max(line) <= black).all()) for line in (rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]))


def display_cutout(rgb: np.ndarray, missing: np.ndarray, name: str, lossy: bool = False,
                   guard: int = JPEG_BLOCK) -> Cutout:
    """A display image, (H, W, 3) uint8 or float32 in [0, 1], whose ``missing`` pixels are not data.

    Black (fill candidates) is exact zero, or for a ``lossy`` JPEG at most
    :data:`JPEG_BLACK` in every channel (12 of 255), with ``guard`` pixels of
    ringing beside a margin left out of the sky-floor test (:data:`JPEG_BLOCK`
    at full size; fewer on a JPEG decoded at a reduced scale).  The pixels are
    kept as given (uint8 stays uint8).

    A blank margin fills whole border rows or columns, so a cutout whose four
    border lines each hold a non-black pixel, and with no transparent pixel, has
    every pixel with data (coverage 1.0, the rule of
    :mod:`galaxy_ray.data.coverage`, tested without a mask of the whole cutout):
    only its extrema are then needed.
    """
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 2:
        raise DecodeError(f"{name}: decoded image has shape {rgb.shape}; expected (H, W, 3) with H, W >= 2")
    black = _black_level(rgb.dtype, lossy)
    scale = 255.0 if rgb.dtype == np.uint8 else 1.0
    if not missing.any() and not _border_blank(rgb, black):
        low, high = rgb.min(), rgb.max()
        if low == high:
            raise BlankCutoutError(f"{name}: no signal: blank or outside the survey footprint (every pixel has "
                                   f"the same value {float(low) / scale:g})", 1.0)
        return Cutout(rgb, 1.0)
    empty = (_channel_max(rgb) <= black) | missing
    has_data = data_mask(empty, missing, guard if lossy else 0)
    coverage = _finish(rgb, has_data, name, scale, channels_last=True)
    return Cutout(rgb, coverage)


def display_image_coverage(image, name: str, lossy: bool = False, guard: int = JPEG_BLOCK,
                           missing: np.ndarray | None = None) -> float:
    """Coverage of a Pillow RGB image by :func:`display_cutout`'s rule, read without copying the image when it can.

    With no transparent pixel (``missing`` None) and no black border line, the
    verdict needs only the four border lines (and, when they hold one value,
    Pillow's per-channel extrema); otherwise the image is read into an array
    and tested whole.

    Raises
    ------
    BlankCutoutError
        The cutout has no signal.
    """
    w, h = image.size
    if missing is None and min(w, h) >= 2:
        black = _black_level(np.dtype(np.uint8), lossy)
        lines = (image.crop((0, 0, w, 1)), image.crop((0, h - 1, w, h)), image.crop((0, 0, 1, h)),
                 image.crop((w - 1, 0, w, h)))
        border = [np.asarray(line) for line in lines]
        if not any(bool((_channel_max(line) <= black).all()) for line in border):
            values = np.concatenate([line.reshape(-1) for line in border])
            if values.min() != values.max():  # two values on the border: not one value throughout
                return 1.0
            extrema = image.getextrema()
            low, high = min(e[0] for e in extrema), max(e[1] for e in extrema)
            if low == high:
                raise BlankCutoutError(f"{name}: no signal: blank or outside the survey footprint (every pixel has "
                                       f"the same value {low / 255.0:g})", 1.0)
            return 1.0
    rgb = np.asarray(image)
    if missing is None:
        missing = np.zeros(rgb.shape[:2], dtype=bool)
    return display_cutout(rgb, missing, name, lossy, guard).coverage


def band_cutout(cube: np.ndarray, name: str) -> Cutout:
    """A (bands, H, W) cube of fluxes: coverage from non-finite and zero-filled pixels, then Lupton."""
    if cube.ndim != 3 or min(cube.shape[1:]) < 2:
        raise DecodeError(f"{name}: band cube has shape {cube.shape}; expected (bands, H, W)")
    finite = np.isfinite(cube)
    missing = ~finite.any(axis=0)
    empty = ((cube == 0) | ~finite).all(axis=0)
    has_data = data_mask(empty, missing)
    coverage = _finish(cube, has_data, name)
    return Cutout(lupton_rgb(cube, name, has_data), coverage)


def lupton_rgb(bands: np.ndarray, source: str = "", has_data: np.ndarray | None = None) -> np.ndarray:
    """Colour image of a (bands, H, W) cube with astropy's Lupton asinh stretch.

    Bands are ordered blue to red (e.g. g, r, z), so the last band becomes red.
    One or two bands are repeated to fill three channels.  The black and white
    points are the 1st and 99.5th percentiles of the pixels with data; pixels
    without data (non-finite, or False in ``has_data``) are set to the black
    point before the stretch, so they come out black.

    Parameters
    ----------
    bands : numpy.ndarray, shape (bands, H, W) or (H, W)
    source : str
        Named in error messages.
    has_data : numpy.ndarray of bool, shape (H, W), optional
        Pixels that hold data (all, when None).

    Returns
    -------
    numpy.ndarray
        float32 (H, W, 3) in [0, 1].

    Raises
    ------
    DecodeError
        A cube of the wrong shape, or without a finite pixel with data.
    """
    from astropy.visualization import make_lupton_rgb

    cube = np.asarray(bands, dtype=np.float32)
    if cube.ndim == 2:
        cube = cube[None]
    if cube.ndim != 3 or cube.shape[0] < 1 or min(cube.shape[1:]) < 2:
        raise DecodeError(f"{source_name(source)}: band cube has shape {cube.shape}; expected (bands, H, W)")
    usable = np.isfinite(cube)
    if has_data is not None:
        usable &= np.asarray(has_data, dtype=bool)[None]
    if not usable.any():
        raise DecodeError(f"{source_name(source)}: image is all NaN or infinite; the cutout has no data")
    # The stretch adapts to each cutout's flux scale (counts, nanomaggies, ...):
    # sky (a low percentile) maps to black and the bright core to near white.
    values = cube[usable]
    low = float(np.percentile(values, 1.0))
    high = float(np.percentile(values, 99.5))
    cube = np.where(usable, cube, np.float32(low))
    if cube.shape[0] >= 3:
        b, g, r = cube[-3], cube[-2], cube[-1]
    elif cube.shape[0] == 2:
        b, r = cube[0], cube[1]
        g = 0.5 * (b + r)
    else:
        b = g = r = cube[0]
    span = max(high - low, 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):  # astropy divides by 0 on black pixels, then masks them
        rgb = make_lupton_rgb(r, g, b, minimum=low, stretch=span / 4.0, Q=8)
    return np.asarray(rgb, dtype=np.float32) / 255.0


def corrupt_error(name: str, kind: str, exc: BaseException) -> DecodeError:
    return DecodeError(f"{name}: corrupt or truncated {kind} ({one_line(exc)}); re-fetch the cutout")
