"""The whole mission on one machine, on built-in demo data (``make demo``).

Each step is the ``galaxy-ray`` command a person would type; the script prints it
before running it, so the demo doubles as a walk-through:

1. synthesize a labelled training set (packed Parquet shards) and a larger survey
   (PNG cutouts listed in a manifest with their RA/Dec);
2. pack the survey into shards, the fast path for catalog-scale runs;
3. fine-tune a ResNet-18 on the GZ2 vote fractions with Ray Train workers sized to the machine;
4. stream the survey through the model into a Parquet morphology catalog;
5. a cone search, merger statistics, and the science report;
6. the survey's merger fraction corrected for the classifier, next to the true one.

Training ends by calibrating ``p_merger`` and choosing the merger flag's
threshold on its validation split (a true merger there: Class8.6 > 0.4, the
Galaxy Zoo cut of Darg et al. 2010); the catalog records the completeness and
false-positive rate measured there.  The synthetic survey knows every
galaxy's votes and class, so the demo can say whether the corrected fraction's
interval holds the true fraction.
"""

from __future__ import annotations

import argparse
import json
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


def merger_fraction_check(catalog_dir: Path, manifest: Path) -> bool:
    """Print the catalog's raw and corrected merger fractions beside the survey's true one.

    Returns True when the true fraction (by the run's truth rule, from the
    survey's own votes) lies inside the corrected fraction's 95% interval.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.dataset as pads

    from galaxy_ray.merger.fractions import corrected_from_provenance
    from galaxy_ray.merger.operating import format_threshold
    from galaxy_ray.catalog.stats import wilson_interval
    from galaxy_ray.schema import GALAXY10_MERGER_CLASS

    provenance = json.loads((catalog_dir / "_catalog.json").read_text())
    rows = pads.dataset(str(catalog_dir), format="parquet").to_table(columns=["is_merger", "error"])
    classified = np.asarray(rows.column("error").is_null())
    flagged = int(np.asarray(rows.column("is_merger").fill_null(False))[classified].sum())
    total = int(classified.sum())
    cut = float((provenance.get("merger_validation") or {}).get("vote_cut") or 0.4)
    survey = pd.read_csv(manifest)
    true_fraction = float((survey["Class8.6"] > cut).mean())
    est = corrected_from_provenance(flagged, total, provenance)
    lo, hi = wilson_interval(flagged, total)
    print(f"flagged:   {flagged} of {total} galaxies at p_merger >= {format_threshold(provenance['merger_threshold'])} "
          f"({provenance.get('merger_threshold_source')}): raw fraction {flagged / max(total, 1):.4f} "
          f"(95% Wilson {lo:.4f} - {hi:.4f})")
    if est["corrected_fraction"] is None:
        print(f"corrected: {est['correction']}")
        return False
    clo, chi = est["corrected_fraction_95"]
    print(f"corrected: {est['corrected_fraction']:.4f} (95% {clo:.4f} - {chi:.4f}); completeness "
          f"{est['completeness']:.2f} and false-positive rate {est['false_positive_rate']:.3f} from validation "
          f"[{est['correction']}]")
    inside = clo <= true_fraction <= chi
    print(f"true:      {true_fraction:.4f} of the survey's galaxies have Class8.6 > {cut:g} in their (simulated) "
          f"volunteer votes: {'inside' if inside else 'OUTSIDE'} the corrected interval"
          f"{'' if lo <= true_fraction <= hi else ', and outside the raw one'}")
    print(f"           (for reference, {float((survey['label'] == GALAXY10_MERGER_CLASS).mean()):.4f} of them were "
          f"drawn as the {GALAXY10_MERGER_CLASS} class; not every drawn merger convinces 40% of volunteers)")
    return inside


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
    _run("3. fine-tune a ResNet-18 on GZ2 vote fractions (Ray Train workers: --workers auto)",
         ["train", "--source", str(out / "train"), "--task", "gz2", "--arch", "resnet18",
          "--weights", "none", "--image-size", size, "--epochs", str(args.epochs),
          "--freeze-epochs", "0", "--batch-size", "32",
          "--name", "demo-gz2", "--storage", str(out / "runs")])
    run_dir = out / "runs" / "demo-gz2"
    _run("4. stream the survey through the model into a morphology catalog",
         ["infer", "--checkpoint", str(run_dir / "model.pt"), "--source", str(out / "survey"),
          "--out", str(out / "catalog"), "--batch-size", "64", "--overwrite"])
    _run("5. everything within 5 degrees of (RA, Dec) = (180, 30)",
         ["query", str(out / "catalog"), "--cone", "180", "30", "5",
          "--columns", "object_id,ra,dec,morphology,p_merger", "--limit", "10",
          "--out", str(out / "cone.csv")])
    _run("5. merger statistics", ["stats", str(out / "catalog"), "--by", "morphology"])
    _run("5. the science report", ["report", str(run_dir), str(out / "report"),
                                  "--catalog", str(out / "catalog")])
    print("\n== 6. the merger fraction of the survey, corrected for the classifier", flush=True)
    merger_fraction_check(out / "catalog", out / "survey_files" / "manifest.csv")

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
