"""Galaxy cutouts in a report: reading them from a source, and strips of images per answer or class."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from galaxy_ray.data.decode import decode_image
from galaxy_ray.data.sources import open_source
from galaxy_ray.report.page import Report
from galaxy_ray.report.style import PANEL_FONT, panel_title
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["Cutouts", "ImageRow", "highest", "image_rgb", "images_for", "plot_image_grid"]

#: object id -> (encoded cutout or None, where it came from).
Cutouts = dict[str, tuple[bytes | None, str]]
#: One strip of a grid: its title, and (object id, text under the image) per cell.
ImageRow = tuple[str, list[tuple[str, str]]]
#: Rows read from a source per ``read_rows`` call.
_READ_BATCH = 256
#: Image grids: resolution and palette of the PNG (cutouts quantised to 256 colours: ~5x smaller, same look).
GRID_DPI = 80
GRID_COLOURS = 256


def highest(values: np.ndarray, top: int) -> np.ndarray:
    """Row indices of the ``top`` highest values of each column, highest first; NaN counts as lowest.

    Parameters
    ----------
    values : numpy.ndarray, shape (N, K)
    top : int

    Returns
    -------
    numpy.ndarray of int, shape (K, min(top, N))
        Ties keep row order.
    """
    keyed = -np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)
    return np.argsort(keyed, axis=0, kind="stable")[:top].T


def image_rgb(data: bytes | None, where: str) -> np.ndarray | None:
    """RGB float image in [0, 1] (the same decoding as training), or None if it cannot be read."""
    try:
        return decode_image(data, where)
    except Exception:  # a bad cutout is left blank in a figure, never a failed report
        return None


def images_for(source: str, wanted: set[str], source_options: dict | None = None) -> Cutouts:
    """Cutouts of the ``wanted`` object ids, read directly from the source (no cluster).

    ``source_options`` are :func:`galaxy_ray.data.sources.open_source` keywords
    (``allow_outside_paths``, ``filename_mapping``, ``galaxy10``).
    """
    src = open_source(source, **(source_options or {}))
    meta = src.metadata()
    if C.OBJECT_ID in meta.columns:
        meta = meta[meta[C.OBJECT_ID].astype(str).isin(wanted)]
    found: Cutouts = {}
    for start in range(0, len(meta), _READ_BATCH):
        t = src.read_rows(meta.iloc[start : start + _READ_BATCH])
        oids = [str(v) for v in t.column(C.OBJECT_ID).to_pylist()]
        srcs = t.column(C.SOURCE).to_pylist() if C.SOURCE in t.column_names else oids
        for o, img, s in zip(oids, t.column(C.IMAGE).to_pylist(), srcs):
            if o in wanted:
                found[o] = (img, str(s))
        if len(found) == len(wanted):
            break
    return found


def plot_image_grid(rep: Report, rows: list[ImageRow], images: Cutouts, name: str, title: str,
                    caption: str) -> None:
    """Image strips, one per answer/class, several strips side by side; saved as ``name``.

    Each strip is labelled above its first image with the whole answer or
    class name (one line across the strip), each image with its own text.
    The page shows ``title`` above the figure, so the figure has none of its own
    (a suptitle used to be drawn over the first row's labels).
    """
    per = max((len(cells) for _, cells in rows), default=1) or 1
    blocks = max(1, 12 // per)  # strips side by side
    nrows = math.ceil(len(rows) / blocks)
    fig = Figure(figsize=(1.3 * blocks * per, 1.75 * nrows))
    axes = fig.subplots(nrows, blocks * per, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (row_title, cells) in enumerate(rows):
        r, b = divmod(k, blocks)
        for c, (oid, text) in enumerate(cells):
            ax = axes[r][b * per + c]
            data, where = images.get(oid, (None, oid))
            rgb = image_rgb(data, where)
            if rgb is not None:
                ax.imshow(np.clip(rgb, 0, 1))
            label = f"{panel_title(row_title, width=18 * per).replace(chr(10), ' ')}\n{text}" if c == 0 else f"\n{text}"
            ax.set_title(label, fontsize=PANEL_FONT, loc="left", fontweight="normal")
    fig.tight_layout(h_pad=0.6)
    rep.save(fig, name, title, caption, dpi=GRID_DPI, colours=GRID_COLOURS)
