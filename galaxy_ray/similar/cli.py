"""``galaxy-ray similar``: galaxies like a given one (``--like``, ``--like-image``), the oddest (``--oddity``),
or the catalog's approximate index (``--build-index``)."""

from __future__ import annotations

import argparse
from typing import Sequence

from galaxy_ray.errors import GalaxyRayError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The options of ``galaxy-ray similar``."""
    p = argparse.ArgumentParser(
        prog="galaxy-ray similar",
        description="Similarity search over a catalog written by `galaxy-ray infer --embeddings`: exact, or "
                    "through the catalog's index when --build-index has made one.")
    p.add_argument("catalog", help="catalog directory, s3:// prefix or catalog Parquet file")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--like", metavar="OBJECT_ID", help="the galaxy to match, by its object_id")
    what.add_argument("--like-image", metavar="FILE", help="an image file, embedded with the catalog's model")
    what.add_argument("--oddity", action="store_true",
                      help="rank every galaxy by the distance to its k-th nearest neighbour, oddest first; "
                           "with --out FILE.parquet every catalog column is written, so `galaxy-ray query "
                           "FILE.parquet --sort=-oddity` reads it")
    what.add_argument("--build-index", action="store_true",
                      help="build the approximate index (FAISS IVF) in CATALOG/_similar_index for --metric; "
                           "later searches use it")
    p.add_argument("-k", type=int, default=None,
                   help="results to return (with --oddity: which neighbour; default 20, 10 with --oddity)")
    p.add_argument("--metric", default="cosine", help="cosine (default) or euclidean, in the embedding space")
    p.add_argument("--cone", nargs=3, metavar=("RA", "DEC", "RADIUS"),
                   help="search only within RADIUS of (RA, DEC); each an angle: 5arcsec, 30arcmin, 0.5deg; "
                        "a bare number is degrees")
    p.add_argument("--where", help="SQL filter on catalog columns, as for query, e.g. \"NOT is_merger\"")
    p.add_argument("--columns", help="more comma-separated columns to show")
    p.add_argument("--exact", action="store_true", help="search exactly even when the catalog has an index")
    p.add_argument("--checkpoint", help="with --like-image: the model, when the catalog's is not reachable here")
    p.add_argument("--out", help="write the rows to a .csv, .parquet, .fits or .vot file (local or s3://)")
    p.add_argument("--grid", metavar="FILE.png",
                   help="with --like / --like-image: also draw the query and its neighbours' cutouts, read from "
                        "the catalog's source, as a PNG grid")
    p.add_argument("--max-print", type=int, default=20, help="rows shown on the terminal (default 20)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray similar CATALOG --like OBJECT_ID -k 20`` (or ``--like-image FILE``, ``--oddity``)."""
    from galaxy_ray.catalog.cli import print_rows
    from galaxy_ray.catalog.output import write_table
    from galaxy_ray.catalog.scan import open_catalog
    from galaxy_ray.similar.search import oddity, similar

    args = build_parser().parse_args(argv)
    if args.grid and not (args.like or args.like_image):
        raise GalaxyRayError("--grid draws a search's neighbours: use it with --like or --like-image")
    cat = open_catalog(args.catalog)
    if args.build_index:
        from galaxy_ray.similar.index import build_index

        build_index(cat, metric=args.metric)
        return 0
    if args.oddity:
        # a Parquet output with every column is itself a catalog file: query can filter and sort on the oddity
        columns = cat.columns if args.out and args.out.lower().endswith(".parquet") else args.columns
        table = oddity(cat, k=args.k or 10, metric=args.metric, cone=args.cone, where=args.where, columns=columns,
                       use_index=not args.exact)
    else:
        table = similar(cat, args.like, like_image=args.like_image, k=args.k or 20, metric=args.metric, cone=args.cone,
                        where=args.where, columns=args.columns, checkpoint=args.checkpoint, use_index=not args.exact)
    if args.grid:
        from galaxy_ray.report.similar_grid import plot_similar_grid

        print(plot_similar_grid(table, cat.provenance.get("source"), args.grid, like=args.like,
                                like_image=args.like_image))
    if args.out:
        try:
            fmt = write_table(table, args.out, provenance=cat.provenance)
        except ValueError as exc:
            raise GalaxyRayError(f"--out {args.out}: {exc}") from None
        print(f"wrote {table.num_rows} rows to {args.out} ({fmt})")
    else:
        print_rows(table, args.max_print)
    return 0
