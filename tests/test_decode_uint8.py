"""The uint8 decode stage: blank/edge verdicts, pixels against plain Pillow and torchvision, preprocessing versions."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from galaxy_ray.data.decode import BlankCutoutError, decode_cutout, decode_pixels
from galaxy_ray.data.transforms import PIXELS_VERSION, PreprocessConfig, prepare_cutout, preprocess_batch
from galaxy_ray.errors import GalaxyRayError

SIDE = 192  # a real-size-like cutout; 96 px and less is DCT-scaled (1/2) for version 2


def _galaxy(side: int = SIDE, seed: int = 0) -> np.ndarray:
    """uint8 (H, W, 3): an elliptical galaxy on noisy sky that never reaches black."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side] - side / 2
    grey = 0.12 + 0.85 * np.exp(-(xx**2 / (side * 3.0) + yy**2 / side)) + rng.normal(0.0, 0.02, (side, side))
    grey = np.clip(grey, 0.02, 1.0)
    return np.round(np.stack([grey, 0.8 * grey, 0.6 * grey], axis=-1) * 255).astype(np.uint8)


def _encode(arr, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    (arr if isinstance(arr, Image.Image) else Image.fromarray(arr)).save(buf, fmt, **kw)
    return buf.getvalue()


def _plain(data: bytes, side: int, draft: bool = False) -> np.ndarray:
    """Reference written with Pillow alone: decode (optionally DCT-scaled), bilinear resize, (3, S, S)."""
    image = Image.open(io.BytesIO(data))
    if draft:
        image.draft("RGB", (side, side))
    return np.asarray(image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)).transpose(2, 0, 1)


def _float_reference(data: bytes, side: int) -> np.ndarray:
    """The float path of earlier galaxy-ray versions, written out: full decode / 255, torchvision AA bilinear, round."""
    from galaxy_ray.tv import torchvision  # noqa: F401
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    x = torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255).permute(2, 0, 1)
    x = F.resize(x, [side, side], interpolation=InterpolationMode.BILINEAR, antialias=True)
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()


# --- pixels -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("side", [160, 64])
def test_version_1_pixels_are_plain_pillow_and_within_1_of_the_float_path(fmt, side):
    data = _encode(_galaxy(), fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    pixels, coverage = prepare_cutout(data, "g", PreprocessConfig(side, 1.0, 1))
    assert pixels.dtype == np.uint8 and pixels.shape == (3, side, side) and coverage == 1.0
    np.testing.assert_array_equal(pixels, _plain(data, side))
    assert np.abs(pixels.astype(int) - _float_reference(data, side)).max() <= 1


def test_version_2_scales_a_jpeg_in_the_decoder_only_when_the_model_side_is_at_most_half():
    data = _encode(_galaxy(), "JPEG", quality=85)
    small = prepare_cutout(data, "g", PreprocessConfig(64))[0]
    np.testing.assert_array_equal(small, _plain(data, 64, draft=True))
    full = _float_reference(data, 64)
    assert not np.array_equal(small, _plain(data, 64))  # the DCT-scaled pixels differ a little ...
    assert np.abs(small.astype(int) - full).mean() < 1.5  # ... from the full-size decode
    large = prepare_cutout(data, "g", PreprocessConfig(160))[0]  # 160 > 192 / 2: decoded at full size
    np.testing.assert_array_equal(large, _plain(data, 160))
    png = _encode(_galaxy())  # only JPEGs have DCT scaling
    np.testing.assert_array_equal(prepare_cutout(png, "g", PreprocessConfig(64))[0], _plain(png, 64))


def test_the_centre_crop_of_uint8_pixels_is_the_central_square():
    data = _encode(_galaxy())
    pixels = prepare_cutout(data, "g", PreprocessConfig(48, 0.6))[0]  # resized to 80, cropped to 48
    np.testing.assert_array_equal(pixels, _plain(data, 80)[:, 16:64, 16:64])


def test_palette_grey_and_uint8_npy_cutouts_stay_uint8():
    rgb = _galaxy(64)
    grey = Image.fromarray(rgb).convert("L")
    palette = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    npy = io.BytesIO()
    np.save(npy, rgb)
    for data, expected in ((_encode(grey), np.asarray(grey.convert("RGB"))),
                           (_encode(palette), np.asarray(palette.convert("RGB"))), (npy.getvalue(), rgb)):
        cutout = decode_pixels(data, "x")
        assert cutout.pixels.dtype == np.uint8 and cutout.coverage == 1.0
        np.testing.assert_array_equal(cutout.pixels, expected)
        np.testing.assert_array_equal(decode_cutout(data, "x").pixels, expected / np.float32(255))


@pytest.mark.parametrize("version", [1, 2])
def test_a_model_sized_png_gives_back_the_pixels_of_its_original(version):
    from galaxy_ray.data.packed import model_sized_png

    jpeg = _encode(_galaxy(), "JPEG", quality=85)
    config = PreprocessConfig(64, 0.8, version)  # resized to 80 px: DCT-scaled by 2 for version 2
    png = model_sized_png(jpeg, "g.jpg", config)
    assert Image.open(io.BytesIO(png)).size == (80, 80)
    direct, again = (preprocess_batch({"image": np.array([b], dtype=object)}, config)["pixels"] for b in (jpeg, png))
    np.testing.assert_array_equal(again, direct)


# --- blank and edge verdicts on uint8 data ------------------------------------------------------


@pytest.mark.parametrize("value", [0, 255, 17])
def test_a_constant_cutout_is_blank_and_names_its_value_as_a_fraction(value):
    flat = np.full((SIDE, SIDE, 3), value, np.uint8)
    for fmt in ("PNG", "JPEG"):
        with pytest.raises(BlankCutoutError) as info:
            prepare_cutout(_encode(flat, fmt), "flat", PreprocessConfig(64))
        assert "no signal" in str(info.value)
        if fmt == "PNG":
            assert f"same value {value / 255:g}" in str(info.value) or "no pixel holds data" in str(info.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("side", [160, 64, 32])  # full-size decode, then DCT-scaled by 2 and by 4 (JPEG)
def test_an_edge_cutout_keeps_its_coverage_at_every_model_side(fmt, side):
    edge = _galaxy()
    edge[:, : SIDE // 3] = 0  # two thirds of the columns hold data
    pixels, coverage = prepare_cutout(_encode(edge, fmt, quality=75), "edge", PreprocessConfig(side))
    tolerance = 0.0 if fmt == "PNG" else 8 / SIDE  # JPEG ringing brightens a few black columns
    assert coverage == pytest.approx(2 / 3, abs=tolerance)
    assert pixels.shape == (3, side, side)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("side", [160, 32])
def test_a_cutout_mostly_outside_the_footprint_is_blank_with_its_coverage(fmt, side):
    edge = _galaxy()
    edge[: SIDE * 7 // 10] = 0  # 58 of 192 rows hold data: 30%
    out = preprocess_batch({"image": np.array([_encode(edge, fmt, quality=75)], dtype=object),
                            "source": np.array(["far.jpg"], dtype=object)}, PreprocessConfig(side))
    assert out["error"][0].startswith("far.jpg: no signal") and "at least 50% needed" in out["error"][0]
    assert out["coverage"][0] == pytest.approx(58 / 192, abs=1e-6 if fmt == "PNG" else 8 / SIDE)


def test_transparent_pixels_are_missing_in_the_uint8_path():
    rgba = np.concatenate([_galaxy(), np.full((SIDE, SIDE, 1), 255, np.uint8)], axis=-1)
    rgba[: SIDE // 4, :, 3] = 0  # a quarter transparent
    cutout = decode_pixels(_encode(rgba), "a.png")
    assert cutout.pixels.dtype == np.uint8 and cutout.coverage == pytest.approx(0.75)


def test_black_sky_floor_is_data_not_a_margin_in_the_uint8_path():
    yy, xx = np.mgrid[:64, :64] - 32
    rgb = np.round(np.stack([np.exp(-(xx**2 / 80.0 + yy**2 / 20.0))] * 3, axis=-1) * 255).astype(np.uint8)
    assert (rgb.max(axis=-1) == 0).mean() > 0.5  # black rows at every border: the slow path runs
    assert decode_pixels(_encode(rgb), "g.png").coverage == 1.0


# --- preprocessing versions ---------------------------------------------------------------------


def test_preprocessing_versions_in_the_spec_dict():
    assert PreprocessConfig(64).version == PIXELS_VERSION == 2
    assert PreprocessConfig(64).to_dict() == {"image_size": 64, "crop_fraction": 1.0, "version": 2}
    old = PreprocessConfig.from_dict({"image_size": 64, "crop_fraction": 0.5})  # a checkpoint before versions
    assert old.version == 1 and old.to_dict() == {"image_size": 64, "crop_fraction": 0.5}  # its run key unchanged
    assert PreprocessConfig.from_dict(PreprocessConfig(96, 0.8).to_dict()) == PreprocessConfig(96, 0.8)
    with pytest.raises(GalaxyRayError, match="preprocessing version 3: .*upgrade galaxy-ray"):
        PreprocessConfig.from_dict({"image_size": 64, "version": 3})


# --- the benchmark ------------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_decode_runs_small_and_ends_with_its_json_line():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(root / "jobs" / "bench_decode.py"), "--n", "4", "--sides", "32", "--repeats", "1",
         "--kaggle", "", "--gz2", "", "--png-sides", "48", "--fits-sides", "40"],
        capture_output=True, text=True, timeout=300, cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bench"] == "decode"
    assert [(r["set"], r["side"], r["n"]) for r in result["rows"]] == [("synthetic_png_48", 32, 4),
                                                                        ("synthetic_fits_40", 32, 4)]
    for row in result["rows"]:
        assert row["galaxy_ray_ms"] > 0 and row["ratio_to_plain"] == pytest.approx(
            row["plain_ms"] / row["galaxy_ray_ms"], rel=0.02)
