"""What every galaxy-ray figure is drawn with: text that is data is drawn as written.

Object ids, class and morphology labels and column names reach figures as
titles, tick labels and legends.  matplotlib would read ``$...$`` in them as
mathtext (an id such as ``$\\x$`` fails to parse and stops the figure) and,
with ``text.usetex``, hand them to TeX; :func:`literal_text` turns both off
while a figure is built and saved.
"""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

__all__ = ["LITERAL_TEXT", "literal_text", "pyplot", "save_figure"]

#: matplotlib settings under which galaxy-ray's figures are drawn: no mathtext ($...$) and no TeX in any text.
LITERAL_TEXT = {"text.parse_math": False, "text.usetex": False}

F = TypeVar("F", bound=Callable)


def literal_text(fn: F) -> F:
    """Decorator: run ``fn`` (which draws figures) with :data:`LITERAL_TEXT`.

    matplotlib reads ``text.parse_math`` and ``text.usetex`` when each text
    object is made, and draws tick labels when the figure is saved, so the
    settings must hold while a figure is built and saved: the whole call.
    """

    @functools.wraps(fn)
    def drawing_literally(*args, **kwargs):
        import matplotlib  # here, not at import: commands that draw nothing never load it

        with matplotlib.rc_context(LITERAL_TEXT):
            return fn(*args, **kwargs)

    return drawing_literally  # type: ignore[return-value]


def save_figure(fig, uri: str) -> None:
    """Write a matplotlib figure as PNG to ``uri`` (any storage) and close it."""
    import io

    import matplotlib.pyplot as plt

    from galaxy_ray.io import storage

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    storage.write_bytes_atomic(uri, buf.getvalue())


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
