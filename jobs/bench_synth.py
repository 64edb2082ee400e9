"""Benchmark: synthetic cutouts per second, one process against the process pool.

Writes the ``shards`` layout (render, Lupton colour, PNG, Parquet) of the same galaxies twice
into a temporary directory: first in this process (``workers=1``, the baseline), then with
``--workers`` processes.  Both runs start warm-up-free, as a user's command would, except
that this process has already imported the libraries.  Ends with one JSON line of figures.

    python jobs/bench_synth.py --n 1000 --size 128 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from typing import Sequence

from galaxy_ray import synthetic


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pool's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _rate(out: str, n: int, size: int, workers: int, seed: int) -> tuple[float, float]:
    """Cutouts per wall-clock second and per CPU second (the latter robust to a busy machine)."""
    t0, c0 = time.perf_counter(), _cpu_seconds()
    synthetic.synthesize(out, n, size=size, fmt="shards", seed=seed, workers=workers)
    return n / (time.perf_counter() - t0), n / (_cpu_seconds() - c0)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="cutouts per run")
    p.add_argument("--size", type=int, default=128, help="cutout side in pixels")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes of the parallel run")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    synthetic.synthetic_table(5, size=args.size)  # imports and PSF caches: not what we measure
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        serial, serial_cpu = _rate(os.path.join(tmp, "serial"), args.n, args.size, 1, args.seed)
        print(f"1 process:            {serial:7.1f} cutouts/s  ({serial_cpu:.1f} per CPU-second; "
              f"{args.n} x {args.size}px, shards)", flush=True)
        parallel, parallel_cpu = _rate(os.path.join(tmp, "pool"), args.n, args.size, args.workers, args.seed)
        print(f"{args.workers} worker processes:   {parallel:7.1f} cutouts/s  ({parallel_cpu:.1f} per CPU-second; "
              "includes starting the pool)", flush=True)
    print(f"speed-up {parallel / serial:.2f}x on {os.cpu_count()} CPUs; target >= 100 cutouts/s at 128px")
    print(json.dumps({
        "benchmark": "synth", "n": args.n, "size": args.size, "format": "shards", "cpus": os.cpu_count(),
        "workers": args.workers, "serial_cutouts_per_s": round(serial, 1),
        "parallel_cutouts_per_s": round(parallel, 1), "speedup": round(parallel / serial, 2),
        "serial_cutouts_per_cpu_s": round(serial_cpu, 1), "parallel_cutouts_per_cpu_s": round(parallel_cpu, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
