"""Every workaround galaxy-ray needs for Ray's behaviour (Ray 2.60), in one module.

Each section names the Ray behaviour it works around and, where one exists,
the Ray issue or page that describes it.  A Ray upgrade starts here: check
each note against the new version, and drop a workaround Ray no longer needs.
No other galaxy-ray module imports a private name of Ray's or patches
``print`` (``tests/test_architecture.py`` checks both).

Ray is imported inside the functions that use it, so that importing this
module stays cheap (``galaxy-ray predict`` never starts Ray).

1. Ray Train's ``print`` patch (:class:`WorkerStdout`, :func:`worker_print`, :func:`live_bar`).
2. Ray Data's typing of an all-None column (:func:`typed_batch`).
3. Ray Data's V2 Parquet reader (:func:`read_parquet`).
4. Logging: Ray Data's console (:func:`quiet_ray_data_logging`), Ray Train's
   (:func:`train_logging_config`), Ray's log-file handlers (:func:`is_log_file_handler`).
5. Ray Train's ingest options (:func:`ordered_ingest_options`).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

__all__ = ["WorkerStdout", "worker_print", "live_bar", "typed_batch", "read_parquet", "RAY_DATA_LOGGING_CONFIG",
           "quiet_ray_data_logging", "train_logging_config", "is_log_file_handler", "ordered_ingest_options"]


# 1. Ray Train's print patch.  On a Ray Train (v2) worker, ``builtins.print`` is
# ``ray.train.v2._internal.logging.patch_print.redirected_print``: a ``print`` to
# stdout, stderr or no file becomes an INFO record of the root logger, plus a copy
# on stdout while Ray wraps ``sys.stdout``, so a progress line shows twice; any
# other file object is written to as usual.  See
# https://github.com/ray-project/ray/pull/51542 (the patch's blank-line fix).
# Ray's own switch, RAY_TRAIN_ENABLE_PRINT_PATCH=0, is read in each worker
# process, so it would have to reach every node through the job's runtime_env;
# a file object of our own reaches them with the code.

def _plain_print(*objects: Any, sep: str = " ", end: str = "\n", file=None, flush: bool = False) -> None:
    """Python's own ``print``, as it behaves before Ray Train patches ``builtins.print``."""
    stream = sys.stdout if file is None else file
    stream.write(sep.join(map(str, objects)) + end)
    if flush:
        stream.flush()


class WorkerStdout:
    """The worker's stdout as a file object that Ray Train's ``print`` patch passes through untouched."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return False


def worker_print(line: str) -> None:
    """One line on the worker's stdout (which Ray streams to the driver and the job log), shown once."""
    print(line, file=WorkerStdout(), flush=True)


def live_bar(**kwargs: Any):
    """A ``ray.experimental.tqdm_ray.tqdm`` bar (drawn on the driver) whose updates survive the print patch.

    ``tqdm_ray`` sends a bar's state to the driver as one ``print``-ed stdout
    line.  Through Ray Train's patch that line also becomes a log record, which
    adds a blank console line after every update (and the quiet console filter
    drops it, as a record from Ray's code).  So ``tqdm_ray``'s own ``print``
    (a name looked up in its module) is Python's: no process-wide swap of
    ``builtins.print``, nothing of anyone else's output changes.
    """
    from ray.experimental import tqdm_ray

    tqdm_ray.print = _plain_print
    return tqdm_ray.tqdm(**kwargs)


# 2. Ray Data's typing of an all-None column.  A ``map_batches`` function that
# returns a dict of numpy arrays has each column converted to Arrow on its own:
# an object array of only None becomes Arrow's ``null`` type, which the next
# stage's numpy batch reads back as float NaN, and which cannot be concatenated
# with a block where the same column is a string ("Types mismatch: null != string").
# https://github.com/ray-project/ray/issues/49338,
# https://github.com/ray-project/ray/issues/50255.  Returning an Arrow table
# whose string columns carry their type keeps None as None through every stage.

def typed_batch(batch: Mapping[str, np.ndarray], strings: Sequence[str] = ("error",)) -> pa.Table:
    """A ``map_batches`` output as an Arrow table, with the ``strings`` columns typed ``string``.

    The other columns convert as Ray Data converts a dict of numpy arrays (a
    multi-dimensional array becomes Ray's Arrow tensor column), so what the
    next stage receives is what it would have received, except that a string
    column of only None stays a string column of None.
    """
    from ray.data.block import BlockAccessor

    others = {k: v for k, v in batch.items() if k not in strings}
    table = BlockAccessor.batch_to_block(others) if others else pa.table({})
    for i, name in enumerate(batch):
        if name in strings:
            values = [None if v is None else str(v) for v in batch[name]]
            table = table.add_column(min(i, table.num_columns), name, pa.array(values, type=pa.string()))
    return table


# 3. Ray Data's V2 Parquet reader.  Ray 2.60's default (V2) reader starts a pool
# of 32 footer-reading actors every time a dataset executes, which costs seconds
# each time on a small cluster: training re-executes its datasets every epoch, so
# an epoch of a few hundred cutouts took ~10 s of process start-up.  V1 reads the
# footers inside its read tasks.  ``DataContext.use_datasource_v2`` is Ray's
# documented switch; the reader is chosen when the dataset is created.

def read_parquet(paths: str | Sequence[str], filesystem, **kwargs: Any):
    """``ray.data.read_parquet`` through Ray Data's first (V1) Parquet reader (the context is restored after)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    previous = ctx.use_datasource_v2
    ctx.use_datasource_v2 = False
    try:
        return ray.data.read_parquet(paths, filesystem=filesystem, **kwargs)
    finally:
        ctx.use_datasource_v2 = previous


# 4. Logging.  Ray Data in the workers (a training run's SplitCoordinator, map
# tasks) logs its plans at INFO to the console, and its logging can only be
# configured as a whole, through a YAML file named by RAY_DATA_LOGGING_CONFIG
# (https://docs.ray.io/en/latest/data/monitoring-your-workload.html#ray-data-logs).
# That file has to name Ray Data's own handler and filter classes
# (ray.data._internal.logging, ray._private.log): it copies Ray Data's default
# configuration with a console that keeps warnings and errors only.

#: Ray Data's logging configuration for quiet workers (:func:`quiet_ray_data_logging` points Ray Data at it).
RAY_DATA_LOGGING_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ray_data_logging.yaml")


def quiet_ray_data_logging(quiet: bool) -> None:
    """Point RAY_DATA_LOGGING_CONFIG at :data:`RAY_DATA_LOGGING_CONFIG` (quiet), or undo that (not quiet).

    Call before ``ray.init``: a local Ray's workers inherit this environment.
    A user's own setting wins either way.
    """
    if quiet:
        os.environ.setdefault("RAY_DATA_LOGGING_CONFIG", RAY_DATA_LOGGING_CONFIG)
    elif os.environ.get("RAY_DATA_LOGGING_CONFIG") == RAY_DATA_LOGGING_CONFIG:
        del os.environ["RAY_DATA_LOGGING_CONFIG"]


def train_logging_config(verbose: bool):
    """Ray Train's ``LoggingConfig``: its own INFO lines (worker group start, resources) only when ``verbose``.

    They still reach Ray Train's log files in the session's log folder.
    """
    from ray.train import LoggingConfig

    return LoggingConfig(log_level="INFO" if verbose else "WARNING")


def is_log_file_handler(handler: logging.Handler) -> bool:
    """Whether ``handler`` writes a log file (``logging.FileHandler``, or Ray Data's ``SessionFileHandler``).

    Ray Data's session log handler is not a ``FileHandler``; it is matched by
    its class name, so that no private Ray module is imported for it.
    """
    return isinstance(handler, logging.FileHandler) or type(handler).__name__ == "SessionFileHandler"


# 5. Ray Train's ingest options.  ``DataConfig.default_ingest_options()`` builds
# ``ExecutionOptions`` with ``exclude_resources``, an argument Ray 2.60 deprecates
# (with a warning on every run): Ray Train reserves the workers' resources from
# Ray Data by itself.  So the options are built from the constructor's current
# arguments.

def ordered_ingest_options():
    """Ray Data options for a training ingest: the current ``DataContext``'s, with ``preserve_order``.

    Ray Data then keeps the order of rows, so that one worker with one seed
    sees the same batches on every run.
    """
    from ray.data import DataContext, ExecutionOptions

    current = DataContext.get_current().execution_options
    return ExecutionOptions(resource_limits=current.resource_limits, preserve_order=True,
                            verbose_progress=current.verbose_progress, label_selector=current.label_selector)
