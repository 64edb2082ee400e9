"""The report's output: PNG figures and an ``index.html`` that lists them.

Figures are drawn with matplotlib's object-oriented API
(:class:`matplotlib.figure.Figure`), so a report never touches pyplot's global
state or the interactive backend.  Text in a figure is data (object ids, class
and morphology labels, column names): :func:`literal_text` draws every figure
with mathtext and TeX off, so an id such as ``$\\x$`` is shown as written
instead of failing to parse.
"""

from __future__ import annotations

import html
import io
import math
from dataclasses import dataclass, field
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from galaxy_ray.figures import LITERAL_TEXT, literal_text
from galaxy_ray.io import storage

__all__ = ["Report", "INDEX_HTML", "LITERAL_TEXT", "literal_text", "short", "panel_grid"]

#: The report's index page.
INDEX_HTML = "index.html"
_STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto}img{max-width:100%}"
          "figure{margin:2em 0}figcaption{color:#444}")

def short(name: str, width: int = 28) -> str:
    """``name`` cut to ``width`` characters, with an ellipsis when cut."""
    return name if len(name) <= width else name[: width - 1] + "…"


def panel_grid(n: int, panel_height: float, ncols: int = 7) -> tuple[Figure, list[Axes]]:
    """A 16-inch-wide figure of ``n`` small panels, ``ncols`` per row (unused cells hidden).

    Returns
    -------
    (Figure, list of Axes)
        The figure and its first ``n`` axes, row by row.
    """
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(16, panel_height * nrows))
    axes = list(fig.subplots(nrows, ncols, squeeze=False).flat)
    for ax in axes[n:]:
        ax.axis("off")
    return fig, axes[:n]


@dataclass
class Report:
    """Figures written so far (file name, title, caption) and an output directory."""

    out: str
    title: str
    figures: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def save(self, fig: Figure, name: str, title: str, caption: str = "") -> str:
        """Write ``fig`` as ``OUT/name`` (PNG) and list it; returns its URI."""
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        uri = storage.join(self.out, name)
        storage.write_bytes_atomic(uri, buf.getvalue())
        self.figures.append((name, title, caption))
        return uri

    def write_index(self) -> str:
        """``index.html`` listing every figure; returns its URI."""
        e = html.escape
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{e(self.title)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>{e(self.title)}</h1>",
        ]
        parts += [f"<p>{e(n)}</p>" for n in self.notes]
        parts.append("<ul>" + "".join(f"<li><a href='#{e(n)}'>{e(t)}</a></li>" for n, t, _ in self.figures) + "</ul>")
        for name, title, caption in self.figures:
            parts.append(f"<figure id='{e(name)}'><h2>{e(title)}</h2>"
                         f"<img src='{e(name)}' alt='{e(title)}'>"
                         f"<figcaption>{e(caption)}</figcaption></figure>")
        parts.append("</body></html>")
        uri = storage.join(self.out, INDEX_HTML)
        storage.write_bytes_atomic(uri, "\n".join(parts).encode("utf-8"))
        return uri
