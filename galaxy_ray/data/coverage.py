"""Which pixels of a cutout hold data, and when a cutout is blank.

Cutouts near a survey's edge or over a gap between detectors are partly
empty, and one requested outside the footprint is empty throughout.  Surveys
mark missing pixels in one of two ways:

* **non-finite** values (NaN, as many FITS cutout services write): these are
  never data, wherever they are;
* **exact zeros** in every band or channel (coadds often write 0 where no
  exposure covers the pixel, and JPEG services render that as black).  Zero is
  ambiguous, because a display stretch can also clip dark sky to black.  Zeros
  count as missing only when they fill whole rows or columns from the cutout's
  border (the *blank margin* a footprint edge or gap leaves), and only when
  the rest of the cutout is not itself black in more than
  :data:`ZERO_FLOOR_FRACTION` of its pixels (then black is the sky's floor,
  not a fill value).  Zeros in any other shape, such as a diagonal edge or a
  corner, count as data: coverage is then overestimated, never a good cutout
  refused.  NaN-filled data sets have exact coverage.  In a lossy JPEG,
  "zero" means no brighter than ``galaxy_ray.data.cutout.JPEG_BLACK``, as the
  compression rings a few counts into black next to data.

Transparent pixels (alpha 0) of an image with an alpha channel are missing too.

A cutout is **blank** (no signal) when fewer than :data:`MIN_COVERAGE` of its
pixels hold data, or when every pixel with data has the same value (an
all-black or all-white JPEG, a constant FITS plane).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_COVERAGE", "ZERO_FLOOR_FRACTION", "data_mask", "blank_reason"]

#: Least fraction of a cutout's pixels that must hold data.  The cutout is
#: centred on its galaxy, so with less than half of it covered the galaxy
#: itself is cut by the footprint edge and its morphology cannot be judged.
MIN_COVERAGE = 0.5

#: Share of exactly-black pixels, away from the blank margins, above which
#: black is taken to be the display stretch's sky floor (1%: survey cutouts
#: with sky noise, e.g. the SDSS JPEGs Galaxy Zoo 2 used, have practically none).
ZERO_FLOOR_FRACTION = 0.01


def _blank_run(empty_lines: np.ndarray) -> tuple[int, int]:
    """Number of leading and trailing True values of a 1-D boolean array."""
    n = len(empty_lines)
    if empty_lines.all():
        return n, 0
    lead = int(np.argmin(empty_lines))
    trail = int(np.argmin(empty_lines[::-1]))
    return lead, trail


def data_mask(empty: np.ndarray, missing: np.ndarray, guard: int = 0) -> np.ndarray:
    """Pixels with data, by the rule in the module docstring.

    Parameters
    ----------
    empty : numpy.ndarray of bool, shape (H, W)
        Pixels that are zero or non-finite in every band (candidates for fill).
    missing : numpy.ndarray of bool, shape (H, W)
        Pixels that are certainly not data (non-finite in every band, transparent).
    guard : int
        Pixels next to a blank margin left out of the sky-floor test (a lossy
        encoding smears the margin's edge over its block size).

    Returns
    -------
    numpy.ndarray of bool, shape (H, W)
    """
    h, w = empty.shape
    top, bottom = _blank_run(empty.all(axis=1))
    left, right = _blank_run(empty.all(axis=0))
    inner = np.zeros((h, w), dtype=bool)
    inner[top : h - bottom, left : w - right] = True
    margin = ~inner
    g = [guard if n else 0 for n in (top, bottom, left, right)]
    floor_test = (slice(top + g[0], h - bottom - g[1]), slice(left + g[2], w - right - g[3]))
    black = (empty & ~missing)[floor_test]
    if black.size == 0:  # a margin wider than the guard leaves: test what is there
        black = (empty & ~missing)[inner]
    if black.size and black.mean() > ZERO_FLOOR_FRACTION:
        margin = np.zeros_like(margin)  # black is the sky's floor here, not a fill value
    return ~(missing | margin)


def _data_values(values: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """The values of the pixels with data of (H, W, C) ``values``.

    A blank margin leaves the pixels with data a rectangle: then they are a view
    of it, and no copy of the cutout is gathered.
    """
    rows, cols = np.flatnonzero(has_data.any(axis=1)), np.flatnonzero(has_data.any(axis=0))
    if rows.size == 0:
        return values[:0, :0]
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    inside = has_data[box]
    return values[box] if inside.all() else values[box][inside]


def blank_reason(values: np.ndarray, has_data: np.ndarray, scale: float = 1.0,
                 channels_last: bool = False) -> str | None:
    """Why a cutout has no signal, or None when it has.

    Parameters
    ----------
    values : numpy.ndarray, shape (C, H, W)
        The cutout's bands or colour channels, before any stretch (uint8 display
        images stay uint8: no float copy of the cutout is made).
    has_data : numpy.ndarray of bool, shape (H, W)
        From :func:`data_mask`.
    scale : float
        Value of full white (255 for uint8 pixels): the reason names the value
        as a fraction of it, as for float pixels in [0, 1].
    channels_last : bool
        ``values`` is (H, W, C), as decoded images are (gathering the pixels
        with data from that layout reads memory in order).

    Returns
    -------
    str or None
        A short reason (it follows "no signal: ..." in an error message).
    """
    if values.dtype.kind == "f" and not np.isfinite(values).any():
        return "image is all NaN or infinite"
    coverage = float(has_data.mean())
    if coverage == 0.0:
        return "no pixel holds data (all zero, NaN or transparent)"
    if coverage < MIN_COVERAGE:
        return f"{coverage:.0%} of its pixels hold data; at least {MIN_COVERAGE:.0%} needed"
    kept = _data_values(values, has_data) if channels_last else values[:, has_data]
    if values.dtype.kind == "f":
        kept = kept[np.isfinite(kept)]
    if kept.size == 0 or kept.min() == kept.max():
        value = float(kept.flat[0]) / scale if kept.size else float("nan")
        return f"every pixel has the same value {value:g}"
    return None
