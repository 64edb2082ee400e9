"""``galaxy-ray report INPUT OUT_DIR``: detect what INPUT is and draw its figures."""

from __future__ import annotations

import argparse
from typing import Sequence

from galaxy_ray.data import sources
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.io.layout import is_catalog_dir, is_run_dir
from galaxy_ray.report.catalog import catalog_figures
from galaxy_ray.report.page import Report
from galaxy_ray.report.run import run_figures
from galaxy_ray.report.source import read_labelled, source_figures

__all__ = ["detect_input", "build_parser", "main"]


def detect_input(uri: str) -> str:
    """``"run"``, ``"catalog"`` or ``"source"``: what ``uri`` holds.

    Raises
    ------
    GalaxyRayError
        ``uri`` does not exist.
    """
    if not storage.exists(uri):
        raise GalaxyRayError(f"{uri}: no such file or directory; give a run directory, catalog or source")
    if storage.isdir(uri):
        if is_run_dir(uri):
            return "run"
        if is_catalog_dir(uri):
            return "catalog"
    return "source"


def build_parser() -> argparse.ArgumentParser:
    """The ``galaxy-ray report`` argument parser."""
    p = argparse.ArgumentParser(prog="galaxy-ray report",
                                description="Science report: figures and an index page for a source, a "
                                            "training run or a catalog.")
    p.add_argument("input", help="training run directory, catalog, or labelled source")
    p.add_argument("out", help="output directory (local or s3://) for the PNGs and index.html")
    p.add_argument("--catalog", help="also draw this catalog's sky maps and histograms")
    p.add_argument("--source", help="source of the cutouts (a run: overrides config.json's; else adds its figures)")
    p.add_argument("--top", type=int, default=4, help="images per answer or class (default 4)")
    p.add_argument("--max-rows", type=int, default=2000, help="galaxies of a source to read (random sample)")
    p.add_argument("--order", type=int, help="HEALPix order of the sky maps (default: from the catalog size)")
    sources.add_source_options(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray report``: PNGs and ``index.html`` for a run, a catalog or a source."""
    args = build_parser().parse_args(argv)
    if args.top < 1 or args.max_rows < 1:
        raise GalaxyRayError("--top and --max-rows must be >= 1")
    if args.order is not None and not 0 <= args.order <= 12:
        raise GalaxyRayError(f"--order {args.order}: give a HEALPix order from 0 to 12")
    kind = detect_input(args.input)
    opened_with = sources.source_options(args)
    storage.makedirs(args.out)
    rep = Report(args.out, f"galaxy-ray report: {args.input}", verbose=True)
    rep.say(f"{args.input}: a {kind}; figures go to {args.out}")
    if kind == "run":
        run_figures(rep, args.input, source=args.source, top=args.top, source_options=opened_with)
    elif kind == "catalog":
        catalog_figures(rep, args.input, order=args.order)
    else:
        source_figures(rep, read_labelled(args.input, args.max_rows, source_options=opened_with), top=args.top)
    if args.catalog and kind != "catalog":
        catalog_figures(rep, args.catalog, order=args.order)
    if args.source and kind == "catalog":
        source_figures(rep, read_labelled(args.source, args.max_rows, source_options=opened_with), top=args.top)
    index = rep.write_index()
    print(f"wrote {len(rep.figures)} figures and {index}")
    for name, title, _ in rep.figures:
        print(f"  {storage.join(args.out, name)}  {title}")
    return 0
