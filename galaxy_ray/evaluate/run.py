"""``galaxy-ray evaluate``: the command over :func:`galaxy_ray.evaluate.core.evaluate_checkpoint`.

``--split train|val`` scores one side of the split the checkpoint was trained with
(stored in its ``extra``).  The library (predictions, metrics, report files) is
:mod:`galaxy_ray.evaluate.core`; its names are re-exported here for older imports.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from galaxy_ray import runtime
from galaxy_ray.evaluate.core import (SPREAD, LabelledPredictor, checkpoint_split, evaluate_checkpoint,
                                      evaluate_predictions, headline, merger_report, predict_labelled, print_summary,
                                      spread_report, write_flagged_predictions, write_predictions, write_report)
from galaxy_ray.merger.operating import parse_threshold

__all__ = [
    "SPREAD",
    "LabelledPredictor",
    "build_parser",
    "checkpoint_split",
    "evaluate_checkpoint",
    "evaluate_predictions",
    "headline",
    "merger_report",
    "main",
    "predict_labelled",
    "print_summary",
    "spread_report",
    "write_flagged_predictions",
    "write_predictions",
    "write_report",
]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="galaxy-ray evaluate",
                                description="Evaluate a trained checkpoint on a labelled source.")
    p.add_argument("checkpoint", help="model.pt (or its run directory), local or s3://")
    p.add_argument("source", help="labelled cutouts: path or s3:// URI")
    runtime.add_verbose_argument(p)
    p.add_argument("--out", help="directory for evaluation.json and PNGs (default: beside the checkpoint, eval-<source>)")
    p.add_argument("--format", help="source format, when detection is not enough")
    p.add_argument("--label-column", help="target column (default: votes for gz2, label for classes)")
    p.add_argument("--votes", default="fraction", choices=["fraction", "debiased"], help="gz2-catalog sources")
    p.add_argument("--allow-outside-paths", action="store_true",
                   help="let a manifest name files outside its own folder (default: refused; only for a table "
                        "you trust)")
    p.add_argument("--split", choices=["all", "train", "val"], default="all",
                   help="evaluate only one side of the training split of object ids (default all)")
    p.add_argument("--val-fraction", type=float, default=None, help="of the split (default: the checkpoint's run)")
    p.add_argument("--merger-threshold", type=parse_threshold, default="auto",
                   help="p_merger at or above which a galaxy is a merger: auto (default: the threshold the "
                        "checkpoint's training chose on its validation split) or a number")
    p.add_argument("--merger-precision", type=float, default=None,
                   help="with auto: the lowest threshold whose validation precision reaches this, from the "
                        "checkpoint's stored validation precision-recall table")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--tta", action="store_true",
                   help="average over the 8 rotations and flips of each cutout, as `galaxy-ray infer --tta`")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray evaluate CHECKPOINT SOURCE [--out DIR]``.

    Raises
    ------
    GalaxyRayError
        As :func:`~galaxy_ray.evaluate.core.evaluate_checkpoint`.
    """
    args = build_parser().parse_args(argv)
    runtime.set_verbosity(args.verbose)
    report, written, first_error = evaluate_checkpoint(
        args.checkpoint, args.source, out=args.out, split=args.split, val_fraction=args.val_fraction, tta=args.tta,
        merger_threshold=args.merger_threshold, merger_precision=args.merger_precision, batch_size=args.batch_size,
        format=args.format, label_column=args.label_column, votes=args.votes,
        allow_outside_paths=args.allow_outside_paths)
    print_summary(report, written, first_error)
    return 0
