"""Progress of a long job: a live bar in a terminal, one plain line per interval in a log.

A person at a terminal watches a tqdm bar (done of total, rate, time left and,
where rows can fail, the errors so far).  A ``ray job submit`` log, a CI log
or a pipe gets no carriage-return animation: it gets one readable line every
``step`` of the total (5 %) and at least every ``interval`` seconds (30), and a
last line at the end.  Lines a job logs while a bar is live go through
:meth:`Progress.write`, which lifts the bar out of the way first.

In a Jupyter notebook (a process that is an IPython kernel) the bar is
tqdm's notebook widget, through ``tqdm.auto`` (with ``ipywidgets`` installed;
without it, the same text bar as a terminal's, which Jupyter redraws in place).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, TextIO

from tqdm.auto import tqdm  # the notebook widget in a Jupyter kernel, tqdm's terminal bar elsewhere

__all__ = ["Progress", "format_seconds", "in_notebook", "is_terminal"]


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (a bar can redraw in place)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ZMQ shell), where output cells show a live bar."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _widget() -> bool:
    """Whether ``tqdm.auto`` chose the notebook widget (at import, in a Jupyter kernel with ipywidgets)."""
    return any(cls.__module__ == "tqdm.notebook" for cls in tqdm.__mro__)


def _columns(stream: TextIO) -> int:
    """The terminal's width, 0 when it does not say (a pseudo-terminal of size 0x0)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def format_seconds(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour) of a duration; ``?`` when unknown."""
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Count ``done`` of ``total`` units of a job and show it.

    Parameters
    ----------
    total : int
        Units the job will do (rows, shards, batches).
    desc : str
        What the job is, the start of every line (e.g. ``"infer"``).
    unit : str
        Name of one unit, plural (``"rows"``).
    errors : bool
        Show the count of failed units (``errors so far``).
    stream : text stream, optional
        Where to draw; default ``sys.stderr`` (stdout keeps a command's results).
    live : bool, optional
        A redrawn bar (True) or plain lines (False); default: whether ``stream``
        is a terminal, or, with the default stream, whether this is a Jupyter kernel.
    interval : float
        Plain mode: a line at least every this many seconds...
    step : float
        ...and one whenever this fraction of ``total`` more is done (at most one a second).
    enabled : bool
        False shows nothing (library calls, benchmarks) but still counts.
    """

    def __init__(self, total: int, desc: str, unit: str = "rows", *, errors: bool = False,
                 stream: TextIO | None = None, live: bool | None = None, interval: float = 30.0,
                 step: float = 0.05, enabled: bool = True) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.show_errors, self.enabled = errors, enabled
        if live is None:
            live = is_terminal(self.stream) or (stream is None and in_notebook())
        self.live = enabled and bool(live)
        self.interval, self.step = float(interval), float(step)
        self.done = self.errors = 0
        self.started = time.perf_counter()
        self._last_line_at, self._last_line_done = self.started, 0
        self._closed = False
        self._bar = None
        if self.live:
            self._bar = tqdm(total=self.total, desc=desc, unit=f" {unit}", file=self.stream, mininterval=0.2,
                             smoothing=0.1, leave=True, **self._size())
            if errors:
                self._bar.set_postfix_str("0 errors", refresh=False)

    def _size(self) -> dict:
        """Width options: a text bar needs a width (a stream of size 0 draws nothing); the widget sizes itself."""
        if _widget():
            return {}
        sized = _columns(self.stream) > 0
        return {"dynamic_ncols": sized, "ncols": None if sized else 100, "nrows": None if sized else 50}

    def update(self, n: int = 1, errors: int = 0) -> None:
        """Count ``n`` more units done, ``errors`` of them failed."""
        self.done += int(n)
        self.errors += int(errors)
        if self._bar is not None:
            if errors and self.show_errors:
                self._bar.set_postfix_str(f"{self.errors} errors", refresh=False)
            self._bar.update(int(n))
        elif self.enabled and self._line_due():
            self._print_line()

    def _line_due(self) -> bool:
        since = time.perf_counter() - self._last_line_at
        stepped = self.done - self._last_line_done >= max(1.0, self.step * self.total)
        return since >= self.interval or (stepped and since >= 1.0)

    def rate(self) -> float:
        """Units per second since the start."""
        elapsed = time.perf_counter() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """One plain progress line: done of total, percent, rate, time left, errors."""
        rate = self.rate()
        pct = 100.0 * self.done / self.total if self.total else 100.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        text = (f"{self.desc}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), {rate:.1f} {self.unit}/s, "
                f"elapsed {format_seconds(time.perf_counter() - self.started)}, left {format_seconds(left)}")
        return text + (f", {self.errors} errors" if self.show_errors else "")

    def _print_line(self) -> None:
        print(self.line(), file=self.stream, flush=True)
        self._last_line_at, self._last_line_done = time.perf_counter(), self.done

    def write(self, line: str, log: Callable[[str], None] | None = None) -> None:
        """Log ``line`` (through ``log``, default a line on the stream) without breaking a live bar."""
        log = log or (lambda s: print(s, file=self.stream, flush=True))
        if self._bar is not None:
            with tqdm.external_write_mode(file=self.stream):
                log(line)
        else:
            log(line)

    def close(self) -> None:
        """End the bar, or print the last plain line (once)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.done != self._last_line_done:
            self._print_line()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
