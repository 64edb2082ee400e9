"""Decode once: keep a run's prepared cutouts in Ray's object store across epochs.

The Ray Data stages that feed training (decode, resize, split, targets) are
deterministic; the random augmentation runs later, on the worker, seeded by
(seed, epoch, object id).  So the prepared pixels of epoch 2 are byte for byte
those of epoch 1, and decoding a 423-px JPEG again every epoch buys nothing:
it made training on a manifest of real SDSS JPEGs decode-bound (26 samples/s
against 50 from model-sized shards, ``jobs/bench_train.py``).  When the
prepared rows fit in a share of the object store, the datasets are
materialized once before the first epoch, which is what Ray's ingest guide
recommends for a preprocessed dataset that fits in memory.

References
----------
Ray Train, "Data Loading and Preprocessing": caching the preprocessed dataset
(https://docs.ray.io/en/latest/train/user-guides/data-loading-preprocessing.html).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from galaxy_ray import runtime
from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.progress import is_terminal

__all__ = ["CACHE_CHOICES", "OBJECT_STORE_SHARE", "CachePlan", "cache_datasets", "plan_cache", "prepared_bytes"]

#: Values of ``--cache``.
CACHE_CHOICES = ("auto", "yes", "no")
#: ``--cache auto`` keeps prepared cutouts in memory when they need at most this share of the object store
#: (the rest stays for the blocks Ray Data and Ray Train move while training).
OBJECT_STORE_SHARE = 0.25


@dataclass(frozen=True)
class CachePlan:
    """Whether the prepared datasets are kept in memory, and why."""

    enabled: bool
    bytes_needed: int
    bytes_available: int
    reason: str


def prepared_bytes(n_train: int, n_val: int, n_bn: int, preprocess: PreprocessConfig) -> int:
    """Bytes of the prepared pixels of a run: uint8, 3 bands.

    Training rows are kept at the resize side ``R = round(image_size / crop_fraction)``
    (the augmentation crops them on the worker); validation and BatchNorm rows
    at the model input side ``S``.  Targets and keys add well under 1 %.

    Returns
    -------
    int
        ``3 (n_train R^2 + (n_val + n_bn) S^2)``.
    """
    config = preprocess
    return 3 * (n_train * config.resize_to ** 2 + (n_val + n_bn) * config.image_size ** 2)


def plan_cache(choice: str, bytes_needed: int, object_store_bytes: float) -> CachePlan:
    """Resolve ``--cache`` for a run of ``bytes_needed`` prepared bytes.

    ``auto`` caches when ``bytes_needed <= OBJECT_STORE_SHARE * object_store_bytes``;
    ``yes`` always (Ray spills to disk what does not fit); ``no`` never
    (``choice`` is one of :data:`CACHE_CHOICES`, checked with the other flags).
    """
    available = int(OBJECT_STORE_SHARE * object_store_bytes)
    size = f"{bytes_needed / 2**20:.1f} MiB of prepared cutouts"
    if choice == "no":
        return CachePlan(False, bytes_needed, available, f"{size}, decoded every epoch (--cache no)")
    if choice == "yes":
        return CachePlan(True, bytes_needed, available, f"{size}, decoded once (--cache yes)")
    if bytes_needed <= available:
        return CachePlan(True, bytes_needed, available,
                         f"{size}, decoded once and kept in Ray's object store (--cache auto: at most "
                         f"{available / 2**20:.0f} MiB, {OBJECT_STORE_SHARE:.0%} of it)")
    return CachePlan(False, bytes_needed, available,
                     f"{size} exceed {available / 2**20:.0f} MiB ({OBJECT_STORE_SHARE:.0%} of Ray's object store): "
                     "decoded every epoch; `galaxy-ray pack --image-size` makes that cheap")


def cache_datasets(datasets: dict[str, Any]) -> dict[str, Any]:
    """Materialize each dataset once, in row order; returns the materialized datasets.

    Order is kept (``preserve_order``) so that a one-worker run with one seed
    sees the same batches as without the cache.  At a terminal, Ray Data's own
    bars show the pass (it runs on the driver, before the workers start); a
    job log gets a line before and after.
    """
    t0 = time.perf_counter()
    live = is_terminal(sys.stderr)
    runtime.say(f"galaxy-ray train: decoding {', '.join(datasets)} cutouts once, before the first epoch")
    out = {}
    for name, ds in datasets.items():
        ds.context.execution_options.preserve_order = True
        ds.context.enable_progress_bars = live
        out[name] = ds.materialize()
    runtime.say(f"galaxy-ray train: decoded {', '.join(f'{n} {d.count()}' for n, d in out.items())} rows once "
                f"in {time.perf_counter() - t0:.0f} s")
    return out
