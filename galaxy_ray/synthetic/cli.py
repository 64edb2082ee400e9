"""``galaxy-ray synth``: render a synthetic survey from the command line."""

from __future__ import annotations

import argparse
import time
from typing import Sequence

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.synthetic.layouts import FORMATS, describe
from galaxy_ray.synthetic.sky import DEFAULT_FOOTPRINT
from galaxy_ray.synthetic.survey import synthesize


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as one :class:`GalaxyRayError` line, not usage + exit."""

    def error(self, message: str):  # type: ignore[override]
        raise GalaxyRayError(f"synth: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The ``galaxy-ray synth`` options (a bad value raises :class:`GalaxyRayError`)."""
    p = _Parser(
        prog="galaxy-ray synth",
        description="Render a synthetic survey of labelled galaxy cutouts (Galaxy10 class and GZ2 votes).",
    )
    p.add_argument("out", help="output directory, local or s3://")
    p.add_argument("--n", type=int, default=1000, help="number of galaxies (default 1000)")
    p.add_argument("--size", type=int, default=128, help="cutout side in pixels (default 128)")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="shards", help="layout to write")
    p.add_argument("--seed", type=int, default=0, help="survey seed (default 0)")
    p.add_argument("--preview", default=None, help="also write a labelled grid PNG here")
    p.add_argument("--rows-per-shard", type=int, default=1000, help="rows per Parquet shard (default 1000)")
    p.add_argument("--workers", type=int, default=None, help="rendering processes (default: CPU count)")
    p.add_argument("--tree", default=None,
                   help="also write votes.parquet, GZ DECaLS-style vote counts of the same galaxies on this tree "
                        "(decals-dr5 or decals-dr8 / gz-desi; volunteers per galaxy vary from 3 to 40), and with "
                        "--format manifest add the counts to the manifest (for train --task votes)")
    p.add_argument("--footprint", type=float, nargs=4, default=DEFAULT_FOOTPRINT,
                   metavar=("RA_MIN", "RA_MAX", "DEC_MIN", "DEC_MAX"), help="sky box in degrees")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray synth OUT --n N --size PIXELS --format FMT --seed S [--preview grid.png]``.

    Returns
    -------
    int
        0; a bad option or value raises :class:`GalaxyRayError` (one line, exit 2
        through :func:`galaxy_ray.cli.run_entry_point`).
    """
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    out = synthesize(args.out, args.n, args.size, args.fmt, args.seed, args.preview, args.rows_per_shard,
                     workers=args.workers, footprint=args.footprint, tree=args.tree)
    seconds = time.perf_counter() - t0
    print(f"wrote {args.n} synthetic {args.size}x{args.size} cutouts (seed {args.seed}) as {args.fmt} to {out} "
          f"in {seconds:.1f} s ({args.n / seconds:.0f} cutouts/s): {describe(args.fmt, args.n, args.rows_per_shard)}")
    if args.preview:
        print(f"preview grid: {args.preview}")
    return 0
