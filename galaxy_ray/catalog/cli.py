"""``galaxy-ray query`` and ``galaxy-ray stats``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

import pandas as pd
import pyarrow as pa

from galaxy_ray.catalog.angles import ANGLE_HELP
from galaxy_ray.catalog.regions import as_region
from galaxy_ray.catalog.output import write_kaggle_submission, write_table
from galaxy_ray.catalog.query import query, quote_known_columns, split_list, validate_where
from galaxy_ray.catalog.scan import Catalog, open_catalog
from galaxy_ray.catalog.stats import format_stats, merger_stats
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import GZ2_ANSWER_COLUMNS, CatalogColumns as C
from galaxy_ray.cli import help_text

__all__ = ["query_main", "stats_main", "print_rows"]


def _add_region_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("catalog", help="catalog directory, s3:// prefix or catalog Parquet file")
    p.add_argument("--cone", nargs=3, metavar=("RA", "DEC", "RADIUS"),
                   help=f"rows within RADIUS of (RA, DEC), ICRS; each {ANGLE_HELP} (e.g. --cone 180 30 5arcmin)")
    p.add_argument("--box", nargs=4, metavar=("RA_MIN", "RA_MAX", "DEC_MIN", "DEC_MAX"),
                   help=f"rows in an RA/Dec box; each {ANGLE_HELP}; RA_MIN > RA_MAX crosses RA = 0/360")
    p.add_argument("--where", help="SQL filter on catalog columns, e.g. \"p_merger > 0.8 AND morphology = 'spiral'\"")


def _query_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="galaxy-ray query", description=help_text(query_main.__doc__))
    _add_region_args(p)
    p.add_argument("--columns",
                   help="comma-separated columns to return, or 'all'. Default: on the terminal a readable set "
                        f"({', '.join(DEFAULT_COLUMNS)}, and the columns --where and --sort name); with --out, all")
    p.add_argument("--sort", help="COLUMN, COLUMN DESC or -COLUMN (descending); several separated by commas")
    p.add_argument("--limit", type=int, help="at most this many rows")
    p.add_argument("--out", help="write the rows to a .csv, .parquet, .fits or .vot file (local or s3://)")
    p.add_argument("--friendly", action="store_true",
                   help="GZ DESI's friendly view: each question's {question}_{answer}_fraction columns are null where "
                        "its {question}_proportion_asked is below 0.5 (Walmsley et al. 2023); --where and --sort "
                        "see the masked values")
    p.add_argument("--kaggle-submission", metavar="FILE",
                   help="GZ2 catalog: write GalaxyID, Class1.1 ... Class11.6 in the challenge's layout")
    p.add_argument("--max-print", type=int, default=20, help="rows shown on the terminal (default 20)")
    p.add_argument("-v", "--verbose", action="store_true", help="print what the scan read")
    return p


def _dash_values(argv: Sequence[str], parser: argparse.ArgumentParser, options: tuple[str, ...]) -> list[str]:
    """``argv`` with ``OPTION -VALUE`` written ``OPTION=-VALUE`` for each of ``options``.

    argparse reads any word starting with ``-`` as an option (unless it looks
    like a negative number), so ``--sort -p_merger`` would fail with "expected
    one argument"; ``--sort=-p_merger`` is the form it takes.  A word after
    the option that is itself one of the parser's options (``--sort -v``) is
    left alone, as is everything after ``--``.
    """
    known = {s for action in parser._actions for s in action.option_strings}
    out: list[str] = []
    words = list(argv)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            return out + words[i:]
        nxt = words[i + 1] if i + 1 < len(words) else None
        if (word in options and nxt is not None and nxt.startswith("-") and not nxt.startswith("--")
                and nxt.split("=", 1)[0] not in known and len(nxt) > 1):
            out.append(f"{word}={nxt}")
            i += 2
            continue
        out.append(word)
        i += 1
    return out


#: What ``query`` prints when no --columns is given (those the catalog has).
DEFAULT_COLUMNS = (C.OBJECT_ID, C.RA, C.DEC, C.MORPHOLOGY, C.P_MERGER, C.IS_MERGER, C.ERROR)


def default_columns(cat: Catalog, where: str | None, sort: str | None) -> list[str]:
    """The readable default: :data:`DEFAULT_COLUMNS`, then the columns ``where`` and ``sort`` name."""
    names = cat.columns
    out = [c for c in DEFAULT_COLUMNS if c in names]
    if where:
        used = validate_where(quote_known_columns(where, names), names)
        out += [c for c in names if c in used and c not in out]
    for item in split_list(sort):
        key = item.split()[0].lstrip("-") if item.split() else ""
        match = [c for c in names if c.lower() == key.lower()]
        out += [c for c in match if c not in out]
    return out


def _kaggle_columns(cat: Catalog, args: argparse.Namespace) -> list[str]:
    """The columns a Kaggle submission needs, after checking that ``cat`` is a GZ2 catalog."""
    if args.columns:
        raise GalaxyRayError("--kaggle-submission writes a fixed set of columns; drop --columns")
    missing = [c for c in GZ2_ANSWER_COLUMNS if c not in cat.columns]
    if missing:
        raise GalaxyRayError(f"{args.catalog}: --kaggle-submission needs a GZ2 catalog (no column {missing[0]})")
    return [C.OBJECT_ID, *GZ2_ANSWER_COLUMNS, C.ERROR]


def print_rows(table: pa.Table, max_print: int) -> None:
    """The first ``max_print`` rows as text, and the row count."""
    df = table.slice(0, max(0, max_print)).to_pandas()
    with pd.option_context("display.max_columns", None, "display.width", 200):
        print(df.to_string(index=False) if len(df) else "(no rows)")
    more = f"; first {len(df)} shown, use --out to save all" if table.num_rows > len(df) else ""
    print(f"{table.num_rows} rows{more}")


def query_main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray query``: cone/box searches, filters, output to the terminal or a file."""
    parser = _query_parser()
    args = parser.parse_args(_dash_values(sys.argv[1:] if argv is None else argv, parser, ("--sort",)))
    cat = open_catalog(args.catalog)
    if args.kaggle_submission:
        columns = _kaggle_columns(cat, args)
    elif args.columns and args.columns.strip().lower() == "all":
        columns = None
    elif args.columns or args.out:
        columns = args.columns
    else:
        columns = default_columns(cat, args.where, args.sort)
    start = time.perf_counter()
    table = query(cat, cone=args.cone, box=args.box, where=args.where, columns=columns, sort=args.sort,
                  limit=args.limit, output="arrow", friendly=args.friendly)
    seconds = time.perf_counter() - start
    if args.verbose:
        s = cat.last_scan
        print(f"{table.num_rows} rows in {seconds:.3f} s; read {s.row_groups_read} of {s.row_groups_total} "
              f"row groups in {s.files} files", file=sys.stderr)
    if args.kaggle_submission:
        n = write_kaggle_submission(table, args.kaggle_submission)
        print(f"wrote {n} rows to {args.kaggle_submission} (Kaggle submission layout)")
    if args.out:
        region = as_region(args.cone, args.box)  # recorded in degrees, whatever units were typed
        degrees = None if region is None else list(region.__dict__.values())
        asked = {"catalog": args.catalog, "cone": degrees if args.cone else None,
                 "box": degrees if args.box else None, "where": args.where,
                 "sort": args.sort, "limit": args.limit, "friendly": args.friendly or None}
        fmt = write_table(table, args.out, provenance=cat.provenance, query=asked)
        print(f"wrote {table.num_rows} rows to {args.out} ({fmt})")
    if not (args.out or args.kaggle_submission):
        print_rows(table, args.max_print)
    return 0


def stats_main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray stats``: rows, error rows, morphology mix, merger fraction with a Wilson interval."""
    p = argparse.ArgumentParser(prog="galaxy-ray stats", description=help_text(stats_main.__doc__))
    _add_region_args(p)
    p.add_argument("--by", help="group by this column (floating-point columns in bins)")
    p.add_argument("--bins", help="with --by: number of equal-width bins or comma-separated edges")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = p.parse_args(argv)
    if args.bins is not None and not args.by:
        raise GalaxyRayError("--bins needs --by COLUMN")
    stats = merger_stats(args.catalog, cone=args.cone, box=args.box, where=args.where, by=args.by, bins=args.bins)
    print(json.dumps(stats, default=str) if args.json else format_stats(stats))
    return 0
