"""Sky maps of a catalog: Mollweide maps centred on the footprint, merger fractions only where cells hold enough.

A footprint at RA 120-240 drawn on a map centred on RA 0 falls in two lobes at
the map's edges, so the maps are centred on the data (the circular mean of the
occupied cells' RA).  The RA labels are drawn on a parallel clear of the data.
A cell's merger fraction is shown only when it holds at least
:data:`MIN_CELL_GALAXIES` classified galaxies (the merger map is drawn at a
coarser order than the density map when most cells hold fewer), with the 95%
Wilson interval's width per cell beside it.
"""

from __future__ import annotations

import math

import astropy.units as u
import numpy as np
from cdshealpix import nested
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from galaxy_ray.catalog.stats import wilson_intervals

__all__ = ["MIN_CELL_GALAXIES", "coarser_cells", "merger_order", "ra_centre", "sky_figure", "sky_xy"]

#: Fewest classified galaxies a cell needs before the map shows its merger fraction.
MIN_CELL_GALAXIES = 10
#: Colour of cells with too few galaxies for a merger fraction.
_SPARSE = "0.8"


def ra_centre(ra_deg: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The circular mean of ``ra_deg`` (degrees, in [0, 360)): 180 for a footprint at RA 120-240, 0 for 350-10."""
    a = np.radians(np.asarray(ra_deg, dtype=np.float64))
    w = np.ones_like(a) if weights is None else np.asarray(weights, dtype=np.float64)
    if not len(a) or not w.sum():
        return 0.0
    return float(np.degrees(np.arctan2((w * np.sin(a)).sum(), (w * np.cos(a)).sum())) % 360.0)


def sky_xy(ra_deg: np.ndarray, dec_deg: np.ndarray, centre: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Mollweide axes coordinates (radians) with ``centre`` RA in the middle, RA increasing to the left."""
    lon = np.mod(np.asarray(ra_deg, dtype=np.float64) - centre + 180.0, 360.0) - 180.0
    return -np.radians(lon), np.radians(dec_deg)


def coarser_cells(cells: dict[str, np.ndarray], steps: int) -> dict[str, np.ndarray]:
    """The counts of :func:`galaxy_ray.report.sky_cells` summed into cells ``steps`` orders coarser."""
    if steps <= 0:
        return cells
    parent, inverse = np.unique(cells["cell"] >> (2 * steps), return_inverse=True)
    out = {"cell": parent}
    for key in ("rows", "classified", "mergers"):
        out[key] = np.bincount(inverse, weights=cells[key], minlength=len(parent)).astype(np.int64)
    return out


def merger_order(cells: dict[str, np.ndarray], order: int, minimum: int = MIN_CELL_GALAXIES) -> int:
    """The finest order, at most ``order``, whose occupied cells hold a median of ``minimum`` classified galaxies."""
    for o in range(order, 0, -1):
        counts = coarser_cells(cells, order - o)["classified"]
        if len(counts) and np.median(counts) >= minimum:
            return o
    return 0


def _ra_labels(ax, centre: float, dec: np.ndarray) -> None:
    """RA every 30 degrees along a parallel outside the data (never across it), on a white ground."""
    ax.set_xticklabels([])
    low, high = (float(np.min(dec)), float(np.max(dec))) if len(dec) else (0.0, 0.0)
    lat = low - 12 if low - 12 > -80 else min(high + 12, 80)
    for offset in range(-150, 151, 30):
        ra = (centre - offset) % 360
        ax.text(np.radians(offset), np.radians(lat), f"{ra:.0f}°", fontsize=7, ha="center", va="center",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})


def _cell_xy(cells: dict[str, np.ndarray], order: int, centre: float):
    lon, lat = nested.healpix_to_lonlat(cells["cell"].astype(np.uint64), order)
    dec = lat.to_value(u.deg)
    return (*sky_xy(lon.to_value(u.deg), dec, centre), dec)


def _panel(fig: Figure, k: int, x, y, values, size: float, label: str, cmap: str, sparse=None):
    ax = fig.add_subplot(1, 3, k, projection="mollweide")
    if sparse is not None and sparse.any():
        ax.scatter(x[sparse], y[sparse], c=_SPARSE, s=size, marker="s", linewidths=0)
        ax.legend(handles=[Patch(color=_SPARSE, label=f"fewer than {MIN_CELL_GALAXIES} galaxies")],
                  loc="lower right", fontsize=7, frameon=False)
    good = np.isfinite(values)
    sc = ax.scatter(x[good], y[good], c=values[good], s=size, marker="s", cmap=cmap, linewidths=0)
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("RA (ICRS, deg; labels along a parallel)", fontsize=8)
    ax.set_ylabel("Dec (deg)", fontsize=8)
    fig.colorbar(sc, ax=ax, orientation="horizontal", pad=0.06, fraction=0.05, label=label)
    return ax


def sky_figure(cells: dict[str, np.ndarray], order: int, minimum: int = MIN_CELL_GALAXIES) -> tuple[Figure, dict]:
    """Density, merger fraction and its 95% Wilson interval width per HEALPix cell, centred on the data.

    Returns
    -------
    (Figure, dict)
        The figure and what it shows: ``centre`` (RA of the map's middle, degrees),
        ``merger_order``, ``sparse_cells`` (merger cells with fewer than ``minimum``
        classified galaxies, drawn grey) and ``merger_cells``.
    """
    centre = ra_centre(nested.healpix_to_lonlat(cells["cell"].astype(np.uint64), order)[0].to_value(u.deg),
                       cells["rows"])
    x, y, dec = _cell_xy(cells, order, centre)
    cell_area = 4 * math.pi * (180 / math.pi) ** 2 / (12 * 4**order)  # deg^2
    fig = Figure(figsize=(18, 4.4), layout="constrained")
    ax = _panel(fig, 1, x, y, cells["rows"] / cell_area, max(1.0, 1.8e4 / 4**order), "galaxies per deg²", "magma")
    ax.set_title(f"galaxies per deg² (HEALPix order {order})", fontsize=10, pad=14)
    _ra_labels(ax, centre, dec)
    mo = merger_order(cells, order, minimum)
    merged = coarser_cells(cells, order - mo)
    mx, my, mdec = _cell_xy(merged, mo, centre)
    n, k = merged["classified"], merged["mergers"]
    sparse = n < minimum
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(sparse, np.nan, k / np.maximum(n, 1))
    lo, hi = wilson_intervals(k, n)
    width = np.where(sparse, np.nan, hi - lo)
    size = max(1.0, 1.8e4 / 4**mo)
    # the share of galaxies is_merger flags, not a merger fraction corrected for the classifier (stats gives that)
    for panel, values, label, cmap in ((2, frac, "flagged fraction (is_merger)", "coolwarm"),
                                       (3, width, "95% Wilson interval width", "viridis")):
        ax = _panel(fig, panel, mx, my, values, size, label, cmap, sparse)
        ax.set_title(f"{label} (order {mo}, cells of at least {minimum})", fontsize=10, pad=14)
        _ra_labels(ax, centre, mdec)
    return fig, {"centre": centre, "merger_order": mo, "sparse_cells": int(sparse.sum()),
                 "merger_cells": int(len(n)), "cell_area": cell_area}
