"""Model-sized packs: what ``pack --image-size`` stores, and which models may read it.

``galaxy-ray pack --image-size N --crop-fraction F`` stores each cutout as
the decode stage resizes it (:func:`galaxy_ray.data.transforms.prepare_cutout`
at ``round(N / F)`` px, without the centre crop) in a lossless PNG, and
records ``{image_size, crop_fraction, stored_size, version}``.  A model of
another resize side or preprocessing version would see other pixels than it
was trained on: :func:`check_stored_pixels` refuses it in one line.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from galaxy_ray.data.sources.shards import stored_pixels
from galaxy_ray.data.transforms import PIXELS_VERSION, PreprocessConfig, prepare_cutout
from galaxy_ray.errors import GalaxyRayError

__all__ = ["model_sized_png", "check_stored_pixels", "stored_version"]


def model_sized_png(data: bytes | None, source: str, config: PreprocessConfig) -> bytes:
    """One encoded cutout -> a lossless PNG of it resized to ``config.resize_to`` (what ``pack --image-size`` stores).

    The pixels are :func:`prepare_cutout`'s deterministic resize without the
    centre crop, as uint8 (S, S, 3) RGB, S = ``config.resize_to``.

    Raises
    ------
    DecodeError, BlankCutoutError, Exception
        Whatever decoding raises: ``pack`` then keeps the original bytes, so the
        stage that reads the row reports its error as it would have.
    """
    from PIL import Image

    side = config.resize_to
    pixels, _ = prepare_cutout(data, source, PreprocessConfig(side, 1.0, config.version))
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0))).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


#: How each preprocessing version decodes a JPEG (in refusals).
_VERSION_WORDS = {1: "at full size", 2: "by DCT scaling when the model's side is at most half the cutout's"}


def check_stored_pixels(source: Any, preprocess: PreprocessConfig) -> dict[str, Any] | None:
    """Refuse model input from cutouts packed at another size or preprocessing version than ``preprocess``.

    Parameters
    ----------
    source : Source, str or sequence of str
        An opened source or shard URIs (see :func:`galaxy_ray.data.sources.shards.stored_pixels`).
    preprocess : PreprocessConfig
        The model's preprocessing.

    Returns
    -------
    dict or None
        The stored-pixel record when the cutouts are model-sized and match, None
        for original images (any preprocessing applies).

    Raises
    ------
    GalaxyRayError
        The stored side differs from ``round(image_size / crop_fraction)`` of
        ``preprocess``, or the pack's ``version`` (1 when absent) from
        :attr:`PreprocessConfig.version`.
    """
    stored = stored_pixels(source)
    if stored is None:
        return None
    config = preprocess
    side = int(stored.get("stored_size", 0))
    if side != config.resize_to:
        name = getattr(source, "uri", source if isinstance(source, str) else "the source")
        raise GalaxyRayError(
            f"{name}: cutouts are packed at {side} px (--image-size {stored.get('image_size')} --crop-fraction "
            f"{stored.get('crop_fraction')}), but this model resizes to {config.resize_to} px (image_size "
            f"{config.image_size}, crop_fraction {config.crop_fraction:g}); repack the original source with "
            f"`galaxy-ray pack --image-size {config.image_size} --crop-fraction {config.crop_fraction:g}`, "
            "or use the original source"
        )
    version = int(stored.get("version", 1))
    if version != config.version:
        name = getattr(source, "uri", source if isinstance(source, str) else "the source")
        raise GalaxyRayError(
            f"{name}: cutouts are packed with preprocessing version {version}, but this model was trained on "
            f"version {config.version} pixels (JPEGs decoded {_VERSION_WORDS[config.version]}); repack the "
            f"original source with this galaxy-ray (`galaxy-ray pack --image-size {config.image_size} "
            f"--crop-fraction {config.crop_fraction:g}` packs version {PIXELS_VERSION}), or use the original source"
        )
    return stored


def stored_version(source: Any, preprocess: PreprocessConfig) -> PreprocessConfig:
    """``preprocess`` with the preprocessing version of a model-sized pack (unchanged for original images).

    A model trained on packed pixels records the version that made them, so
    that inference on the original cutouts reproduces them.
    """
    stored = stored_pixels(source)
    if stored is None:
        return preprocess
    return PreprocessConfig(preprocess.image_size, preprocess.crop_fraction, int(stored.get("version", 1)))
