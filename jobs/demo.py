"""The whole mission on one machine, on built-in demo data (``make demo``).

Each step is the ``galaxy-ray`` command a person would type; the script prints it
before running it, so the demo doubles as a walk-through:

1. synthesize a labelled training set and a larger survey, each as PNG cutouts listed in a
   manifest with their RA/Dec and GZ DECaLS DR8 / GZ DESI-style volunteer vote counts
   (``--tree decals-dr8``: 3 to 40 volunteers per galaxy, as in GZ DECaLS), with the
   vote table itself, ``votes.parquet``, beside each;
2. pack both into Parquet shards (the counts go with the cutouts), the fast path for
   catalog-scale runs;
3. train a ResNet-18 on the vote counts, ``--task votes --schema decals-dr8``: Dirichlet
   concentrations per question of the GZ DESI tree fitted with the Dirichlet-multinomial
   likelihood (Walmsley et al. 2022), so a galaxy seen by 40 volunteers weighs more than
   one seen by 3, with Ray Train workers sized to the machine;
4. stream the survey through the model into a Parquet morphology catalog with Galaxy Zoo's
   columns: conditional ``{question}_{answer}_fraction`` (e.g. ``merging_merger_fraction``),
   ``{question}_proportion_asked``, 90% intervals, ``morphology``, ``p_merger``, ``is_merger``;
5. a cone search, a query in GZ DESI's friendly view, merger statistics, and the science report;
6. the survey's merger fraction corrected for the classifier, next to the true one.

Training ends by calibrating ``p_merger`` and choosing the merger flag's
threshold on its validation split (a true merger there: the volunteers'
``merging_merger`` vote fraction > 0.4, after the Galaxy Zoo cut of Darg et al.
2010; the catalog's provenance records that rule); the catalog records the
completeness and false-positive rate measured there.  The survey's own vote
table holds every galaxy's counts, so step 6 applies the same rule to them and
says whether the corrected fraction's interval holds the true fraction.
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

import numpy as np


#: The training run's name under ``OUT/runs``.
RUN = "demo-votes"


def _run(title: str, args: list[str]) -> None:
    cmd = [sys.executable, "-m", "galaxy_ray.cli", *args]
    print(f"\n== {title}\n$ galaxy-ray {shlex.join(args)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)


def survey_truth(provenance: dict, survey_dir: Path) -> tuple[np.ndarray, str]:
    """Every survey galaxy's true merger flag by the rule the catalog's merger rates were measured with.

    A votes catalog (``task`` ``votes``): the survey's vote table (``votes.parquet``, written by
    ``synth --tree``) read as training reads counts, and
    :func:`galaxy_ray.merger.truth.true_mergers` of the catalog's tree, merger answer and
    ``merger_validation.vote_cut``, the function that labelled the validation galaxies; a gz2
    catalog: the manifest's ``Class8.6`` above the cut.

    Returns
    -------
    (numpy.ndarray of bool, str)
        One flag per galaxy, and the rule in words.
    """
    import pandas as pd

    from galaxy_ray.data.transforms import PreprocessConfig
    from galaxy_ray.merger.truth import MERGER_VOTE_CUT, true_mergers
    from galaxy_ray.model.spec import ModelSpec
    from galaxy_ray.trees import get_schema, vote_columns

    validation = provenance.get("merger_validation") or {}
    cut = float(validation.get("vote_cut") or MERGER_VOTE_CUT)
    if provenance.get("task") != "votes":
        survey = pd.read_csv(survey_dir / "manifest.csv")
        return (survey["Class8.6"] > cut).to_numpy(), f"Class8.6 > {cut:g}"
    tree = get_schema(provenance["tree"])
    table = pd.read_parquet(survey_dir / "votes.parquet")
    counts = table[list(vote_columns(table.columns, tree, str(survey_dir), kind="counts").columns)]
    spec = ModelSpec.for_votes(provenance["arch"], tree.name, PreprocessConfig.from_dict(provenance["preprocess"]),
                               merger=provenance["merger"])
    truth = true_mergers(spec, counts.to_numpy(dtype=np.float64), cut)
    return truth, validation.get("truth") or f"cumulative {spec.merger} vote fraction > {cut:g}"


def merger_fraction_check(catalog_dir: Path, survey_dir: Path) -> bool:
    """Print the catalog's raw and corrected merger fractions beside the survey's true one.

    Returns True when the true fraction (by the run's truth rule, from the
    survey's own votes) lies inside the corrected fraction's 95% interval.
    """
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
    truth, rule = survey_truth(provenance, survey_dir)
    true_fraction = float(truth.mean())
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
          f"[{est['correction']}]" + (f"\n           caveat: {est['caveat']}" if est.get("caveat") else ""))
    inside = clo <= true_fraction <= chi
    print(f"true:      {true_fraction:.4f} of the survey's {len(truth)} galaxies are mergers in their (simulated) "
          f"volunteer votes: {'inside' if inside else 'OUTSIDE'} the corrected interval"
          f"{'' if lo <= true_fraction <= hi else ', and outside the raw one'}")
    print(f"           (truth: {rule})")
    drawn = float((pd.read_csv(survey_dir / "manifest.csv", usecols=["label"])["label"] == GALAXY10_MERGER_CLASS).mean())
    print(f"           (for reference, {drawn:.4f} of them were drawn as the {GALAXY10_MERGER_CLASS} class; not every "
          f"drawn merger convinces 40% of volunteers)")
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

    tree = ["--tree", "decals-dr8"]
    _run("1. a labelled training set: PNG cutouts, and a manifest with their GZ DESI-tree vote counts",
         ["synth", str(out / "train_files"), "--n", str(args.train_size), "--size", size,
          "--format", "manifest", "--seed", "1", *tree, "--preview", str(out / "train_preview.png")])
    _run("1. a survey to classify, likewise (its votes are the truth of step 6)",
         ["synth", str(out / "survey_files"), "--n", str(args.survey_size), "--size", size,
          "--format", "manifest", "--seed", "2", *tree])
    _run("2. pack the training set into Parquet shards (the vote counts go with the cutouts)",
         ["pack", str(out / "train_files"), str(out / "train"), "--rows-per-shard", "500"])
    _run("2. pack the survey into Parquet shards",
         ["pack", str(out / "survey_files"), str(out / "survey"), "--rows-per-shard", "500"])
    _run("3. train a ResNet-18 on the vote counts of the GZ DESI tree (Dirichlet-multinomial; --workers auto)",
         ["train", "--source", str(out / "train"), "--task", "votes", "--schema", "decals-dr8",
          "--arch", "resnet18", "--weights", "none", "--image-size", size, "--epochs", str(args.epochs),
          "--freeze-epochs", "0", "--batch-size", "32",
          "--name", RUN, "--storage", str(out / "runs")])
    run_dir = out / "runs" / RUN
    _run("4. stream the survey through the model into a morphology catalog",
         ["infer", "--checkpoint", str(run_dir / "model.pt"), "--source", str(out / "survey"),
          "--out", str(out / "catalog"), "--batch-size", "64", "--overwrite"])
    _run("5. everything within 5 degrees of (RA, Dec) = (180, 30)",
         ["query", str(out / "catalog"), "--cone", "180", "30", "5",
          "--columns", "object_id,ra,dec,morphology,merging_merger_fraction,p_merger,is_merger", "--limit", "10",
          "--out", str(out / "cone.csv")])
    _run("5. the most strongly barred galaxies among those most volunteers would have been asked about bars "
         "(GZ DESI's friendly view)",
         ["query", str(out / "catalog"), "--friendly", "--where", "bar_proportion_asked >= 0.5",
          "--columns", "object_id,morphology,bar_proportion_asked,bar_strong_fraction,bar_strong_90pc-lower,"
          "bar_strong_90pc-upper", "--sort=-bar_strong_fraction", "--limit", "5"])
    _run("5. merger statistics", ["stats", str(out / "catalog"), "--by", "morphology"])
    _run("5. the science report", ["report", str(run_dir), str(out / "report"), "--catalog", str(out / "catalog")])
    print("\n== 6. the merger fraction of the survey, corrected for the classifier", flush=True)
    merger_fraction_check(out / "catalog", out / "survey_files")

    print(f"\nDone in {time.perf_counter() - t0:.0f} s. Everything is under {out}:")
    for name, what in [
        ("train_preview.png", "a labelled grid of training cutouts"),
        ("train/", "training shards"), ("survey/", "survey shards"),
        ("survey_files/votes.parquet", "the survey's (simulated) volunteer vote table, with true_* probabilities"),
        (f"runs/{RUN}/", "checkpoints, model.pt, metrics.csv, curves.png, evaluation.json"),
        ("catalog/", "the Parquet morphology catalog and _catalog.json"),
        ("cone.csv", "the cone search"), ("report/index.html", "the report"),
    ]:
        print(f"  {out / name}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
