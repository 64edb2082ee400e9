"""``galaxy-ray pack``: stream any source into Parquet shards of the cutout table.

Resume design
-------------
* **Deterministic boundaries.**  Every source lists its cutouts on the driver
  in a fixed order (sorted file listings, table row order, HDF5 index order)
  as a small metadata table without pixels.  Shard ``k`` is rows
  ``[k * rows_per_shard, (k + 1) * rows_per_shard)`` of that list, so the same
  input always puts the same rows in ``part-<k>.parquet`` (``k`` zero-padded
  to five digits).
* **Atomic publication.**  A worker reads its shard's cutouts and publishes
  the Parquet file with :func:`galaxy_ray.io.storage.write_bytes_atomic`
  (temporary file and rename locally, one PUT on S3).  A shard file that
  exists is therefore complete.
* **Plan file.**  Before any shard, ``OUT/_pack.json`` records the source,
  format, row count and ``rows_per_shard``; at the end it is rewritten with
  ``"complete": true`` and the summary.  A rerun into the same OUT checks that
  the plan matches (else it stops with an error rather than mix two packings),
  removes temporaries left by a killed run, skips the shards that exist and
  writes only the missing ones.  No row is ever written twice.

Each shard carries its provenance (source, format, shard index, first row) in
the Parquet key-value metadata under ``galaxy_ray_pack``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from galaxy_ray import runtime
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import layout, resume, storage
from galaxy_ray.data.sources._common import Source
from galaxy_ray.data.sources.detect import FORMATS
from galaxy_ray.data.sources.read import add_source_options, open_source, source_options

_SHARD = "_shard"
#: Keys of the plan that must match for a rerun to resume.
_RESUME_KEYS = ("format", "rows", "rows_per_shard", "shards")


class _ShardWriter:
    """Reads the cutouts of whole shards and publishes each as one Parquet file (runs in workers)."""

    def __init__(self, source: Source, out: str, rows_per_shard: int, total: int) -> None:
        self.source, self.out = source, out
        self.rows_per_shard, self.total = rows_per_shard, total

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        done = []
        for k, rows in batch.groupby(_SHARD, sort=False):
            k = int(k)
            expected = min(self.rows_per_shard, self.total - k * self.rows_per_shard)
            if len(rows) != expected:  # a shard's rows must arrive together
                raise RuntimeError(f"shard {k}: got {len(rows)} of its {expected} rows in one batch")
            table = self.source.read_rows(rows.drop(columns=[_SHARD]))
            provenance = {"source": self.source.uri, "format": self.source.format, "shard": k,
                          "first_row": k * self.rows_per_shard, "rows": table.num_rows}
            meta = dict(table.schema.metadata or {})
            meta[b"galaxy_ray_pack"] = json.dumps(provenance).encode()
            table = table.replace_schema_metadata(meta)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            storage.write_bytes_atomic(storage.join(self.out, layout.part_name(k)), sink.getvalue().to_pybytes())
            done.append((k, table.num_rows))
        return pd.DataFrame({"shard": [d[0] for d in done], "rows": [d[1] for d in done]})


def _check_plan(out: str, plan: dict, existing: set[int]) -> None:
    path = storage.join(out, layout.PACK_PLAN)
    if storage.exists(path):
        old = json.loads(storage.read_bytes(path))
        diff = [k for k in _RESUME_KEYS if old.get(k) != plan[k]]
        if diff:
            raise GalaxyRayError(
                f"{out}: holds a pack of a different input ({', '.join(f'{k} {old.get(k)} != {plan[k]}' for k in diff)}); "
                "write to an empty OUT or delete it"
            )
    elif existing:
        raise GalaxyRayError(f"{out}: already holds part-*.parquet files not written by pack; choose an empty OUT")


def _start_plan(out: str, plan: dict) -> set[int]:
    """Check OUT against ``plan``, drop half-written files, record the plan; the shards already published."""
    state = resume.scan_output(out)
    _check_plan(out, plan, state.indices)
    resume.remove_temps(state)
    storage.makedirs(out)
    storage.write_bytes_atomic(storage.join(out, layout.PACK_PLAN), json.dumps(plan, indent=1).encode())
    return state.indices


def pack(
    source: str,
    out: str,
    rows_per_shard: int = 1000,
    format: str | None = None,
    *,
    votes: str = "fraction",
    id_column: str | None = None,
    filename_mapping: str | None = None,
    galaxy10: str | None = None,
    verbose: bool = True,
) -> dict:
    """Pack a source into ``OUT/part-00000.parquet`` ... of at most ``rows_per_shard`` cutouts.

    Parameters
    ----------
    source : str
        Any source path or ``s3://`` URI (see :data:`galaxy_ray.data.sources.FORMATS`).
    out : str
        Output directory or ``s3://`` prefix.
    rows_per_shard : int
        Cutouts per shard (the last shard holds the rest).
    format : str, optional
        Source format; detected from the source when None.
    votes, id_column, filename_mapping, galaxy10
        As for :func:`galaxy_ray.data.sources.read_source`.
    verbose : bool
        Print progress lines and the summary to stderr (:func:`galaxy_ray.runtime.say`).

    Returns
    -------
    dict
        ``out``, ``format``, ``rows`` (in the whole pack), ``shards``, ``written`` (by this run),
        ``skipped`` (already complete), ``rows_per_shard``, ``seconds``.
    """
    if rows_per_shard < 1:
        raise GalaxyRayError(f"--rows-per-shard {rows_per_shard}: must be at least 1")
    start = time.time()
    src = open_source(source, format, votes=votes, id_column=id_column, filename_mapping=filename_mapping,
                      galaxy10=galaxy10)
    meta = src.metadata().reset_index(drop=True)
    total = len(meta)
    if total == 0:
        raise GalaxyRayError(f"{source}: no cutouts found in this {src.format} source")
    n_shards = math.ceil(total / rows_per_shard)
    plan = {"source": str(source), "format": src.format, "rows": total, "rows_per_shard": rows_per_shard,
            "shards": n_shards, "complete": False}
    existing = _start_plan(out, plan)
    todo = [k for k in range(n_shards) if k not in existing]
    skipped = n_shards - len(todo)
    _say(verbose, f"pack: {total} cutouts from {source} ({src.format}) -> {n_shards} shards in {out}"
                  + (f"; {skipped} already complete" if skipped else ""))
    written = _write_shards(src, meta, todo, out, rows_per_shard, verbose) if todo else 0
    summary = {"out": str(out), "format": src.format, "rows": total, "shards": n_shards, "written": written,
               "skipped": skipped, "rows_per_shard": rows_per_shard, "seconds": round(time.time() - start, 2)}
    storage.write_bytes_atomic(storage.join(out, layout.PACK_PLAN),
                               json.dumps({**plan, **summary, "complete": True}, indent=1).encode())
    _say(verbose, f"pack: done: {n_shards} shards ({written} written, {skipped} skipped), {total} rows, "
                  f"{summary['seconds']} s -> {out}")
    return summary


def _write_shards(src: Source, meta: pd.DataFrame, todo: list[int], out: str, rows_per_shard: int,
                  verbose: bool) -> int:
    """Write shards ``todo`` of ``meta`` through Ray Data, one task per shard; how many were written."""
    import ray.data

    meta[_SHARD] = meta.index // rows_per_shard
    chunks = [meta.iloc[k * rows_per_shard : (k + 1) * rows_per_shard] for k in todo]
    writer = _ShardWriter(src, out, rows_per_shard, len(meta))
    runtime.ensure_ray()
    results = ray.data.from_pandas(chunks).map_batches(writer, batch_format="pandas", batch_size=None)
    every = max(1, len(todo) // 20)
    written = 0
    for row in results.iter_rows():
        written += 1
        if written % every == 0 or written == len(todo):
            _say(verbose, f"pack: {written}/{len(todo)} shards written (last {layout.part_name(row['shard'])}, "
                          f"{int(row['rows'])} rows)")
    return written


def _say(verbose: bool, message: str) -> None:
    if verbose:
        runtime.say(message)


def pack_main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray pack SOURCE OUT [--rows-per-shard 1000] [--format F]``."""
    parser = argparse.ArgumentParser(
        prog="galaxy-ray pack",
        description="Stream any source into Parquet shards of the cutout table (local or s3://). "
        "Rerunning after an interruption writes only the missing shards.",
    )
    parser.add_argument("source", help="source path or s3:// URI")
    parser.add_argument("out", help="output directory or s3:// prefix")
    parser.add_argument("--rows-per-shard", type=int, default=1000, help="cutouts per shard (default 1000)")
    parser.add_argument("--format", default=None, help=f"source format, one of: {', '.join(FORMATS)} (default: detect)")
    parser.add_argument("--votes", default="fraction", choices=("fraction", "debiased"),
                        help="GZ2 catalog values to convert to cumulative targets (default fraction)")
    parser.add_argument("--id-column", default=None, help="id column of a GZ2 catalog or manifest")
    add_source_options(parser)
    args = parser.parse_args(None if argv is None else list(argv))
    summary = pack(args.source, args.out, args.rows_per_shard, args.format, votes=args.votes,
                   id_column=args.id_column, **source_options(args))
    print(json.dumps(summary), file=sys.stdout)
    return 0
