"""The whole mission on one machine, on built-in demo data (``make demo``).

Each step is the ``galaxy-ray`` command a person would type; the script prints it
before running it, so the demo doubles as a walk-through:

1. synthesize a labelled training set (packed Parquet shards) and a larger survey
   (PNG cutouts listed in a manifest with their RA/Dec);
2. pack the survey into shards, the fast path for catalog-scale runs;
3. fine-tune a ResNet-18 with 2 Ray Train workers on the GZ2 vote fractions;
4. stream the survey through the model into a Parquet morphology catalog;
5. a cone search, merger statistics, and the science report.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence


def _run(title: str, args: list[str]) -> None:
    cmd = [sys.executable, "-m", "galaxy_ray.cli", *args]
    print(f"\n== {title}\n$ galaxy-ray {shlex.join(args)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="demo_output", help="directory for everything the demo writes")
    p.add_argument("--train-size", type=int, default=1200, help="galaxies in the training set")
    p.add_argument("--survey-size", type=int, default=3000, help="galaxies in the survey to classify")
    p.add_argument("--image-size", type=int, default=64, help="cutout size in pixels")
    p.add_argument("--epochs", type=int, default=8)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    size = str(args.image_size)
    t0 = time.perf_counter()

    _run("1. a labelled training set (Parquet shards) with a preview grid",
         ["synth", str(out / "train"), "--n", str(args.train_size), "--size", size,
          "--format", "shards", "--seed", "1", "--preview", str(out / "train_preview.png")])
    _run("1. a survey to classify: PNG cutouts and a manifest of their RA/Dec",
         ["synth", str(out / "survey_files"), "--n", str(args.survey_size), "--size", size,
          "--format", "manifest", "--seed", "2"])
    _run("2. pack the survey into Parquet shards",
         ["pack", str(out / "survey_files"), str(out / "survey"), "--rows-per-shard", "500"])
    _run("3. fine-tune a ResNet-18 on GZ2 vote fractions with 2 Ray Train workers",
         ["train", "--source", str(out / "train"), "--task", "gz2", "--arch", "resnet18",
          "--weights", "none", "--image-size", size, "--epochs", str(args.epochs),
          "--freeze-epochs", "0", "--workers", "2", "--batch-size", "32",
          "--name", "demo-gz2", "--storage", str(out / "runs")])
    run_dir = out / "runs" / "demo-gz2"
    _run("4. stream the survey through the model into a morphology catalog",
         ["infer", "--checkpoint", str(run_dir / "model.pt"), "--source", str(out / "survey"),
          "--out", str(out / "catalog"), "--batch-size", "64"])
    _run("5. everything within 5 degrees of (RA, Dec) = (180, 30)",
         ["query", str(out / "catalog"), "--cone", "180", "30", "5",
          "--columns", "object_id,ra,dec,morphology,p_merger", "--limit", "10",
          "--out", str(out / "cone.csv")])
    _run("5. merger statistics", ["stats", str(out / "catalog"), "--by", "morphology"])
    _run("5. the science report", ["report", str(run_dir), str(out / "report"),
                                  "--catalog", str(out / "catalog")])

    print(f"\nDone in {time.perf_counter() - t0:.0f} s. Everything is under {out}:")
    for name, what in [
        ("train_preview.png", "a labelled grid of training cutouts"),
        ("train/", "training shards"), ("survey/", "survey shards"),
        ("runs/demo-gz2/", "checkpoints, model.pt, metrics.csv, curves.png, evaluation.json"),
        ("catalog/", "the Parquet morphology catalog and _catalog.json"),
        ("cone.csv", "the cone search"), ("report/index.html", "the report"),
    ]:
        print(f"  {out / name}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
