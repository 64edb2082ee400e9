"""A training epoch's progress on the worker: a bar on the driver's terminal, plain lines in a log, or nothing.

Rank 0 shows it (the loop config's ``progress``, decided on the driver, whose
stderr is the one a person may watch).  A worker's own stdout is a log file
streamed to the driver, never a terminal, so a live bar goes through
``ray.experimental.tqdm_ray``, which draws it on the driver.
"""

from __future__ import annotations

import time

from galaxy_ray import raycompat
from galaxy_ray.progress import Progress

__all__ = ["PROGRESS_MODES", "EpochProgress", "epoch_samples"]

#: How a worker shows its training progress: a bar drawn on the driver's terminal, plain lines in a log, nothing.
PROGRESS_MODES = ("live", "lines", "off")


def epoch_samples(n_train: int | None, world: int) -> int | None:
    """Training rows all workers together take in one epoch, None when ``n_train`` is unknown.

    Ray Train splits the training set with ``streaming_split(world, equal=True)``,
    which gives every worker ``n_train // world`` rows and leaves out the rest.
    """
    return (int(n_train) // world) * world if n_train else None


class _EpochLines(Progress):
    """Plain progress lines that also carry the running training loss."""

    loss = float("nan")

    def line(self) -> str:
        return f"{super().line()}, train_loss {self.loss:.4f}"


class EpochProgress:
    """Progress through one training epoch, as a bar, as lines, or not at all.

    Each worker trains an equal share (:func:`epoch_samples`) in lockstep with
    the others (DDP synchronises every step), so one worker's count times the
    number of workers is the whole epoch's.

    Parameters
    ----------
    epoch, epochs : int
        This epoch (from 1) and the run's last.
    total : int or None
        Samples all workers together train this epoch; None: unknown (a bar
        without a total, or in ``lines`` mode only the epoch's last line).
    world : int
        Training workers.
    mode : str
        One of :data:`PROGRESS_MODES`.  ``live``: a bar on the driver's terminal
        through ``ray.experimental.tqdm_ray`` (the worker's own stdout is a log
        file, never a terminal).  ``lines``: :class:`galaxy_ray.progress.Progress`
        lines (one per 30 s, and the epoch's last).  ``off``: counts only.
    stream : text stream, optional
        Where ``lines`` go; default the worker's stdout, which Ray streams to the
        driver and the job log.
    interval : float
        ``live``: seconds between state updates sent to the driver.

    Raises
    ------
    ValueError
        ``mode`` is not one of :data:`PROGRESS_MODES`.
    """

    def __init__(self, epoch: int, epochs: int, total: int | None, *, world: int = 1, mode: str = "lines",
                 stream=None, interval: float = 0.5) -> None:
        if mode not in PROGRESS_MODES:
            raise ValueError(f"progress mode {mode!r}: one of {', '.join(PROGRESS_MODES)}")
        self.desc, self.total, self.world, self.mode = f"training epoch {epoch}/{epochs}", total, world, mode
        self.done, self.loss, self.interval = 0, float("nan"), interval
        self._flushed_at = time.perf_counter()
        self._bar = self._lines = None
        if mode == "live":
            self._bar = raycompat.live_bar(desc=self.desc, total=total, unit=" samples", flush_interval_s=0)
            self._bar.refresh()  # at 0 at once: the first batches of a run can take a while to arrive
        elif mode == "lines":
            # a job log gets a line every 30 s and the epoch's last, not one per 5 %: each epoch adds its summary
            self._lines = _EpochLines(total or 0, self.desc, "samples", interval=30.0, step=1.0,
                                      stream=stream if stream is not None else raycompat.WorkerStdout(),
                                      live=False)

    def update(self, n: int, loss: float) -> None:
        """Count ``n`` more samples done by this worker; ``loss`` is its mean training loss so far."""
        self.done += int(n) * self.world
        self.loss = float(loss)
        if self._lines is not None and self.total:
            self._lines.loss = self.loss
            self._lines.update(int(n) * self.world)
        elif self._bar is not None and time.perf_counter() - self._flushed_at >= self.interval:
            self._flush()

    def _flush(self, close: bool = False) -> None:
        self._flushed_at = time.perf_counter()
        self._bar.n = self.done
        self._bar.set_description(f"{self.desc} train_loss {self.loss:.4f}")
        if close:
            self._bar.close()

    def close(self) -> None:
        """Show where the epoch ended: the bar at its final count, or the last line."""
        if self._bar is not None:
            self._flush(close=True)
            self._bar = None
        elif self._lines is not None:
            self._lines.loss = self.loss
            if not self.total:
                self._lines.total = self.done
                self._lines.update(self.done - self._lines.done)
            self._lines.close()

    def __enter__(self) -> "EpochProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
