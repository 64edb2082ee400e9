"""Cutout bytes to pixels, for every file a survey archive hands out.

Encodings are recognised from their magic bytes, never from a file name:

* **JPEG, PNG, TIFF** through Pillow, in every mode Pillow opens.  8-bit
  modes (``1``, ``L``, ``P``, ``LA``, ``RGB``, ``RGBA``, ``CMYK``, ``YCbCr``...)
  go through Pillow's RGB conversion and stay uint8 (:func:`decode_pixels`;
  :func:`decode_cutout` divides them by 255); 16-bit greyscale
  (``I;16*``, and ``I`` with values in 0..65535) is divided by 65535, so no
  value is clipped; 32-bit float (``F``) and wider integers are one band for
  the Lupton stretch.  Alpha is dropped, and alpha 0 marks a missing pixel.
  Pillow itself reduces 16-bit colour PNGs to 8 bits per channel.
* **FITS**: the first HDU that holds an image (the primary, an image
  extension, or a tile-compressed ``CompImageHDU`` of a ``.fits.fz`` file),
  as (H, W), (bands, H, W) or (H, W, 1 | 3); bands blue to red go through
  astropy's Lupton et al. (2004) asinh colour stretch (:func:`lupton_rgb`).
* **.npy**: uint8 (H, W, 3) or (H, W) is raw RGB or grey; other numbers,
  (H, W) or (bands <= 5, H, W), go through the Lupton stretch.
* any of these wrapped in gzip, bzip2 or xz (:mod:`galaxy_ray.data.unwrap`,
  decompressed size capped at ``MAX_UNWRAPPED_BYTES``).

Images over the size cap (``MAX_CUTOUT_SIDE``) are refused from their header,
and blank cutouts are refused by their pixels (:mod:`galaxy_ray.data.cutout`).
Every cutout that is read comes back as a :class:`Cutout` (pixels and
coverage); every failure is a one-line :class:`DecodeError` naming the
cutout's source.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import warnings
import zlib
from typing import Any

import numpy as np

from galaxy_ray.data.cutout import (
    JPEG_BLOCK,
    MAX_BANDS,
    MAX_CUTOUT_SIDE,
    BlankCutoutError,
    Cutout,
    DecodeError,
    band_cutout,
    check_size,
    corrupt_error,
    display_cutout,
    display_image_coverage,
    lupton_rgb,
    source_name,
)
from galaxy_ray.data.unwrap import MAX_WRAPPINGS, UnwrapError, unwrap, wrapping
from galaxy_ray.errors import one_line

__all__ = [
    "MAX_CUTOUT_SIDE",
    "MAX_BANDS",
    "Cutout",
    "DecodeError",
    "BlankCutoutError",
    "detect_encoding",
    "image_encoding",
    "NOT_AN_IMAGE",
    "decode_pixels",
    "decode_for_resize",
    "decode_cutout",
    "decode_image",
    "lupton_rgb",
]

_MAGIC = {
    b"\xff\xd8": "jpeg",
    b"\x89PNG": "png",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"SIMPLE  =": "fits",
    b"\x93NUMPY": "npy",
}
_PILLOW_KINDS = ("jpeg", "png", "tiff")
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def detect_encoding(data: bytes) -> str | None:
    """``jpeg``, ``png``, ``tiff``, ``fits`` or ``npy`` from the leading magic bytes; None if unknown."""
    head = bytes(data[:16])
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


#: The reason given for bytes of no format galaxy-ray reads (never their content: files may hold secrets).
NOT_AN_IMAGE = "not JPEG, PNG, TIFF, FITS or .npy bytes (nor one of these in gzip, bzip2 or xz)"
#: Decompressed bytes read to tell what a wrapped file holds.
_PEEK = 16
_PEEKERS = {"gzip": lambda f: gzip.GzipFile(fileobj=f, mode="rb"), "bzip2": bz2.BZ2File, "xz": lzma.LZMAFile}


def image_encoding(data: bytes | None) -> str | None:
    """The image format of a cutout's bytes, looking inside gzip / bzip2 / xz wrappers; None if none.

    Only the first bytes are decompressed, so this is cheap however large the
    file; whether the image itself is intact is for :func:`decode_cutout` to say.

    Parameters
    ----------
    data : bytes or None
        A cutout's bytes as read (None or empty: no image).

    Returns
    -------
    str or None
        ``jpeg``, ``png``, ``tiff``, ``fits`` or ``npy`` (as :func:`detect_encoding`).
    """
    if not data:
        return None
    head, kinds = bytes(data[:_PEEK]), []
    for _ in range(MAX_WRAPPINGS):
        kind = wrapping(head)
        if kind is None:
            break
        kinds.append(kind)
        stream = io.BytesIO(bytes(data))
        try:
            for k in kinds:  # each wrapper read through the one outside it
                stream = _PEEKERS[k](stream)
            head = stream.read(_PEEK)
        except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError):
            return None
    return detect_encoding(head)


def _open_pillow(data: bytes, name: str, kind: str, draft: int | None = None):
    """The opened and fully loaded Pillow image and the factor its sides were reduced by (1, 2, 4 or 8).

    The size is checked before any pixel is decoded.

    ``draft``: a JPEG is decoded at the smallest of 1/2, 1/4 or 1/8 of its
    size (libjpeg's DCT scaling, Pillow's ``Image.draft``) whose sides stay at
    least ``draft`` pixels; other formats, and a JPEG under twice that side, at
    full size.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():  # images over Pillow's warning size are refused below anyway
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise DecodeError(
            f"{name}: image is over the cap on one cutout ({MAX_CUTOUT_SIDE} x {MAX_CUTOUT_SIDE} pixels): "
            f"{one_line(exc)}"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise corrupt_error(name, kind.upper(), exc) from None
    try:
        width, height = img.size
        check_size((height, width), name)
        if draft and kind == "jpeg" and 2 * int(draft) <= min(width, height):
            img.draft("RGB", (int(draft), int(draft)))
        img.load()  # forces the full decode: a truncated file fails here
        shrink = max(1, width // max(1, img.width))
    except DecodeError:
        img.close()
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        img.close()
        raise corrupt_error(name, kind.upper(), exc) from None
    return img, shrink


def _transparent(img) -> np.ndarray | None:
    """Pixels whose alpha is 0; None for an image without alpha."""
    if "A" not in img.getbands() and "transparency" not in img.info:
        return None
    return np.asarray(img.convert("RGBA"))[..., 3] == 0


def _decode_pillow(data: bytes, name: str, kind: str, draft: int | None = None, as_image: bool = False):
    """A :class:`Cutout`; with ``as_image``, an 8-bit image as (Pillow RGB image, coverage) instead."""
    img, shrink = _open_pillow(data, name, kind, draft)
    mode = img.mode
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        with img:
            grey = np.asarray(img).astype(np.float32)
        if mode == "F" or (mode == "I" and not (grey.min() >= 0 and grey.max() <= 65535)):
            return band_cutout(grey[None], name)  # not a 16-bit display image: fluxes
        rgb = np.repeat(grey[..., None] / np.float32(65535.0), 3, axis=-1)
        return display_cutout(rgb, np.zeros(grey.shape, dtype=bool), name)
    try:  # 8 bits a channel: uint8 throughout, no float copy of the cutout
        rgb_image = img if mode == "RGB" else img.convert("RGB")
        missing = _transparent(img)
    except ValueError as exc:
        img.close()
        raise DecodeError(f"{name}: {kind.upper()} in Pillow mode {mode} has no RGB conversion "
                          f"({one_line(exc)})") from None
    # ringing next to a margin spans one JPEG block of the full-size image: fewer pixels at a reduced scale
    coverage = display_image_coverage(rgb_image, name, lossy=kind == "jpeg", guard=max(2, JPEG_BLOCK // shrink),
                                      missing=missing)
    if as_image:
        return rgb_image, coverage
    return Cutout(np.asarray(rgb_image), coverage)


def _image_hdu(hdul):
    """The first HDU holding an image (primary, extension or tile-compressed) and its numpy-order axes."""
    from astropy.io import fits

    for hdu in hdul:
        if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)):  # CompImageHDU is an ImageHDU
            continue
        naxis = int(hdu.header.get("NAXIS", 0))
        axes = [int(hdu.header.get(f"NAXIS{i}", 0)) for i in range(naxis, 0, -1)]
        if naxis >= 2 and all(a > 0 for a in axes):
            return hdu, axes
    return None, []


def _as_band_cube(cube: np.ndarray, name: str) -> np.ndarray:
    """(bands, H, W) from the layouts FITS writers use: (H, W), (bands, H, W), (H, W, bands), degenerate axes."""
    shape = cube.shape
    if cube.ndim > 3:
        cube = cube.reshape([s for s in shape if s != 1])  # e.g. (1, 3, H, W) from a stacked cube
    if cube.ndim == 3 and cube.shape[-1] in (1, 3) and cube.shape[0] > 4:
        cube = np.moveaxis(cube, -1, 0)  # (H, W, bands) written by some tools
    if cube.ndim == 2:
        cube = cube[None]
    if cube.ndim != 3:
        raise DecodeError(f"{name}: FITS image has shape {shape}; expected (bands, H, W) or (H, W)")
    return cube


def _decode_fits(data: bytes, name: str) -> Cutout:
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyWarning

    try:
        with warnings.catch_warnings():
            # a truncated or non-standard file fails below with one line; its warnings would only repeat it
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(io.BytesIO(data), memmap=False) as hdul:
                hdu, axes = _image_hdu(hdul)
                if hdu is None:
                    raise DecodeError(f"{name}: FITS file has no image data in any HDU")
                check_size(axes, name)
                cube = np.array(hdu.data, dtype=np.float32)
    except DecodeError:
        raise
    except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError, fits.VerifyError) as exc:
        raise corrupt_error(name, "FITS", exc) from None
    return band_cutout(_as_band_cube(cube, name), name)


def _npy_shape(data: bytes) -> tuple[int, ...]:
    """Shape from the ``.npy`` header, read before the array."""
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return tuple(reader(f)[0])


def _decode_npy(data: bytes, name: str) -> Cutout:
    try:
        check_size(_npy_shape(data), name)
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except DecodeError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise DecodeError(f"{name}: corrupt .npy pixels ({one_line(exc)}); re-fetch the cutout") from None
    if arr.dtype == np.uint8 and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        rgb = arr if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=-1)
        return display_cutout(np.ascontiguousarray(rgb), np.zeros(arr.shape[:2], bool), name)
    numeric = np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    if numeric and (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[0] <= 5)):
        return band_cutout(_as_band_cube(arr.astype(np.float32), name), name)
    raise DecodeError(
        f"{name}: raw pixels of shape {arr.shape} and dtype {arr.dtype}; "
        "expected uint8 (H, W, 3) or float32 (bands, H, W)"
    )


def decode_pixels(data: bytes | None, source: str = "", draft: int | None = None) -> Cutout:
    """Decode one cutout to (H, W, 3) pixels and its coverage, keeping 8-bit display images uint8.

    What the model-input stage (:func:`galaxy_ray.data.transforms.prepare_cutout`)
    calls: an 8-bit JPEG, PNG, TIFF or uint8 ``.npy`` comes back as uint8
    0..255 with no float copy made; fluxes (FITS, float or integer ``.npy``,
    Pillow ``I`` / ``F`` images) and 16-bit greyscale as float32 in [0, 1].

    Parameters
    ----------
    data : bytes or None
        Encoded bytes (see the module docstring for the formats), possibly
        gzip / bzip2 / xz wrapped.  None means the source could not read the file.
    source : str
        Where the bytes came from; every error message names it.
    draft : int, optional
        Side, in pixels, the caller will resize to.  A JPEG at least twice
        that side is decoded by DCT scaling at 1/2, 1/4 or 1/8 of its size
        (never under ``draft``), and its blank test runs on that reduced image.

    Raises
    ------
    BlankCutoutError
        The cutout has no signal (its ``coverage`` attribute says how much held data).
    DecodeError
        Any other unreadable or refused cutout; one line naming ``source``.
    """
    pixels, coverage = decode_for_resize(data, source, draft)
    return Cutout(pixels if isinstance(pixels, np.ndarray) else np.asarray(pixels), coverage)


def decode_for_resize(data: bytes | None, source: str = "", draft: int | None = None) -> tuple[Any, float]:
    """(pixels, coverage) as :func:`decode_pixels`, with an 8-bit JPEG, PNG or TIFF as a Pillow RGB image.

    What the decode stage calls: Pillow resizes the image it decoded, and the
    blank test reads only its border lines and extrema (see
    :func:`galaxy_ray.data.cutout.display_image_coverage`), so the full-size
    cutout is never copied into an array.

    Raises
    ------
    BlankCutoutError, DecodeError
        As :func:`decode_pixels`.
    """
    name = source_name(source)
    if data is None or len(data) == 0:
        raise DecodeError(f"{name}: no image bytes (file missing or empty); check the source")
    try:
        data = unwrap(bytes(data))
    except UnwrapError as exc:
        raise DecodeError(f"{name}: {exc}") from None
    kind = detect_encoding(data)
    if kind in _PILLOW_KINDS:
        out = _decode_pillow(data, name, kind, draft, as_image=True)
        return out if isinstance(out, tuple) else (out.pixels, out.coverage)
    if kind in ("fits", "npy"):
        cutout = _decode_fits(data, name) if kind == "fits" else _decode_npy(data, name)
        return cutout.pixels, cutout.coverage
    raise DecodeError(f"{name}: {NOT_AN_IMAGE}; check that the file is a cutout")


def decode_cutout(data: bytes | None, source: str = "") -> Cutout:
    """Decode one cutout at full size to float32 (H, W, 3) pixels in [0, 1] and its coverage.

    :func:`decode_pixels` with uint8 pixels divided by 255.

    Parameters
    ----------
    data : bytes or None
        Encoded bytes (see the module docstring for the formats), possibly
        gzip / bzip2 / xz wrapped.  None means the source could not read the file.
    source : str
        Where the bytes came from; every error message names it.

    Raises
    ------
    BlankCutoutError
        The cutout has no signal (its ``coverage`` attribute says how much held data).
    DecodeError
        Any other unreadable or refused cutout; one line naming ``source``.
    """
    cutout = decode_pixels(data, source)
    if cutout.pixels.dtype == np.uint8:
        return Cutout(cutout.pixels.astype(np.float32) / np.float32(255.0), cutout.coverage)
    return cutout


def decode_image(data: bytes | None, source: str = "") -> np.ndarray:
    """Decode one cutout to float32 (H, W, 3) in [0, 1]: the pixels of :func:`decode_cutout`.

    Raises
    ------
    DecodeError
        One line naming ``source`` and what is wrong (a blank cutout is a :class:`BlankCutoutError`).
    """
    return decode_cutout(data, source).pixels
