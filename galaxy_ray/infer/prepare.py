"""The pipeline's CPU stage: read cutout rows, decode and preprocess them for the model actors.

Everything a read + decode task runs is here, apart from the model and the
catalog: Ray pickles these functions by reference, so a decode worker
imports this module and what it imports, not the model stage
(:mod:`galaxy_ray.infer.pipeline`) or the catalog writer: those bring the
catalog package, astropy and scipy, about a second of a new worker's
start-up, spent on the cores the model actor is starting on.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np
import pyarrow as pa

from galaxy_ray import raycompat
from galaxy_ray.data.transforms import PreprocessConfig, preprocess_batch
from galaxy_ray.infer.plan import UNIT_COLUMN
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["CPU_NICENESS", "as_float", "prepare_batch", "prepare_blocks", "yield_cpu", "read_tagged_rows"]

#: Scheduling priority of decode tasks on CPU clusters (see :func:`yield_cpu`).
CPU_NICENESS = 19


def prepare_batch(
    batch: dict[str, np.ndarray],
    *,
    preprocess_config: PreprocessConfig,
    shard_unit: dict[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Decode and preprocess a batch of cutout rows for the model stage.

    Rows carry their unit in the unit column, or (packed shards) the ``path``
    of their shard, which ``shard_unit`` maps to a unit.

    Returns
    -------
    dict of numpy arrays
        ``object_id``, ``ra``, ``dec``, the unit, ``coverage`` (N,) float32, ``pixels`` (N, 3, S, S) uint8
        (the model input, a quarter of float32's object-store traffic) and
        ``error`` (None for no error; :func:`prepare_blocks` hands the batch to
        Ray Data typed, see :func:`galaxy_ray.raycompat.typed_batch`).
    """
    ids = batch[C.OBJECT_ID]
    n = len(ids)
    if UNIT_COLUMN in batch:
        units = np.asarray(batch[UNIT_COLUMN], dtype=np.int32)
    else:
        units = np.array([shard_unit[os.path.basename(p)] for p in batch["path"]], dtype=np.int32)
    rows = {C.OBJECT_ID: ids, C.IMAGE: batch.get(C.IMAGE, np.full(n, None, dtype=object)),
            C.SOURCE: batch.get(C.SOURCE, ids)}
    if C.ERROR in batch:  # a reader's own per-row error is kept
        rows[C.ERROR] = batch[C.ERROR]
    prepared = preprocess_batch(rows, preprocess_config, augment=False)
    nan = np.full(n, np.nan)
    return {
        C.OBJECT_ID: np.asarray(ids, dtype=object),
        C.RA: as_float(batch[C.RA]) if C.RA in batch else nan,
        C.DEC: as_float(batch[C.DEC]) if C.DEC in batch else nan,
        UNIT_COLUMN: units,
        "pixels": prepared["pixels"],
        C.COVERAGE: prepared[C.COVERAGE],
        C.ERROR: np.array([None if e is None else str(e) for e in prepared[C.ERROR]], dtype=object),
    }


def prepare_blocks(
    batch: dict[str, np.ndarray], *, batch_size: int, niceness: int | None = None, **kwargs
) -> Iterator[dict[str, np.ndarray]]:
    """:func:`prepare_batch` over a whole block (a shard, or a slice of rows), ``batch_size`` rows at a time.

    The decode stage takes whole blocks so that Ray Data fuses it into the
    read task: encoded cutouts then go from the reader to the decoder without
    a trip through the object store, where they would compete with decoded
    pixels for the pipeline's budget (see :func:`object_store_budget`).

    ``niceness`` (CPU clusters) decodes in a thread of this process whose
    scheduling priority is lowered to at least that value, so decoding runs
    in the model's idle moments instead of preempting its threads; see
    :func:`yield_cpu`.  A thread, not the task's own: Linux keeps a nice
    value per thread and an unprivileged one cannot raise it back, and Ray
    may later place a model actor on this worker's main thread, which would
    then run the model at the decoders' priority.
    """
    n = len(batch[C.OBJECT_ID])
    for start in range(0, n, batch_size):
        rows = {k: v[start : start + batch_size] for k, v in batch.items()}
        if niceness is None:
            prepared = prepare_batch(rows, **kwargs)
        else:
            prepared = _decode_thread(niceness).submit(prepare_batch, rows, **kwargs).result()
        yield raycompat.typed_batch(prepared)


@functools.cache
def _decode_thread(niceness: int) -> ThreadPoolExecutor:
    """This process's single decode thread at ``niceness`` (:func:`prepare_blocks`), started on first use."""
    return ThreadPoolExecutor(1, thread_name_prefix=f"galaxy-ray-decode-nice{niceness}",
                              initializer=yield_cpu, initargs=(niceness,))


def yield_cpu(niceness: int) -> None:
    """Raise the calling thread's nice value to ``niceness`` (never lower it).

    Ray starts its workers at nice 15, the model actors and the decode tasks
    alike.  On a CPU node the model's intra-op threads then share the cores
    with decoding on equal terms, and each preempted thread stalls a whole
    parallel region.  Decoding is about a tenth of the work and the object
    store buffers its output, so it can run at a lower priority and fill the
    gaps.
    Raising a nice value needs no privilege.  On Linux ``setpriority`` with
    ``PRIO_PROCESS`` and id 0 sets only the calling thread's (and the
    threads it starts later): the nice value is per thread there, see setpriority(2), BUGS.
    """
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) < niceness:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except (AttributeError, OSError):  # not POSIX, or not permitted: decode at Ray's priority
        pass


def as_float(values: np.ndarray) -> np.ndarray:
    """Nullable float column as float64 with NaN for null."""
    values = np.asarray(values)
    if values.dtype == object:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return values.astype(np.float64, copy=False)


def read_tagged_rows(meta, source) -> pa.Table:
    """Cutout rows of a metadata slice, tagged with their unit (runs in a worker)."""
    table = source.read_rows(meta.drop(columns=[UNIT_COLUMN]).reset_index(drop=True))
    return table.append_column(UNIT_COLUMN, pa.array(meta[UNIT_COLUMN].to_numpy(np.int32), type=pa.int32()))
