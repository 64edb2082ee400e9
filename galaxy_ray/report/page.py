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
import math
import sys
import time
from dataclasses import dataclass, field

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from galaxy_ray.figures import LITERAL_TEXT, literal_text
from galaxy_ray.io import storage
from galaxy_ray.report.style import figure_png

__all__ = ["Report", "INDEX_HTML", "LITERAL_TEXT", "literal_text", "short", "panel_grid"]

#: The report's index page.
INDEX_HTML = "index.html"
#: Long paths (a run's or catalog's URI in the title, summary and notes) break anywhere rather than widen the page.
_STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto;overflow-wrap:anywhere}img{max-width:100%}"
          "figure{margin:2em 0}figcaption{color:#444}"
          "table.summary{border-collapse:collapse}table.summary th,table.summary td{text-align:left;"
          "padding:2px 12px 2px 0;vertical-align:top}")


def short(name: str, width: int = 28) -> str:
    """``name`` cut to ``width`` characters, with an ellipsis when cut."""
    return name if len(name) <= width else name[: width - 1] + "…"


def panel_grid(n: int, panel_height: float, ncols: int = 6, layout: str | None = None) -> tuple[Figure, list[Axes]]:
    """A 16-inch-wide figure of ``n`` small panels, ``ncols`` per row (unused cells hidden).

    ``layout="constrained"`` leaves room for a shared colour bar and figure labels.

    Returns
    -------
    (Figure, list of Axes)
        The figure and its first ``n`` axes, row by row.
    """
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(16, panel_height * nrows), layout=layout)
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
    #: (what, value) rows of the summary table at the top of the page (the model, the catalog).
    summary: list[tuple[str, str]] = field(default_factory=list)
    #: Say each figure on stderr as it is written (a report takes minutes on a large run).
    verbose: bool = False

    def say(self, line: str) -> None:
        """A progress line on stderr, when ``verbose``."""
        if self.verbose:
            print(f"galaxy-ray report: {line}", file=sys.stderr, flush=True)

    def save(self, fig: Figure, name: str, title: str, caption: str = "", *, dpi: int = 100,
             colours: int | None = None) -> str:
        """Write ``fig`` as ``OUT/name`` (PNG; a palette of ``colours`` when given) and list it; returns its URI."""
        uri = storage.join(self.out, name)
        self.say(f"drawing {name}")  # laying out a grid of 37 panels takes seconds
        started = time.perf_counter()
        storage.write_bytes_atomic(uri, figure_png(fig, dpi=dpi, colours=colours))
        self.add(name, title, caption, f" in {time.perf_counter() - started:.0f} s")
        return uri

    def add(self, name: str, title: str, caption: str = "", took: str = "") -> None:
        """List ``OUT/name``, a figure already written there (by evaluate's plots, or copied from a run)."""
        self.figures.append((name, title, caption))
        self.say(f"wrote {name}{took}")

    def _summary_html(self) -> str:
        e = html.escape
        if not self.summary:
            return ""
        rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in self.summary)
        return f"<table class='summary'>{rows}</table>"

    def write_index(self) -> str:
        """``index.html`` listing every figure; returns its URI."""
        e = html.escape
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{e(self.title)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>{e(self.title)}</h1>",
        ]
        parts.append(self._summary_html())
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
