"""How report figures read: panel titles that fit, compact PNGs, one colour scale for a grid of panels."""

from __future__ import annotations

import io
import textwrap

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from galaxy_ray.schema import GZ2_ANSWERS

__all__ = ["PANEL_FONT", "TITLE_FONT", "figure_png", "hist_weights", "log_norm", "panel_title", "plain_log_ticks"]

#: Font sizes (points) of panel titles and of tick and axis labels in a grid of small panels.
TITLE_FONT = 9
PANEL_FONT = 8
_BY_COLUMN = {a.column: a for a in GZ2_ANSWERS}
_BY_KAGGLE = {a.kaggle: a for a in GZ2_ANSWERS}


def _words(key: str) -> str:
    return key.replace("_", " ").strip()


def panel_title(name: str, width: int = 30, lines: int = 2) -> str:
    """A panel title of at most ``lines`` lines of ``width`` characters, whole words where they fit.

    A GZ2 answer column (``odd_feature_merger`` or ``Class8.6``) reads as its
    Kaggle id and question, then the answer: ``"Class8.6 odd feature:\\nmerger"``.
    Anything else (a class name) is wrapped at spaces and underscores; only
    text longer than ``lines`` lines is cut, with an ellipsis.
    """
    answer = _BY_COLUMN.get(name) or _BY_KAGGLE.get(name)
    if answer is not None:
        head = textwrap.shorten(f"{answer.kaggle} {_words(answer.question)}:", width, placeholder="…")
        return head + "\n" + textwrap.shorten(_words(answer.key), width, placeholder="…")
    wrapped = textwrap.wrap(_words(name), width) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[: lines - 1] + [textwrap.shorten(" ".join(wrapped[lines - 1:]), width, placeholder="…")]
    return "\n".join(wrapped)


def log_norm(counts_max: float) -> LogNorm:
    """One logarithmic colour scale, 1 to ``counts_max``, shared by every hexbin panel of a figure."""
    return LogNorm(vmin=1, vmax=max(2.0, float(counts_max)))


def plain_log_ticks(axis) -> None:
    """Tick labels ``1, 10, 100`` on a log axis: its default ``10^{k}`` is mathtext, which report figures turn off."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def figure_png(fig: Figure, dpi: int = 100, colours: int | None = None) -> bytes:
    """``fig`` as PNG bytes; with ``colours``, quantised to that many colours (a palette PNG, a few times smaller).

    Galaxy cutouts quantised to 256 colours look the same at a report's size;
    line plots need no palette and keep their exact colours.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if colours is None:
        return buf.getvalue()
    from PIL import Image

    image = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    small = image.quantize(colors=int(colours), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def hist_weights(values: np.ndarray) -> np.ndarray:
    """Weights that make a histogram's bars the fraction of ``values`` in each bin."""
    return np.full(len(values), 1.0 / max(len(values), 1))
