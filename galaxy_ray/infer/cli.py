"""``galaxy-ray infer`` (and ``jobs/infer.py``): the command line of :func:`run_inference`."""

from __future__ import annotations

import argparse
import os
from typing import Sequence

from galaxy_ray import catalog, runtime
from galaxy_ray.data import sources
from galaxy_ray.infer.options import check_decode_tasks, check_num_actors
from galaxy_ray.infer.plan import DEFAULT_ROWS_PER_FILE
from galaxy_ray.infer.run import run_inference
from galaxy_ray.merger.operating import parse_threshold

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The options of ``galaxy-ray infer``."""
    p = argparse.ArgumentParser(
        prog="galaxy-ray infer",
        description="Stream a source through a model into a Parquet morphology catalog. "
                    "Rerunning the same command resumes an interrupted run.",
    )
    p.add_argument("--checkpoint", required=True,
                   help="model checkpoint (model.pt) or its run directory, path or s3://")
    p.add_argument("--source", required=True, help="cutouts: packed shards (fast) or any source format")
    p.add_argument("--out", required=True, help="catalog directory, path or s3://")
    p.add_argument("--format", default=None, help="source format (default: detected)")
    sources.add_source_options(p)
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--rows-per-file", type=int, default=DEFAULT_ROWS_PER_FILE,
                   help="target rows per output file (the unit a rerun skips)")
    p.add_argument("--tta", action="store_true", help="average over the 8 rotations and flips")
    p.add_argument("--merger-threshold", type=parse_threshold, default="auto",
                   help="is_merger = p_merger >= this: auto (default: the threshold the checkpoint's training "
                        "chose on its validation split) or a number")
    p.add_argument("--merger-precision", type=float, default=None,
                   help="with auto: the lowest threshold whose validation precision reaches this")
    p.add_argument("--num-actors", default=None, metavar="N|MIN,MAX",
                   help="model actors: N or MIN,MAX (default one per GPU, or one per 4 CPUs)")
    runtime.add_gpu_argument(p, "one GPU per model actor")
    p.add_argument("--hats", nargs="?", const="", metavar="DIR",
                   help="also write the catalog as a HATS collection for LSDB to DIR (default <out>_hats)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the catalog in --out when another model, input, preprocessing or merger "
                        "threshold made it (without this, such a rerun is refused); removes only the files "
                        "its _run_key.json lists")
    p.add_argument("--embeddings", type=int, nargs="?", const=16, default=None, metavar="DIMS",
                   help="also write an 'embedding' column: the pooled features, PCA-reduced to DIMS (default 16) "
                        "float16 numbers, for `galaxy-ray similar` (docs/similar.md)")
    p.add_argument("--embedding-sample", type=int, default=512, help="cutouts that fit the embeddings' PCA")
    runtime.add_verbose_argument(p)
    p.add_argument("--decode-tasks", type=int, default=None,
                   help="cap on concurrent decode tasks (default: one per model actor on CPUs, no cap on GPUs)")
    return p


def _write_hats(out: str, dest: str) -> None:
    """The HATS collection of the finished catalog (rewritten whole: the catalog may have grown since)."""
    dest = dest or catalog.default_hats_path(out)
    done = catalog.to_hats(out, dest, workers=min(4, os.cpu_count() or 1), replace=True)
    print(f"HATS collection {dest}: {done['rows']} rows in {done['partitions']} partitions"
          + (f" ({done['rows_without_position']} rows without RA/Dec left out)" if done.get("rows_without_position")
             else ""), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray infer`` and ``jobs/infer.py``."""
    args = build_parser().parse_args(argv)
    # checked here, not as argparse types, so that a bad value is one line like every other refusal
    num_actors, decode_tasks = check_num_actors(args.num_actors), check_decode_tasks(args.decode_tasks)
    runtime.set_verbosity(args.verbose)
    summary = run_inference(
        args.checkpoint, args.source, args.out, format=args.format, batch_size=args.batch_size,
        rows_per_file=args.rows_per_file, tta=args.tta, merger_threshold=args.merger_threshold,
        merger_precision=args.merger_precision,
        num_actors=num_actors, use_gpu=args.gpu, decode_tasks=decode_tasks,
        source_options=sources.source_options(args), overwrite=args.overwrite, log=lambda s: print(s, flush=True),
        embeddings=args.embeddings, embedding_sample=args.embedding_sample,
    )
    print(f"rows with errors: {summary['error_rows']}", flush=True)
    if args.hats is not None:
        _write_hats(args.out, args.hats)
    return 0
