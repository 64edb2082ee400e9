"""Decode, crop, resize, normalise and augment cutouts: shared by training and inference.

A model never sees pixels prepared differently in production than in training,
because both call :func:`preprocess_batch`.  The steps are:

1. :func:`decode_image`: JPEG / PNG through Pillow, FITS band cubes through
   astropy's Lupton et al. (2004) asinh colour stretch, ``.npy`` raw pixels;
   the result is float32 (H, W, 3) in [0, 1].
2. resize to ``round(image_size / crop_fraction)`` pixels, then (training only)
   a random affine transform (any rotation angle, small shifts and zooms, a
   flip) and a mild brightness jitter, then a centre crop of ``image_size``.
   Cropping *after* the rotation fills the rotated corners with real sky
   wherever ``crop_fraction < 1``.
3. ImageNet mean/std normalisation (the torchvision backbones expect it).

Galaxies have no preferred orientation, so rotations and flips are free
augmentation; shifts and zooms are kept small because the survey centres and
scales each cutout on its galaxy.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import torch

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C

__all__ = [
    "DecodeError",
    "PreprocessConfig",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "detect_encoding",
    "decode_image",
    "lupton_rgb",
    "prepare_image",
    "preprocess_batch",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Augmentation ranges: shifts as a fraction of the image side, zoom as a scale factor.
MAX_SHIFT = 0.05
ZOOM_RANGE = (0.9, 1.1)
BRIGHTNESS_RANGE = (0.9, 1.1)

_MAGIC = {
    b"\xff\xd8": "jpeg",
    b"\x89PNG": "png",
    b"SIMPLE  =": "fits",
    b"\x93NUMPY": "npy",
}


class DecodeError(GalaxyRayError):
    """A cutout whose bytes cannot be turned into pixels (one line, names its source)."""


@dataclass(frozen=True)
class PreprocessConfig:
    """How cutouts become model input.

    Attributes
    ----------
    image_size : int
        Side of the square model input, in pixels.
    crop_fraction : float
        Fraction of the cutout's side kept by the centre crop (1.0 keeps all);
        the borders of survey cutouts are mostly sky and neighbours.
    """

    image_size: int
    crop_fraction: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, (int, np.integer)) or not 16 <= int(self.image_size) <= 1024:
            raise GalaxyRayError(f"--image-size {self.image_size!r}: must be a whole number of pixels in 16..1024")
        if not (isinstance(self.crop_fraction, (int, float)) and 0.1 <= float(self.crop_fraction) <= 1.0):
            raise GalaxyRayError(f"--crop-fraction {self.crop_fraction!r}: must be between 0.1 and 1.0")

    @property
    def resize_to(self) -> int:
        """Side the decoded cutout is resized to before the centre crop, in pixels."""
        return max(int(self.image_size), int(round(self.image_size / float(self.crop_fraction))))

    def to_dict(self) -> dict[str, Any]:
        return {"image_size": int(self.image_size), "crop_fraction": float(self.crop_fraction)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | "PreprocessConfig") -> "PreprocessConfig":
        if isinstance(d, PreprocessConfig):
            return d
        return cls(image_size=int(d["image_size"]), crop_fraction=float(d.get("crop_fraction", 1.0)))


# --------------------------------------------------------------------------- decoding


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
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
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
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
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
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
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


# --------------------------------------------------------------------------- transforms


def _augment_params(rng: np.random.Generator, size: int) -> dict[str, Any]:
    max_shift = MAX_SHIFT * size
    return {
        "angle": float(rng.uniform(0.0, 360.0)),
        "translate": [float(rng.uniform(-max_shift, max_shift)), float(rng.uniform(-max_shift, max_shift))],
        "scale": float(math.exp(rng.uniform(math.log(ZOOM_RANGE[0]), math.log(ZOOM_RANGE[1])))),
        "flip": bool(rng.random() < 0.5),  # with any rotation, one flip axis covers both
        "brightness": float(rng.uniform(*BRIGHTNESS_RANGE)),
    }


def prepare_image(
    image: np.ndarray, config: PreprocessConfig, rng: np.random.Generator | None = None
) -> torch.Tensor:
    """One decoded image (H, W, 3) in [0, 1] -> normalised float32 tensor (3, S, S).

    ``rng`` None is the deterministic evaluation transform; a generator turns on
    the training augmentation.
    """
    from galaxy_ray.tv import torchvision  # noqa: F401  (safe torchvision import first)
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    side = config.resize_to
    if x.shape[-2:] != (side, side):
        x = F.resize(x, [side, side], interpolation=InterpolationMode.BILINEAR, antialias=True)
    if rng is not None:
        p = _augment_params(rng, side)
        if p["flip"]:
            x = F.horizontal_flip(x)
        x = F.affine(x, angle=p["angle"], translate=p["translate"], scale=p["scale"], shear=[0.0, 0.0],
                     interpolation=InterpolationMode.BILINEAR, fill=0.0)
        x = (x * p["brightness"]).clamp_(0.0, 1.0)
    if side != config.image_size:
        x = F.center_crop(x, [config.image_size, config.image_size])
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return (x - mean) / std


def _as_list(column: Any, n: int) -> list:
    if column is None:
        return [None] * n
    return list(column)


def preprocess_batch(
    batch: Mapping[str, np.ndarray],
    config: PreprocessConfig | Mapping[str, Any],
    augment: bool = False,
    seed: int | None = None,
) -> dict[str, np.ndarray]:
    """Decode and transform a batch of cutout rows (the Ray Data ``map_batches`` function).

    Parameters
    ----------
    batch : dict of numpy arrays
        Columns of the cutout table; ``image`` holds the encoded bytes (or None).
        ``source`` (else ``object_id``) names each row in error messages; an
        ``error`` column already set by a reader is kept.
    config : PreprocessConfig or its dict
    augment : bool
        Random training augmentation; False is deterministic.
    seed : int, optional
        Seed of the augmentation (None draws fresh randomness each call).

    Returns
    -------
    dict of numpy arrays
        The input columns without ``image``, plus ``pixels`` float32
        (N, 3, S, S) and ``error`` (object: None or a one-line message; failed
        rows get zero pixels).
    """
    config = PreprocessConfig.from_dict(config)
    images = batch[C.IMAGE]
    n = len(images)
    names = _as_list(batch.get(C.SOURCE, batch.get(C.OBJECT_ID)), n)
    errors = _as_list(batch.get(C.ERROR), n)
    size = config.image_size
    pixels = np.zeros((n, 3, size, size), dtype=np.float32)
    rng = np.random.default_rng(seed) if augment else None
    # Each decode runs in a Ray Data task already; one torch thread per task avoids oversubscription.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in range(n):
            if errors[i] is not None:
                continue
            source = "" if names[i] is None else str(names[i])
            try:
                pixels[i] = prepare_image(decode_image(images[i], source), config, rng).numpy()
            except DecodeError as exc:
                errors[i] = str(exc)
    finally:
        torch.set_num_threads(threads)
    out = {k: v for k, v in batch.items() if k != C.IMAGE}
    out["pixels"] = pixels
    err = np.empty(n, dtype=object)
    err[:] = errors
    out[C.ERROR] = err
    return out
