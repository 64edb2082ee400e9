"""Resize, augment and crop decoded cutouts into model input: shared by training and inference.

A model never sees pixels prepared differently in production than in training,
because both call :func:`preprocess_batch`.  The steps are:

1. :func:`~galaxy_ray.data.decode.decode_pixels`: JPEG / PNG / TIFF through
   Pillow, FITS band cubes through astropy's Lupton et al. (2004) asinh colour
   stretch, ``.npy`` raw pixels, any of them gzip / bzip2 / xz wrapped; the
   result is the cutout's (H, W, 3) pixels and its coverage.  8-bit display
   images stay uint8 (no float copy: the blank/coverage test reads the uint8
   pixels), and with preprocessing version 2 a JPEG at least twice the resize
   side is DCT-scaled by its decoder (:attr:`PreprocessConfig.version`).
   Fluxes and 16-bit images are float32 in [0, 1].  Images over the size cap
   and blank cutouts are refused there (see :mod:`galaxy_ray.data.cutout`).
2. resize to ``round(image_size / crop_fraction)`` pixels: uint8 pixels with
   Pillow's antialiased bilinear filter (:mod:`galaxy_ray.data.resize`), float
   pixels with torchvision's on float32; then (training only) a random affine
   transform (any rotation angle, small shifts and zooms, a flip) and a mild
   brightness jitter on floats, then a centre crop of ``image_size``.
   Cropping *after* the rotation fills the rotated corners with real sky
   wherever ``crop_fraction < 1``.
3. quantisation to uint8 (``round(clip(x, 0, 1) * 255)``; uint8 pixels
   without augmentation are uint8 already): the model input.
   The network normalises its own input (``galaxy_ray.model``), so training,
   evaluation and CPU or GPU inference all feed these same bytes, and a
   quarter of float32's bytes crosses to the GPU.

One cutout never stops a batch: any exception while decoding or preparing a
row (a corrupt file, a decompression bomb, a library's own error, running out
of memory) becomes that row's ``error``, a line naming the cutout's source.

Galaxies have no preferred orientation, so rotations and flips are free
augmentation; shifts and zooms are kept small because the survey centres and
scales each cutout on its galaxy.

Model-sized packs: ``galaxy-ray pack --image-size N --crop-fraction F`` stores
each cutout resized to ``round(N / F)`` pixels (step 2's resize, not its crop,
so that rotations still fill the corners with sky) as a lossless uint8 PNG
(:func:`galaxy_ray.data.packed.model_sized_png`), and records the preprocessing version that made
them.  Decoding one gives back exactly those bytes, so the resize becomes a
no-op and the result equals preparing the original.  A model whose resize
side or version differs would see other pixels than it was trained on:
:func:`galaxy_ray.data.packed.check_stored_pixels` refuses it.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd
import torch

from galaxy_ray.data.cutout import source_name
from galaxy_ray.data.decode import BlankCutoutError, DecodeError, decode_for_resize
from galaxy_ray.data.resize import center_crop_uint8, resize_uint8
from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.schema import CatalogColumns as C

__all__ = [
    "PreprocessConfig",
    "PIXELS_VERSION",
    "prepare_image",
    "prepare_pixels",
    "prepare_cutout",
    "preprocess_batch",
    "is_error_free",
    "ok_rows",
    "COVERAGE",
    "row_error",
    "nonempty_batch",
]

#: Output column of :func:`preprocess_batch`: fraction of each cutout's pixels that hold data.
COVERAGE = C.COVERAGE

#: Augmentation ranges: shifts as a fraction of the image side, zoom as a scale factor.
MAX_SHIFT = 0.05
ZOOM_RANGE = (0.9, 1.1)
BRIGHTNESS_RANGE = (0.9, 1.1)


#: Preprocessing version of new models (:attr:`PreprocessConfig.version`).
PIXELS_VERSION = 2
#: The versions this galaxy-ray prepares pixels for.
PIXELS_VERSIONS = (1, 2)


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
    version : int
        How a JPEG is decoded.  1 (models whose spec has no ``version``:
        trained before versions existed): at full size.  2
        (:data:`PIXELS_VERSION`, new models): by DCT scaling at 1/2, 1/4 or 1/8 of its size when
        the resize side is at most half the cutout's (``Image.draft``), which
        moves pixels by up to about 20 of 255 (0.2-0.5 on average) at
        424 -> 96 px.  Both resize 8-bit images as uint8 with Pillow's
        antialiased bilinear filter (within 1 of 255 of the float resize of
        earlier versions).
    """

    image_size: int
    crop_fraction: float = 1.0
    version: int = PIXELS_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, (int, np.integer)) or not 16 <= int(self.image_size) <= 1024:
            raise GalaxyRayError(f"--image-size {self.image_size!r}: must be a whole number of pixels in 16..1024")
        if not (isinstance(self.crop_fraction, (int, float)) and 0.1 <= float(self.crop_fraction) <= 1.0):
            raise GalaxyRayError(f"--crop-fraction {self.crop_fraction!r}: must be between 0.1 and 1.0")
        if self.version not in PIXELS_VERSIONS:
            raise GalaxyRayError(f"preprocessing version {self.version!r}: this galaxy-ray prepares pixels for "
                                 f"versions {', '.join(map(str, PIXELS_VERSIONS))}; upgrade galaxy-ray")

    @property
    def resize_to(self) -> int:
        """Side the decoded cutout is resized to before the centre crop, in pixels."""
        return max(int(self.image_size), int(round(self.image_size / float(self.crop_fraction))))

    @property
    def draft(self) -> int | None:
        """Side a JPEG may be DCT-scaled down to while decoding (version 2), or None (version 1)."""
        return self.resize_to if self.version >= 2 else None

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers (stored in a model's spec; the run key of ``infer`` includes them).

        ``version`` is left out for version 1, so that a model trained before
        versions existed keeps its spec and its run key.
        """
        d: dict[str, Any] = {"image_size": int(self.image_size), "crop_fraction": float(self.crop_fraction)}
        if self.version != 1:
            d["version"] = int(self.version)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PreprocessConfig":
        """Inverse of :meth:`to_dict` (``crop_fraction`` defaults to 1.0 and ``version`` to 1, as old checkpoints have it)."""
        return cls(image_size=int(d["image_size"]), crop_fraction=float(d.get("crop_fraction", 1.0)),
                   version=int(d.get("version", 1)))


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
    """One decoded image (H, W, 3) in [0, 1] -> model input, a uint8 tensor (3, S, S).

    ``rng`` None is the deterministic evaluation transform; a generator turns on
    the training augmentation.  Pixels are ``round(clip(x, 0, 1) * 255)`` of the
    resized, augmented and cropped image.
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
    return x.clamp(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)


def prepare_pixels(pixels: Any, config: PreprocessConfig, rng: np.random.Generator | None = None) -> np.ndarray:
    """Decoded pixels (H, W, 3), or a Pillow RGB image -> model input, uint8 (3, S, S) (possibly a view).

    uint8 pixels and Pillow images (8-bit display images) are resized as uint8 by Pillow
    (:func:`galaxy_ray.data.resize.resize_uint8`) and, without ``rng``,
    centre-cropped as uint8: no float copy is made.  With ``rng`` the resized
    pixels go through :func:`prepare_image`'s augmentation.  Float pixels
    (fluxes after the Lupton stretch, 16-bit images) go through
    :func:`prepare_image` whole.
    """
    if not isinstance(pixels, np.ndarray) or pixels.dtype == np.uint8:
        resized = resize_uint8(pixels, config.resize_to)
        if rng is None:
            # a view: the caller's batch array takes the one copy (a copy here would be a second one)
            return center_crop_uint8(resized, config.image_size).transpose(2, 0, 1)
        pixels = resized.astype(np.float32) / np.float32(255.0)  # resized already: prepare_image only augments
    return prepare_image(pixels, config, rng).numpy()


def prepare_cutout(data: bytes | None, source: str, config: PreprocessConfig,
                   rng: np.random.Generator | None = None) -> tuple[np.ndarray, float]:
    """One cutout's bytes -> (model input uint8 (3, S, S), coverage): the decode stage of every pipeline.

    :func:`galaxy_ray.data.decode.decode_for_resize` (a JPEG DCT-scaled for
    version 2 configs, see :attr:`PreprocessConfig.version`), then
    :func:`prepare_pixels`.

    Raises
    ------
    DecodeError, BlankCutoutError, Exception
        Whatever decoding raises.
    """
    pixels, coverage = decode_for_resize(data, source, config.draft)
    return prepare_pixels(pixels, config, rng), coverage


def is_error_free(value: Any) -> bool:
    """True when a row's ``error`` value means "no error".

    None is the one marker galaxy-ray writes (null in Arrow; its Ray Data stages
    keep it None, see :func:`galaxy_ray.raycompat.typed_batch`).  ``""``, NaN and
    ``pd.NA`` are accepted in what a reader hands in (a user's own table through
    pandas), and :func:`preprocess_batch` turns them into None.
    """
    if value is None:
        return True
    if isinstance(value, str):
        return value == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # an array or other non-scalar: not a marker
        return False


def ok_rows(errors: Any) -> np.ndarray:
    """Boolean mask (N,) of the rows whose ``error`` is a no-error marker (see :func:`is_error_free`)."""
    return np.fromiter((is_error_free(e) for e in errors), dtype=bool, count=len(errors))


def nonempty_batch(batch: dict[str, np.ndarray], column: str) -> Iterator[dict[str, np.ndarray]]:
    """A ``map_batches`` stage's output: ``batch`` itself, or no batch when ``column`` has no rows.

    A stage that filters rows (one side of the split, labelled rows) can be left
    with none of a batch.  Ray Data makes an Arrow tensor column of a
    multi-dimensional array only when it has rows: an empty ``pixels``
    (0, 3, S, S) or ``y_true`` (0, K) would go to Arrow as pickled Python
    objects, with a warning.  Yielding nothing keeps every block a tensor block.
    """
    if len(batch[column]):
        yield batch


def _as_list(column: Any, n: int) -> list:
    if column is None:
        return [None] * n
    return list(column)


def row_error(source: str, exc: BaseException) -> str:
    """One-line ``error`` of a row whose cutout raised ``exc``: ``<source>: <message>``.

    A :class:`DecodeError` already names its source; any other exception is
    written as ``<source>: <ExceptionType>: <first line of its message>``.
    """
    if isinstance(exc, DecodeError):
        return str(exc)
    kind = type(exc).__name__
    reason = one_line(exc)
    return f"{source_name(source)}: {kind}" + ("" if reason == kind else f": {reason}")


def _prepare_rows(
    images: Any, names: list, errors: list, config: PreprocessConfig, rng: np.random.Generator | None
) -> tuple[np.ndarray, np.ndarray]:
    """Model input and coverage of each row; a row's failure goes into ``errors`` (changed in place)."""
    n = len(images)
    pixels = np.zeros((n, 3, config.image_size, config.image_size), dtype=np.uint8)
    coverage = np.full(n, np.nan, dtype=np.float32)
    for i in range(n):
        if errors[i] is not None:
            continue
        source = "" if names[i] is None else str(names[i])
        try:
            pixels[i], coverage[i] = prepare_cutout(images[i], source, config, rng)
        except BlankCutoutError as exc:
            errors[i], coverage[i] = str(exc), exc.coverage
        except Exception as exc:  # noqa: BLE001  (any failure of one cutout is that row's error, never the job's)
            errors[i] = row_error(source, exc)
    return pixels, coverage


def preprocess_batch(
    batch: Mapping[str, np.ndarray],
    config: PreprocessConfig,
    augment: bool = False,
    seed: int | None = None,
) -> dict[str, np.ndarray]:
    """Decode and transform a batch of cutout rows (the Ray Data ``map_batches`` function).

    Parameters
    ----------
    batch : dict of numpy arrays
        Columns of the cutout table; ``image`` holds the encoded bytes (or None).
        ``source`` (else ``object_id``) names each row in error messages; an
        ``error`` column already set by a reader is kept (its no-error
        markers, see :func:`is_error_free`, become None).
    config : PreprocessConfig
    augment : bool
        Random training augmentation; False is deterministic.
    seed : int, optional
        Seed of the augmentation (None draws fresh randomness each call).

    Returns
    -------
    dict of numpy arrays
        The input columns without ``image``, plus ``pixels`` uint8
        (N, 3, S, S) from :func:`prepare_image`, ``error`` (object: None, or a
        one-line message for a failed row, whose pixels are zero; see
        :func:`row_error`) and ``coverage`` float32 (N,): the fraction of the
        cutout's pixels that hold data (1.0 inside the survey footprint; the
        measured fraction for a blank cutout; NaN where the cutout could not
        be read).
    """
    images = batch[C.IMAGE]
    n = len(images)
    names = _as_list(batch.get(C.SOURCE, batch.get(C.OBJECT_ID)), n)
    errors = [None if is_error_free(e) else str(e) for e in _as_list(batch.get(C.ERROR), n)]
    rng = np.random.default_rng(seed) if augment else None
    # Each decode runs in a Ray Data task already; one torch thread per task avoids oversubscription.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pixels, coverage = _prepare_rows(images, names, errors, config, rng)
    finally:
        torch.set_num_threads(threads)
    out = {k: v for k, v in batch.items() if k != C.IMAGE}
    out["pixels"] = pixels
    err = np.empty(n, dtype=object)
    err[:] = errors
    out[C.ERROR] = err
    out[COVERAGE] = coverage
    return out

