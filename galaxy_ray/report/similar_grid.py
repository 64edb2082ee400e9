"""A cutout grid of a similarity search: the query galaxy (or image) first, then its neighbours by distance."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
from matplotlib.figure import Figure

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.report.images import GRID_DPI, image_rgb, images_for
from galaxy_ray.report.style import PANEL_FONT

__all__ = ["plot_similar_grid"]

#: Cutouts per row of the grid.
GRID_COLUMNS = 6


def _query_cell(like: str | None, like_image: str | None, cutouts: dict) -> tuple[np.ndarray | None, str]:
    """(the query's RGB image or None, its label); the query is drawn even when filters left it out."""
    if like_image is not None:
        data = Path(like_image).read_bytes() if Path(like_image).is_file() else None
        return image_rgb(data, like_image), f"query image\n{Path(like_image).name}"
    data, where = cutouts.get(str(like), (None, str(like)))
    return image_rgb(data, where), f"query\n{like}"


def plot_similar_grid(table: pa.Table, source: str | None, out: str, *, like: str | None = None,
                      like_image: str | None = None, title: str | None = None) -> str:
    """Save a PNG grid of the query and the rows of a ``similar`` result, nearest first.

    Parameters
    ----------
    table : pyarrow.Table
        A result of :func:`galaxy_ray.similar.search.similar`: ``distance`` and ``object_id`` per row
        (``p_merger``, when present, is printed under each cutout).
    source : str or None
        Where the catalog's cutouts are (the catalog provenance's ``source``). Cutouts that cannot be
        read there are left as empty cells, never a failed figure.
    out : str
        The PNG file to write (local path).
    like, like_image : str, optional
        The query: an ``object_id`` of the catalog, or an image file.
    title : str, optional
        The figure's title (default: what was searched).

    Returns
    -------
    str
        A one-line summary: cutouts drawn, and how many could not be read.

    Raises
    ------
    GalaxyRayError
        ``out`` does not end in ``.png``.
    """
    if not str(out).lower().endswith(".png"):
        raise GalaxyRayError(f"--grid {out}: the grid is a PNG image; give a file name ending in .png")
    ids = [str(v) for v in table.column("object_id").to_pylist()]
    dist = table.column("distance").to_pylist()
    p_merger = table.column("p_merger").to_pylist() if "p_merger" in table.column_names else [None] * len(ids)
    wanted = set(ids) | ({str(like)} if like is not None else set())
    cutouts = images_for(source, wanted) if source and wanted else {}
    cells = [_query_cell(like, like_image, cutouts)] if (like is not None or like_image is not None) else []
    for oid, d, p in zip(ids, dist, p_merger):
        if like is not None and oid == str(like):
            continue  # the query itself, already first
        data, where = cutouts.get(oid, (None, oid))
        text = f"{oid}\nd = {d:.3f}" + (f", p_merger {p:.2f}" if p is not None else "")
        cells.append((image_rgb(data, where), text))
    ncols = min(GRID_COLUMNS, max(1, len(cells)))
    nrows = max(1, math.ceil(len(cells) / ncols))
    fig = Figure(figsize=(1.9 * ncols, 2.2 * nrows), layout="constrained")  # room for two-line titles
    axes = fig.subplots(nrows, ncols, squeeze=False)
    missing = 0
    for ax in axes.flat:
        ax.axis("off")
    for ax, (rgb, text) in zip(axes.flat, cells):
        if rgb is None:
            missing += 1
            ax.text(0.5, 0.5, "cutout not\nreadable here", ha="center", va="center", fontsize=PANEL_FONT,
                    transform=ax.transAxes)
        else:
            ax.imshow(np.clip(rgb, 0, 1))
        ax.set_title(text, fontsize=PANEL_FONT - 1, loc="left")
    fig.suptitle(title or ("galaxies like " + (f"{like}" if like is not None else Path(str(like_image)).name)
                           + " (distance in the catalog's embedding space)"), fontsize=PANEL_FONT + 1)
    fig.savefig(out, dpi=GRID_DPI)
    return f"wrote {len(cells)} cutouts to {out}" + (f" ({missing} not readable from {source})" if missing else "")
