"""A whole synthetic survey: ranges of galaxies rendered in parallel processes and written in one layout.

The survey is cut into jobs (index ranges; one per shard for ``shards``).
Each job renders its galaxies and writes their per-object files in a worker
process and sends back only their metadata (and, for the Galaxy10 HDF5
layout, the colour images, which the parent writes into the one file).
"""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.synthetic.encode import cutout_table
from galaxy_ray.synthetic.galaxy import render_range
from galaxy_ray.synthetic.layouts import FORMATS, H5Writer, metadata, remove_stale, write_objects, write_tables
from galaxy_ray.synthetic.preview import preview_galaxies, save_preview
from galaxy_ray.synthetic.votes import decals_vote_table, write_vote_table
from galaxy_ray.trees import get_schema
from galaxy_ray.synthetic.sky import DEFAULT_FOOTPRINT, check_footprint, check_size


@dataclass(frozen=True)
class Job:
    """Galaxies ``start .. stop - 1`` to render and write (``shard``: the Parquet file's number)."""

    out: str
    fmt: str
    seed: int
    start: int
    stop: int
    size: int
    footprint: tuple[float, float, float, float]
    shard: int = 0


def check_count(n: int, what: str = "n") -> int:
    """``n`` as an int when it is a positive integer; else a :class:`GalaxyRayError` naming ``what``."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise GalaxyRayError(f"{what}={n!r}: must be a positive integer")
    return int(n)


def synthetic_table(n: int, size: int = 64, seed: int = 0, start: int = 0,
                    footprint: Sequence[float] = DEFAULT_FOOTPRINT) -> pa.Table:
    """The cutout table (docs/contracts.md) of galaxies ``start .. start + n - 1``, rendered in this process.

    ``image`` holds PNG bytes of the Lupton colour image; ``votes`` the 37 GZ2
    cumulative fractions; ``label`` the Galaxy10 class name.

    Returns
    -------
    pyarrow.Table

    Raises
    ------
    GalaxyRayError
        ``n`` not positive or ``size`` out of range.
    """
    n = check_count(n)
    return cutout_table(list(render_range(seed, start, start + n, check_size(size), footprint)))


def run_job(job: Job) -> dict[str, Any]:
    """Render one range of galaxies and write its per-object files (or shard).

    Returns
    -------
    dict
        ``meta``: :func:`~galaxy_ray.synthetic.layouts.metadata` per galaxy;
        ``rgb``: uint8 (k, S, S, 3) images for ``galaxy10-h5``, else None;
        ``written``: the URIs written.
    """
    galaxies = list(render_range(job.seed, job.start, job.stop, job.size, job.footprint))
    written = write_objects(job.out, job.fmt, galaxies, job.shard)
    rgb = np.stack([g.rgb for g in galaxies]) if job.fmt == "galaxy10-h5" else None
    return {"meta": [metadata(g) for g in galaxies], "rgb": rgb, "written": written}


def _jobs(out: str, fmt: str, n: int, size: int, seed: int, rows_per_shard: int, workers: int,
          footprint) -> list[Job]:
    if fmt == "shards":
        step = rows_per_shard
    else:  # a few chunks per worker keeps the pool busy to the end
        step = max(1, min(250, math.ceil(n / (4 * workers))))
    return [Job(out, fmt, seed, start, min(start + step, n), size, footprint, shard)
            for shard, start in enumerate(range(0, n, step))]


def _map_jobs(jobs: list[Job], workers: int) -> Iterator[dict[str, Any]]:
    """Results in job order, from this process or a pool of ``workers`` processes."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(run_job, jobs)
        return
    # spawn, not fork: the parent may hold threads (s3fs, Ray) that fork would copy half-way
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context,
                             initializer=_limit_threads) as pool:
        yield from pool.map(run_job, jobs)


def _limit_threads() -> None:
    # one numpy thread per worker process: the pool provides the parallelism
    os.environ["OMP_NUM_THREADS"] = "1"


#: ``synth --tree``: the synthetic vote table beside the survey, and its column naming.
VOTES_TABLE = "votes.parquet"
VOTE_FORM = "galaxy-datasets"


def _vote_table(out: str, n: int, seed: int, footprint: Sequence[float], tree: str):
    """Write ``out/votes.parquet`` for the survey's galaxies on ``tree`` (a DECaLS tree); returns the table."""
    schema = get_schema(tree)
    if schema.name not in ("decals-dr5", "decals-dr8"):
        raise GalaxyRayError(f"--tree {tree}: synthetic vote tables follow the DECaLS trees (decals-dr5 or "
                             "decals-dr8); the survey's GZ2 votes are already in every layout")
    table = decals_vote_table(seed, n, schema, VOTE_FORM, footprint=footprint)
    write_vote_table(table, storage.join(out, VOTES_TABLE))
    return table


def _collect(out: str, fmt: str, n: int, size: int, results: Iterable[dict[str, Any]],
             counts: Any = None) -> set[str]:
    """Gather the jobs' results, fill the HDF5 file, write the tables; returns every URI written."""
    h5 = H5Writer(out, n, size) if fmt == "galaxy10-h5" else None
    meta: list[dict[str, Any]] = []
    written: set[str] = set()
    try:
        for result in results:
            meta.extend(result["meta"])
            written.update(result["written"])
            if h5 is not None:
                h5.add(result)
    except BaseException:
        if h5 is not None:
            h5.abort()
        raise
    if h5 is not None:
        written.add(h5.close())
    written.update(write_tables(out, fmt, meta, counts))
    return written


def synthesize(out: str, n: int, size: int = 128, fmt: str = "shards", seed: int = 0, preview: str | None = None,
               rows_per_shard: int = 1000, *, workers: int | None = None,
               footprint: Sequence[float] = DEFAULT_FOOTPRINT, tree: str | None = None) -> str:
    """Write a synthetic survey of ``n`` galaxies in one of the source layouts.

    Parameters
    ----------
    out : str
        Output directory, local or ``s3://``.
    n : int
        Number of galaxies (indices 0 .. n - 1).
    size : int
        Cutout side in pixels.
    fmt : str
        One of :data:`FORMATS`; the files are those of docs/contracts.md "Source layouts".
    seed : int
        Survey seed.
    preview : str, optional
        Also write a labelled grid PNG of a few galaxies of each class here.
    rows_per_shard : int
        Rows per Parquet file (``shards`` format).
    workers : int, optional
        Processes rendering in parallel (default: the CPU count); 1 renders in this process.
    footprint : sequence of 4 floats
        ``(ra_min, ra_max, dec_min, dec_max)`` in degrees.
    tree : str, optional
        ``decals-dr5`` or ``decals-dr8``: also write ``votes.parquet``, a GZ DECaLS-style vote table
        of the same galaxies (:func:`galaxy_ray.synthetic.votes.decals_vote_table`: counts from a
        varying number of volunteers, fractions, and the true vote probabilities ``true_*``), and,
        with ``fmt="manifest"``, add its vote counts to the manifest so that it trains ``--task votes``.

    Returns
    -------
    str
        ``out``.

    Raises
    ------
    GalaxyRayError
        Unknown format, bad count, size or footprint, or ``out`` is a file.
    """
    if fmt not in FORMATS:
        raise GalaxyRayError(f"format {fmt!r} is unknown; choose one of {', '.join(FORMATS)}")
    n, size = check_count(n), check_size(size)
    rows_per_shard = check_count(rows_per_shard, "rows_per_shard")
    footprint = check_footprint(footprint)
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    if not storage.is_remote(out) and os.path.isfile(storage.strip_scheme(out)):
        raise GalaxyRayError(f"{out}: is a file; the synthetic survey needs a directory")
    storage.makedirs(out)
    votes = _vote_table(out, n, seed, footprint, tree) if tree is not None else None
    counts = votes[list(get_schema(tree).count_forms[VOTE_FORM])] if votes is not None and fmt == "manifest" else None
    jobs = _jobs(out, fmt, n, size, seed, rows_per_shard, workers, footprint)
    written = _collect(out, fmt, n, size, _map_jobs(jobs, workers), counts)
    if votes is not None:
        written.add(storage.join(out, VOTES_TABLE))
    remove_stale(out, fmt, written)
    if preview:
        save_preview(preview_galaxies(seed, n, min(size, 128), footprint), preview)
    return out
