"""Survey files as astronomers have them: oversized, compressed, every bit depth, blank or half-covered.

Every file is built here with numpy, astropy or Pillow; every expected value is
computed from the array the file was built from, not from the decoder.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import struct
import zlib

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from galaxy_ray.data.coverage import MIN_COVERAGE
from galaxy_ray.data.cutout import JPEG_BLOCK, MAX_CUTOUT_SIDE
from galaxy_ray.data.decode import BlankCutoutError, DecodeError, decode_cutout, decode_image
from galaxy_ray.data.transforms import COVERAGE, PreprocessConfig, preprocess_batch, row_error
from galaxy_ray.data.unwrap import UnwrapError, unwrap

SIZE = 96  # divisible by 3 (edge cutouts) and by 16 (JPEG blocks)


def _sky_galaxy(size: int = SIZE, seed: int = 0) -> np.ndarray:
    """Float (H, W) in (0, 1]: a galaxy on noisy sky that never reaches exact black, like a survey JPEG."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    img = 0.12 + 0.85 * np.exp(-(xx**2 / 200.0 + yy**2 / 60.0)) + rng.normal(0.0, 0.02, (size, size))
    return np.clip(img, 0.02, 1.0)


def _png(arr: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    (arr if isinstance(arr, Image.Image) else Image.fromarray(arr)).save(buf, fmt, **kw)
    return buf.getvalue()


def _rgb8(img: np.ndarray) -> np.ndarray:
    return np.round(np.stack([img, 0.8 * img, 0.6 * img], axis=-1) * 255).astype(np.uint8)


def _cube(seed: int = 1) -> np.ndarray:
    """A sky-subtracted g, r, z cube in nanomaggies: noise around zero and a galaxy."""
    rng = np.random.default_rng(seed)
    gal = _sky_galaxy(SIZE, seed) - 0.12
    return np.stack([0.6 * gal, gal, 1.3 * gal]).astype(np.float32) + rng.normal(0, 0.01, (3, SIZE, SIZE)).astype(
        np.float32
    )


def _fits_bytes(*hdus) -> bytes:
    buf = io.BytesIO()
    fits.HDUList(list(hdus)).writeto(buf)
    return buf.getvalue()


def _batch(images: list, names: list[str]) -> dict[str, np.ndarray]:
    col = np.empty(len(images), dtype=object)
    col[:] = images
    return {"object_id": np.array(names, dtype=object), "source": np.array(names, dtype=object), "image": col}


# --- 1. one cutout never stops a job; the size cap is checked before decoding -------------------


def _png_declaring(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR is patched to declare width x height (with a correct CRC)."""
    data = bytearray(_png(np.zeros((4, 4), dtype=np.uint8)))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _huge_one_bit_png() -> bytes:
    """A real 13500 x 13500 1-bit PNG (about 25 kB): over Pillow's own decompression-bomb limit."""
    return _png(Image.new("1", (13500, 13500)))


def test_oversized_images_are_error_rows_naming_the_cap_and_the_batch_goes_on():
    good = _png(_rgb8(_sky_galaxy()))
    header = fits.PrimaryHDU(np.zeros((2, 2), np.float32)).header
    header["NAXIS1"], header["NAXIS2"] = 5000, 5000  # the header alone: the cap must not read pixels
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "<f4", "fortran_order": False, "shape": (3, 5000, 5000)})
    images = [good, _huge_one_bit_png(), _png_declaring(5000, 5000), header.tostring().encode(), npy.getvalue(), good]
    names = ["ok1.png", "bomb.png", "patched.png", "wide.fits", "wide.npy", "ok2.png"]
    out = preprocess_batch(_batch(images, names), PreprocessConfig(32))
    assert out["error"][0] is None and out["error"][5] is None
    assert out["pixels"][0].any() and np.array_equal(out["pixels"][0], out["pixels"][5])
    cap = f"{MAX_CUTOUT_SIDE} x {MAX_CUTOUT_SIDE}"
    for i in range(1, 5):
        message = out["error"][i]
        assert message.startswith(f"{names[i]}: ") and cap in message and "\n" not in message, message
        assert not out["pixels"][i].any() and np.isnan(out[COVERAGE][i])
    assert "5000 x 5000" in out["error"][2]


def test_any_exception_of_one_cutout_becomes_its_row_error():
    good = _png(_rgb8(_sky_galaxy()))
    # A reader that hands over a number instead of bytes: a TypeError, not a DecodeError.
    out = preprocess_batch(_batch([good, 42, good], ["a.png", "b.png", "c.png"]), PreprocessConfig(32))
    assert out["error"][0] is None and out["error"][2] is None
    assert out["error"][1].startswith("b.png: TypeError: ")
    assert row_error("x.fits", MemoryError()) == "x.fits: MemoryError"
    assert row_error("x.fits", ValueError("bad\nsecond line")) == "x.fits: ValueError: bad"
    assert row_error("", OSError("disk")) == "<cutout>: OSError: disk"


# --- 2. compressed wrappers and tile-compressed FITS --------------------------------------------


def test_the_same_cube_decodes_the_same_however_it_is_wrapped():
    cube = _cube()
    plain = _fits_bytes(fits.PrimaryHDU(cube))
    expected = decode_image(plain, "x.fits")
    wrapped = {
        "x.fits.gz": gzip.compress(plain),
        "x.fits.bz2": bz2.compress(plain),
        "x.fits.xz": lzma.compress(plain),
        "x.fits.gz.gz": gzip.compress(gzip.compress(plain)),
        # tile compression: empty primary, the image in HDU 1; GZIP_2 without quantisation is lossless
        "x.fits.fz": _fits_bytes(fits.PrimaryHDU(), fits.CompImageHDU(cube, compression_type="GZIP_2",
                                                                      quantize_level=0.0)),
        "x_ext.fits": _fits_bytes(fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
            [fits.Column("a", "E", array=np.zeros(3))]), fits.ImageHDU(cube)),
    }
    for name, data in wrapped.items():
        np.testing.assert_array_equal(decode_image(data, name), expected, err_msg=name)
    # The default fpack-style RICE_1 quantises floats to 1/16 of the sky noise, which the asinh
    # stretch amplifies near black: the same image within a few counts, about one on average.
    diff = np.abs(decode_image(_fits_bytes(fits.PrimaryHDU(), fits.CompImageHDU(cube)), "x_rice.fits.fz") - expected)
    assert diff.max() <= 16 / 255 and diff.mean() < 1 / 255
    png = _rgb8(_sky_galaxy())
    np.testing.assert_array_equal(decode_image(gzip.compress(_png(png)), "x.png.gz"), png / np.float32(255))


def test_compression_bombs_and_broken_wrappers_are_refused():
    bomb = gzip.compress(bytes(2 * 2**20))  # 2 MiB of zeros in about 2 kB
    assert len(bomb) < 10_000
    with pytest.raises(UnwrapError, match="inflates to more than 1 MiB"):
        unwrap(bomb, limit=2**20)
    assert unwrap(bomb, limit=4 * 2**20) == bytes(2 * 2**20)
    plain = _fits_bytes(fits.PrimaryHDU(_cube()))
    for name, data, needle in [("t.fits.gz", gzip.compress(plain)[:500], "corrupt or truncated gzip"),
                               ("t.fits.bz2", b"BZh9" + b"\x00" * 50, "corrupt or truncated bzip2")]:
        with pytest.raises(DecodeError) as info:
            decode_image(data, name)
        assert str(info.value).startswith(f"{name}: ") and needle in str(info.value)


# --- 3. every bit depth and mode Pillow opens ---------------------------------------------------


def _galaxy_unit(size: int = 128) -> np.ndarray:
    """A galaxy scaled so that its brightest 0.1% of pixels reach 1.0."""
    img = _sky_galaxy(size, seed=3)
    return np.clip(img / np.quantile(img, 0.999), 0.0, 1.0)


def test_sixteen_bit_png_is_scaled_not_clipped():
    g = _galaxy_unit()
    png16 = _png(np.round(g * 65535).astype(np.uint16))
    png8 = _png(np.round(g * 255).astype(np.uint8))
    assert Image.open(io.BytesIO(png16)).mode in ("I;16", "I")
    a16, a8 = decode_image(png16, "g16.png"), decode_image(png8, "g8.png")
    np.testing.assert_allclose(a16[..., 0], np.round(g * 65535) / 65535, atol=1e-6)
    assert np.abs(a16 - a8).max() <= 1 / 255
    saturated = float((a16 >= 1.0).mean())
    assert 0.0 < saturated < 0.005  # ~0.1% (the galaxy's core), not a quarter of the image


def _modes() -> list[tuple[str, bytes, np.ndarray, float]]:
    """(mode, encoded image, expected (H, W, 3) in [0, 1], tolerance), expected values from the arrays."""
    rng = np.random.default_rng(7)
    grey = rng.integers(10, 250, (40, 40), dtype=np.uint8)
    rgb = rng.integers(10, 250, (40, 40, 3), dtype=np.uint8)
    rep = lambda a: np.repeat(a[..., None], 3, axis=-1)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    p_img = Image.fromarray(grey, "L").convert("P")
    p_img.putpalette(palette.tobytes())
    cmyk = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
    bits = rng.random((40, 40)) < 0.5
    grey16 = rng.integers(0, 65536, (40, 40), dtype=np.uint16)
    grey32 = rng.integers(0, 60000, (40, 40), dtype=np.int32)
    alpha = np.full((40, 40), 255, dtype=np.uint8)
    return [
        ("L", _png(grey), rep(grey / 255), 1e-6),
        ("P", _png(p_img), palette[grey] / 255, 1e-6),
        ("RGBA", _png(np.dstack([rgb, alpha])), rgb / 255, 1e-6),
        ("LA", _png(Image.fromarray(np.dstack([grey, alpha]), "LA")), rep(grey / 255), 1e-6),
        ("CMYK", _png(Image.fromarray(cmyk, "CMYK"), "TIFF"),
         (1 - cmyk[..., :3] / 255) * (1 - cmyk[..., 3:] / 255), 1 / 255 + 1e-6),
        ("1", _png(Image.fromarray(bits)), rep(bits.astype(np.float64)), 1e-6),
        ("I;16", _png(grey16), rep(grey16 / 65535), 1e-6),
        ("I", _png(Image.fromarray(grey32), "TIFF"), rep(grey32 / 65535), 1e-6),
        ("RGB-tiff", _png(rgb, "TIFF"), rgb / 255, 1e-6),
    ]


@pytest.mark.parametrize("mode, data, expected, tol", _modes(), ids=[m[0] for m in _modes()])
def test_every_pillow_mode_is_unit_rgb_with_the_right_values(mode, data, expected, tol):
    img = decode_image(data, f"m.{mode}")
    assert img.dtype == np.float32 and img.shape == (40, 40, 3)
    assert 0.0 <= img.min() and img.max() <= 1.0
    np.testing.assert_allclose(img, expected, atol=tol)


def test_float_tiff_is_a_band_through_the_lupton_stretch():
    flux = (_sky_galaxy() - 0.12).astype(np.float32)
    img = decode_image(_png(Image.fromarray(flux, "F"), "TIFF"), "f.tiff")
    assert img.shape == (SIZE, SIZE, 3) and 0.0 <= img.min() and img.max() <= 1.0
    assert img[SIZE // 2, SIZE // 2].mean() > img[2, 2].mean() + 0.3


# --- 4. blank cutouts and partly covered ones ---------------------------------------------------


def test_blank_cutouts_are_error_rows_and_edge_cutouts_are_classified_with_their_coverage():
    third = SIZE // 3
    sky = _sky_galaxy()
    edge_png = _rgb8(sky)
    edge_png[:, :third] = 0  # outside the footprint: black
    nan_cube = _cube()
    nan_cube[:, :, :third] = np.nan
    zero_cube = _cube()
    zero_cube[:, :, :third] = 0.0
    mostly_nan = _cube()
    mostly_nan[:, :, : 2 * third] = np.nan
    rgba = np.dstack([_rgb8(sky), np.full((SIZE, SIZE), 255, np.uint8)])
    rgba[:, :third, 3] = 0  # transparent
    rows = {
        "full.png": (_png(_rgb8(sky)), 1.0),
        "edge.png": (_png(edge_png), (SIZE - third) / SIZE),
        "edge_nan.fits": (_fits_bytes(fits.PrimaryHDU(nan_cube)), np.isfinite(nan_cube).any(0).mean()),
        "edge_zero.fits": (_fits_bytes(fits.PrimaryHDU(zero_cube)), (SIZE - third) / SIZE),
        "edge_alpha.png": (_png(rgba), (rgba[..., 3] > 0).mean()),
        "zero.jpg": (_png(np.zeros((SIZE, SIZE, 3), np.uint8), "JPEG"), None),
        "zero.fits": (_fits_bytes(fits.PrimaryHDU(np.zeros((3, SIZE, SIZE), np.float32))), None),
        "white.png": (_png(np.full((SIZE, SIZE, 3), 255, np.uint8)), None),
        "mostly_nan.fits": (_fits_bytes(fits.PrimaryHDU(mostly_nan)), None),
    }
    names = list(rows)
    out = preprocess_batch(_batch([rows[n][0] for n in names], names), PreprocessConfig(48))
    assert out[COVERAGE].dtype == np.float32
    for i, name in enumerate(names):
        expected = rows[name][1]
        if expected is not None:
            assert out["error"][i] is None, (name, out["error"][i])
            assert out[COVERAGE][i] == pytest.approx(expected, abs=1e-6), name
            assert out["pixels"][i].any()
        else:
            message = out["error"][i]
            assert message.startswith(f"{name}: no signal: blank or outside the survey footprint"), message
            assert not out["pixels"][i].any()
            assert out[COVERAGE][i] < MIN_COVERAGE or "same value" in message
    assert rows["edge.png"][1] == pytest.approx(2 / 3)


def test_missing_pixels_are_black_and_the_stretch_ignores_them():
    cube = _cube()
    edge = cube.copy()
    edge[:, :, : SIZE // 3] = np.nan
    full = decode_cutout(_fits_bytes(fits.PrimaryHDU(cube)), "full.fits")
    cut = decode_cutout(_fits_bytes(fits.PrimaryHDU(edge)), "edge.fits")
    assert np.isfinite(cut.pixels).all() and not cut.pixels[:, : SIZE // 3].any()
    assert full.coverage == 1.0 and cut.coverage == pytest.approx(2 / 3)
    # the galaxy keeps its brightness: the stretch's black and white points come from the pixels with data
    centre = (slice(SIZE // 2 - 4, SIZE // 2 + 4),) * 2
    assert cut.pixels[centre].mean() == pytest.approx(full.pixels[centre].mean(), abs=0.1)


def test_a_blank_cutout_error_keeps_its_coverage():
    with pytest.raises(BlankCutoutError) as info:
        decode_cutout(_fits_bytes(fits.PrimaryHDU(np.zeros((3, SIZE, SIZE), np.float32))), "z.fits")
    assert info.value.coverage == 0.0 and isinstance(info.value, DecodeError)
    again = pickle.loads(pickle.dumps(info.value))  # Ray ships exceptions between processes
    assert str(again) == str(info.value) and again.coverage == 0.0


@pytest.mark.parametrize("quality", [60, 75, 90])
@pytest.mark.parametrize("blank_columns", [21, 30, 32, 37])
def test_a_jpeg_edge_cutout_has_its_coverage_despite_the_compression_ringing(quality, blank_columns):
    edge = _rgb8(_sky_galaxy())
    edge[:, :blank_columns] = 0
    cutout = decode_cutout(_png(edge, "JPEG", quality=quality), "edge.jpg")
    # ringing brightens a few black columns next to the data: within half a JPEG block
    assert cutout.coverage == pytest.approx((SIZE - blank_columns) / SIZE, abs=JPEG_BLOCK / 2 / SIZE)


def test_black_sky_of_a_noise_free_image_is_data_not_a_footprint_edge():
    # A display stretch that clips the sky to black leaves whole black rows around a galaxy;
    # black inside the galaxy's box too says that black is the sky's floor, not fill.
    yy, xx = np.mgrid[:64, :64] - 32
    galaxy = np.exp(-(xx**2 / 80.0 + yy**2 / 20.0))
    rgb = np.round(np.stack([galaxy] * 3, axis=-1) * 255).astype(np.uint8)
    assert (~rgb.any(axis=-1)).mean() > 0.5
    for fmt in ("PNG", "JPEG"):
        assert decode_cutout(_png(rgb, fmt), f"g.{fmt}").coverage == 1.0
    assert decode_cutout(_fits_bytes(fits.PrimaryHDU(np.stack([galaxy] * 3).astype(np.float32)))).coverage == 1.0
