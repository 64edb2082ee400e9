"""Positions are never lost in silence: any celestial WCS gives RA/Dec, and RA columns in hours are questioned."""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy.io import fits

from galaxy_ray.data.sources.fits import FitsCutouts
from galaxy_ray.data.sources.positions import looks_like_hours, parse_positions
from galaxy_ray.schema import CatalogColumns as C


def _radio_cutout(path, ra: float, dec: float, side: int = 16) -> None:
    """A (STOKES, FREQ, H, W) = (1, 1, side, side) image with a SIN projection, as radio surveys write."""
    header = fits.Header()
    for axis, (ctype, crval, cdelt, unit) in enumerate(
            [("RA---SIN", ra, -1e-3, "deg"), ("DEC--SIN", dec, 1e-3, "deg"),
             ("FREQ", 1.4e9, 1e6, "Hz"), ("STOKES", 1.0, 1.0, "")], start=1):
        header[f"CTYPE{axis}"], header[f"CRVAL{axis}"], header[f"CDELT{axis}"] = ctype, crval, cdelt
        header[f"CRPIX{axis}"] = (side + 1) / 2 if axis <= 2 else 1.0  # 1-based: the image centre
        header[f"CUNIT{axis}"] = unit
    data = np.random.default_rng(0).normal(1.0, 0.1, (1, 1, side, side)).astype(np.float32)
    fits.PrimaryHDU(data, header).writeto(path)


def test_a_radio_style_four_axis_cutout_gets_the_position_of_its_centre(tmp_path):
    _radio_cutout(tmp_path / "vla_1.fits", 150.25, 2.5)
    _radio_cutout(tmp_path / "vla_2.fits", 10.0, -30.0)
    src = FitsCutouts(str(tmp_path))
    rows = src.read_rows(src.metadata()).to_pandas().set_index(C.OBJECT_ID)
    # CRPIX at the centre pixel: the centre's world coordinate is CRVAL itself
    assert np.allclose(rows.loc["vla_1", [C.RA, C.DEC]].to_numpy(float), [150.25, 2.5], atol=1e-9)
    assert np.allclose(rows.loc["vla_2", [C.RA, C.DEC]].to_numpy(float), [10.0, -30.0], atol=1e-9)


def test_an_ra_column_in_hours_is_warned_about_and_one_in_degrees_is_not(capsys):
    rng = np.random.default_rng(1)
    dec = rng.uniform(-5, 45, 50)
    hours = rng.uniform(8, 16, 50)
    ids = [str(i) for i in range(50)]
    ra, _ = parse_positions(pd.Series(hours), pd.Series(dec), ids, "survey.csv")
    assert np.array_equal(ra, hours)  # read as degrees, as documented: only a warning
    err = capsys.readouterr().err
    assert "survey.csv" in err and "in hours?" in err and "multiply it by 15" in err
    parse_positions(pd.Series(hours * 15), pd.Series(dec), ids, "survey.csv")
    assert "hours" not in capsys.readouterr().err
    # sexagesimal text says its own unit: no question to ask
    parse_positions(pd.Series(["12:30:49.4"] * 12), pd.Series(["+12:23:28"] * 11 + ["-40:00:00"]), ids[:12], "t")
    assert "hours" not in capsys.readouterr().err
    assert not looks_like_hours(np.array([1.0, 2.0] * 6), np.array([0.0, 0.5] * 6))  # a small field in degrees
