"""Pixels: light profiles on the cutout grid, dust, field objects, PSF, noise and colour.

The light passes through a Moffat PSF (astropy kernels, worse seeing in the
blue), sky and photon noise are added, field stars and faint background
galaxies scattered, and the g, r, z bands coloured with astropy's Lupton et
al. (2004) asinh stretch.  Pixel values are nanomaggies per pixel.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable

import numpy as np
from astropy.modeling.models import Gaussian2D

from galaxy_ray.synthetic.profiles import Profile
from galaxy_ray.synthetic.recipes import Component, Look, Recipe
from galaxy_ray.synthetic.sky import pixel_scale

BANDS = "grz"
#: Sky noise per band, nanomaggies per square arcsec (DECaLS-like depths: z is shallowest).
SKY_SIGMA = np.array([0.030, 0.050, 0.110])
#: Lupton colour stretch: Q, stretch (nanomaggies per square arcsec) and per-band weights (g, r, z)
#: that give a typical galaxy (g - r = 0.65) the warm tone of survey cutouts, star-forming parts blue.
LUPTON_Q = 8.0
LUPTON_STRETCH = 1.0
LUPTON_WEIGHTS = np.array([1.4, 1.0, 0.7])


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (float32: numpy's float32 exp/log/cos are SIMD-fast), origin at the centre."""
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return x - np.float32(c), y - np.float32(c)


def _stamp_slices(stamp: tuple[float, float, float] | None, size: int) -> tuple[slice, slice] | None:
    """Rows and columns of the cutout that a stamp covers; None when it misses the cutout."""
    if stamp is None:
        return slice(None), slice(None)
    x, y, half = stamp
    c = (size - 1) / 2.0
    x0, x1 = max(int(math.floor(x + c - half)), 0), min(int(math.ceil(x + c + half)) + 1, size)
    y0, y1 = max(int(math.floor(y + c - half)), 0), min(int(math.ceil(y + c + half)) + 1, size)
    if x0 >= x1 or y0 >= y1:
        return None
    return slice(y0, y1), slice(x0, x1)


def render_profiles(profiles: Iterable[Profile], size: int, warp=None) -> np.ndarray:
    """Sum of profiles on the cutout grid, each only over its stamp.

    Parameters
    ----------
    profiles : iterable of Profile
        Parameters in pixels, centred on the cutout centre.
    size : int
        Cutout side in pixels.
    warp : (float, float, float, float), optional
        Sinusoidal distortion of the coordinates (amplitude and wavelength in
        frame units, two phases); when given, every profile covers the whole cutout.

    Returns
    -------
    numpy.ndarray
        float32 (size, size), in the profiles' amplitude units per pixel.
    """
    x, y = _grid(size)
    image = np.zeros((size, size), dtype=np.float32)
    for profile in profiles:
        region = _stamp_slices(None if warp is not None else profile.stamp, size)
        if region is None:
            continue
        xs, ys = x[region], y[region]
        if warp is not None:  # tidal / irregular distortion of the coordinates
            amp, wavelength, phx, phy = warp
            k = 2 * np.pi / (wavelength * size)
            xs, ys = xs + amp * size * np.sin(k * ys + phx), ys + amp * size * np.sin(k * xs + phy)
        image[region] += profile.model.evaluate(xs, ys, *profile.params)
    return image


@lru_cache(maxsize=256)
def _psf_fft(size: int, fwhm_px_centi: int) -> tuple[np.ndarray, int]:
    """FFT of the g, r, z Moffat PSFs (astropy kernels) on the padded grid, and the pad.

    The seeing is worse in the blue: FWHM scales as wavelength^-0.2.
    """
    from astropy.convolution import Moffat2DKernel

    fwhm_r = fwhm_px_centi / 100.0
    beta = 3.5
    half = max(2, int(math.ceil(2.2 * fwhm_r * 1.1)))
    shape = _fft_length(size + 2 * half)
    kernels = []
    for scale in (1.07, 1.0, 0.93):
        gamma = fwhm_r * scale / (2.0 * math.sqrt(2 ** (1 / beta) - 1))
        k = Moffat2DKernel(gamma=gamma, alpha=beta, x_size=2 * half + 1, y_size=2 * half + 1, mode="oversample")
        k.normalize()
        kernels.append(np.fft.rfft2(k.array.astype(np.float32), s=(shape, shape)))
    return np.stack(kernels), half


def _fft_length(n: int) -> int:
    """Smallest length >= n with no prime factor above 5 (a fast FFT size)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _convolve_psf(cube: np.ndarray, fwhm_px: float) -> np.ndarray:
    """Blur the (3, S, S) cube by the PSF: zero-padded (not wrapped) linear convolution.

    The kernels are astropy's; the product is taken with numpy's real FFT directly
    because ``astropy.convolution.convolve_fft`` (NaN handling, complex FFTs) is
    ten times slower and the cube has no NaNs.
    """
    size = cube.shape[-1]
    kernel_fft, half = _psf_fft(size, int(round(fwhm_px * 10)) * 10)  # 0.1 px steps: few kernels to cache
    shape = _fft_length(size + 2 * half)
    # the image sits at the start of the padded grid, the kernel centre at (half, half)
    out = np.fft.irfft2(np.fft.rfft2(cube, s=(shape, shape)) * kernel_fft, s=(shape, shape))
    return out[:, half:half + size, half:half + size]


def _evaluate(component: Component, size: int) -> np.ndarray:
    return render_profiles(component.model(float(size)), size, component.warp)


def _band_factors(gr: float, rz: float) -> np.ndarray:
    """Flux in g, r, z relative to r for the given colours."""
    return np.array([10 ** (-0.4 * gr), 1.0, 10 ** (0.4 * rz)])


def draw_field(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Field stars and faint background galaxies, in frame units.

    Drawn from the galaxy's stream whatever the cutout size, so a galaxy keeps
    its neighbours at every size.  Fluxes are nanomaggies (magnitudes 15.5-21.5
    for stars, 19-22 for background galaxies); ``gr`` is their g - r colour.
    """
    n_stars = int(rng.poisson(1.0))
    r = rng.uniform(0.18, 0.7, n_stars)  # keep the target itself free of stars
    phi = rng.uniform(0, 2 * np.pi, n_stars)
    stars = {
        "x": np.clip(r * np.cos(phi), -0.49, 0.49), "y": np.clip(r * np.sin(phi), -0.49, 0.49),
        "flux": 10 ** ((22.5 - rng.uniform(15.5, 21.5, n_stars)) / 2.5),
        "gr": rng.uniform(0.2, 1.5, n_stars),
    }
    n_bg = int(rng.poisson(2.0))
    background = {
        "x": rng.uniform(-0.5, 0.5, n_bg), "y": rng.uniform(-0.5, 0.5, n_bg),
        "sigma": rng.uniform(0.004, 0.012, n_bg), "ellip": rng.uniform(0.0, 0.6, n_bg),
        "theta": rng.uniform(0, np.pi, n_bg),
        "flux": 10 ** ((22.5 - rng.uniform(19.0, 22.0, n_bg)) / 2.5),
        "gr": rng.uniform(0.5, 1.4, n_bg),
    }
    return {"stars": stars, "background": background}


def _add_field(cube: np.ndarray, field_: dict[str, dict[str, np.ndarray]], size: int) -> None:
    stars, bg = field_["stars"], field_["background"]
    c = (size - 1) / 2.0
    if len(stars["x"]):
        # point sources spread bilinearly over 4 pixels; the PSF gives them their shape
        fx, fy = stars["x"] * size + c, stars["y"] * size + c
        ix, iy = np.floor(fx).astype(int), np.floor(fy).astype(int)
        dx, dy = fx - ix, fy - iy
        colours = np.array([10 ** (-0.4 * stars["gr"]), np.ones_like(stars["gr"]), 10 ** (0.2 * stars["gr"])])
        for ox, oy, w in ((0, 0, (1 - dx) * (1 - dy)), (1, 0, dx * (1 - dy)), (0, 1, (1 - dx) * dy), (1, 1, dx * dy)):
            px, py = np.clip(ix + ox, 0, size - 1), np.clip(iy + oy, 0, size - 1)
            for b in range(3):
                np.add.at(cube[b], (py, px), w * stars["flux"] * colours[b])
    if len(bg["x"]):
        colours = np.array([10 ** (-0.4 * bg["gr"]), np.ones_like(bg["gr"]), 10 ** (0.2 * bg["gr"])])
        for k in range(len(bg["x"])):
            s, q = max(bg["sigma"][k] * size, 0.45), 1.0 - bg["ellip"][k]
            x, y = bg["x"][k] * size, bg["y"][k] * size
            profile = Profile(Gaussian2D, (bg["flux"][k] / (2 * np.pi * s * s * q), x, y, s, s * q, bg["theta"][k]),
                              (x, y, 4 * s + 1))
            image = render_profiles([profile], size)
            cube += colours[:, k, None, None] * image


def paint(recipe: Recipe, look: Look, field_: dict, size: int, noise_rng: np.random.Generator) -> np.ndarray:
    """The g, r, z bands of a galaxy: components, dust, field, PSF, noise.

    Parameters
    ----------
    recipe : Recipe
        The galaxy's components and dust lane.
    look : Look
        Flux, colours and seeing.
    field_ : dict
        :func:`draw_field`'s stars and background galaxies.
    size : int
        Cutout side in pixels.
    noise_rng : numpy.random.Generator
        Stream of the pixel noise (its number of draws depends on ``size``).

    Returns
    -------
    numpy.ndarray
        float32 (3, size, size), nanomaggies per pixel.
    """
    area = pixel_scale(size) ** 2  # square arcsec per pixel
    cube = np.zeros((3, size, size), dtype=np.float32)
    dusty = np.zeros((3, size, size), dtype=np.float32)
    total_weight = sum(c.weight for c in recipe.components)
    for component in recipe.components:
        image = _evaluate(component, size)
        total = float(image.sum())
        if not total > 0:
            continue  # entirely outside the cutout
        rgb = _band_factors(look.gr + component.dcolour, look.rz + 0.5 * component.dcolour)
        rgb *= look.flux * component.weight / total_weight / total
        (dusty if component.dusty else cube)[...] += rgb.astype(np.float32)[:, None, None] * image
    if recipe.dust is not None:
        x0, y0, theta, width, tau = recipe.dust
        lane = Profile(Gaussian2D, (1.0, x0 * size, y0 * size, 0.45 * size, max(width * size, 0.4), theta))
        dusty *= np.exp(-np.float32(tau) * np.array([1.4, 1.0, 0.6], np.float32)[:, None, None]
                        * render_profiles([lane], size))
    cube += dusty
    _add_field(cube, field_, size)
    cube = _convolve_psf(cube, look.psf_fwhm / pixel_scale(size))
    sigma = (SKY_SIGMA * area).astype(np.float32)[:, None, None]
    # sky noise plus photon noise of the sources (the galaxy's core gets noisier, not cleaner)
    noise = np.sqrt(sigma * (sigma + np.maximum(cube, 0.0) / 4.0))
    noise *= noise_rng.standard_normal(cube.shape, dtype=np.float32)
    return (cube + noise).astype(np.float32)


def lupton_rgb(bands: np.ndarray, size: int | None = None) -> np.ndarray:
    """Colour image of a g, r, z cube with astropy's Lupton et al. (2004) asinh stretch.

    Parameters
    ----------
    bands : numpy.ndarray
        (3, S, S) g, r, z in nanomaggies per pixel.
    size : int, optional
        Cutout side (default: the cube's); sets the pixel area the stretch is scaled by.

    Returns
    -------
    numpy.ndarray
        uint8 (S, S, 3): z, r, g as red, green, blue.
    """
    from astropy.visualization import make_lupton_rgb

    size = bands.shape[-1] if size is None else size
    area = pixel_scale(size) ** 2
    g, r, z = (bands[i] * np.float32(LUPTON_WEIGHTS[i]) for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        return make_lupton_rgb(z, r, g, minimum=0.0, stretch=LUPTON_STRETCH * area, Q=LUPTON_Q)
