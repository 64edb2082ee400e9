"""Decoding and transforms: every encoding, every failure as one line naming its source."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from PIL import Image

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.data.decode import DecodeError, decode_image, detect_encoding
from galaxy_ray.data.transforms import PreprocessConfig, ok_rows, preprocess_batch


def _galaxy(size: int = 48) -> np.ndarray:
    """An elongated blob, off-centre so that rotations change the pixels."""
    yy, xx = np.mgrid[:size, :size] - size / 2
    img = np.exp(-((xx - 4) ** 2 / 60.0 + yy**2 / 15.0))
    rgb = np.stack([img, 0.8 * img, 0.5 * img], axis=-1)
    return (255 * rgb).astype(np.uint8)


def _encode(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def _fits(cube: np.ndarray) -> bytes:
    buf = io.BytesIO()
    fits.PrimaryHDU(cube.astype(np.float32)).writeto(buf)
    return buf.getvalue()


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_decodes_every_encoding_to_unit_rgb():
    gal = _galaxy()
    cube = np.stack([gal[..., 2], gal[..., 1], gal[..., 0]]).astype(np.float32) / 100.0  # g, r, z
    for data, kind in [(_encode(gal, "PNG"), "png"), (_encode(gal, "JPEG"), "jpeg"),
                       (_fits(cube), "fits"), (_npy(gal), "npy"), (_npy(cube), "npy")]:
        assert detect_encoding(data) == kind
        img = decode_image(data, "x")
        assert img.dtype == np.float32 and img.shape == (48, 48, 3)
        assert 0.0 <= img.min() and img.max() <= 1.0
        # the galaxy is brighter than the corner sky whatever the encoding
        assert img[24, 28].mean() > img[2, 2].mean() + 0.2
    png = decode_image(_encode(gal, "PNG"))
    np.testing.assert_allclose(png, gal / 255.0, atol=1e-6)  # lossless path is exact


def test_fits_with_some_nan_pixels_still_decodes():
    cube = np.stack([_galaxy()[..., 0].astype(np.float32)] * 3)
    cube[:, :5, :5] = np.nan
    img = decode_image(_fits(cube), "partly_masked.fits")
    assert np.isfinite(img).all()


@pytest.mark.parametrize(
    "data, needle",
    [
        (None, "no image bytes"),
        (b"", "no image bytes"),
        (b"GIF89a-not-supported", "not JPEG, PNG, TIFF, FITS or .npy"),
        ("truncated-jpeg", "corrupt or truncated JPEG"),
        ("nan-fits", "all NaN"),
        ("bad-shape", "raw pixels of shape"),
    ],
)
def test_bad_cutouts_are_one_line_naming_the_source(data, needle):
    if data == "truncated-jpeg":
        full = _encode(_galaxy(), "JPEG")
        data = full[: len(full) // 2]
    elif data == "nan-fits":
        data = _fits(np.full((3, 16, 16), np.nan))
    elif data == "bad-shape":
        data = _npy(np.zeros((5, 7, 9, 2), dtype=np.uint8))
    with pytest.raises(DecodeError) as info:
        decode_image(data, "survey/obj42.jpg")
    message = str(info.value)
    assert message.startswith("survey/obj42.jpg: ") and needle in message and "\n" not in message
    assert isinstance(info.value, GalaxyRayError)


def test_config_round_trips_and_rejects_bad_values():
    cfg = PreprocessConfig(64, 0.75)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.resize_to == 85
    for bad in [dict(image_size=4), dict(image_size=64, crop_fraction=0.0), dict(image_size=64, crop_fraction=1.5)]:
        with pytest.raises(GalaxyRayError):
            PreprocessConfig(**bad)


def _batch() -> dict[str, np.ndarray]:
    gal = _galaxy()
    images = np.empty(4, dtype=object)
    images[:] = [_encode(gal, "PNG"), None, b"junk", _encode(np.rot90(gal).copy(), "PNG")]
    return {
        "object_id": np.array(["a", "b", "c", "d"], dtype=object),
        "source": np.array(["a.png", "b.png", "c.png", "d.png"], dtype=object),
        "image": images,
        "label": np.array(["x", "y", "x", "y"], dtype=object),
    }


def test_preprocess_batch_flags_bad_rows_and_keeps_columns():
    out = preprocess_batch(_batch(), PreprocessConfig(32, 0.8))
    assert "image" not in out and list(out["label"]) == ["x", "y", "x", "y"]
    assert out["pixels"].shape == (4, 3, 32, 32) and out["pixels"].dtype == np.uint8
    assert out["error"][0] is None and out["error"][3] is None
    assert out["error"][1].startswith("b.png: ") and out["error"][2].startswith("c.png: ")
    assert not out["pixels"][1].any() and not out["pixels"][2].any()
    # no normalisation in preprocessing: sky (black) stays 0, the galaxy's core near 255
    assert out["pixels"][0, :, 0, 0].tolist() == [0, 0, 0] and out["pixels"][0, 0].max() > 200


def test_pixels_are_the_unit_image_quantised_once():
    # No resize and no crop: the lossless PNG must come back byte for byte, so
    # the model input is round(clip(x, 0, 1) * 255) of the decoded image, not
    # a normalised image that was quantised.
    gal = _galaxy()
    batch = {"object_id": np.array(["a"], dtype=object), "image": np.array([_encode(gal, "PNG")], dtype=object)}
    out = preprocess_batch(batch, PreprocessConfig(48))
    np.testing.assert_array_equal(out["pixels"][0], gal.transpose(2, 0, 1))


def test_reader_no_error_markers_become_none():
    gal = _encode(_galaxy(), "PNG")
    markers = [None, "", float("nan"), pd.NA, "a.fits: unreadable"]
    errors = np.empty(5, dtype=object)
    errors[:] = markers
    batch = {"object_id": np.array(list("abcde"), dtype=object), "image": np.array([gal] * 5, dtype=object),
             "error": errors}
    assert ok_rows(errors).tolist() == [True, True, True, True, False]
    out = preprocess_batch(batch, PreprocessConfig(32))
    assert list(out["error"]) == [None, None, None, None, "a.fits: unreadable"]
    assert all(out["pixels"][i].any() for i in range(4)) and not out["pixels"][4].any()


def test_evaluation_is_deterministic_and_augmentation_is_seeded():
    cfg = PreprocessConfig(32)
    unit = lambda out: out["pixels"].astype(np.float32) / 255.0  # uint8 differences would wrap around
    a = unit(preprocess_batch(_batch(), cfg))
    b = unit(preprocess_batch(_batch(), cfg))
    np.testing.assert_array_equal(a, b)
    s1 = unit(preprocess_batch(_batch(), cfg, augment=True, seed=3))
    s2 = unit(preprocess_batch(_batch(), cfg, augment=True, seed=3))
    s3 = unit(preprocess_batch(_batch(), cfg, augment=True, seed=4))
    np.testing.assert_array_equal(s1, s2)
    assert np.abs(s1[0] - s3[0]).mean() > 1e-3
    assert np.abs(s1[0] - a[0]).mean() > 1e-3
    # augmentation keeps the galaxy: total flux stays within the brightness jitter and zoom
    assert 0.6 < s1[0].sum() / a[0].sum() < 1.5
