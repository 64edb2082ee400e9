"""The model half of the public API: train, evaluate, infer (catalog scale, on Ray) and predict (here).

torch, torchvision and Ray are imported inside the functions, so that
``import galaxy_ray`` and the catalog functions stay light.
"""

from __future__ import annotations

import io
import json
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from galaxy_ray import schema
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import layout, storage
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.tasks import DEFAULT_TASK

__all__ = ["evaluate", "infer", "predict", "train"]


def train(source: str, *, task: str = DEFAULT_TASK, arch: str = "resnet18", image_size: int = 64, epochs: int = 10,
          batch_size: int = 16, name: str | None = None, storage: str = "runs", workers: int | str = "auto",
          seed: int = 0, **options: Any) -> dict[str, Any]:
    """Fine-tune a network on labelled cutouts with Ray Train (``galaxy-ray train``).

    Starts a local Ray cluster unless one is running (or ``RAY_ADDRESS`` names one).
    Rerunning with the same ``name`` and ``storage`` resumes from the last checkpoint.

    Parameters
    ----------
    source : str
        Labelled cutouts in any format galaxy-ray reads (path or ``s3://``).
    task : {"gz2", "votes", "classes"}
        ``gz2``: the 37 GZ2 vote fractions; ``votes``: the vote counts of a Galaxy Zoo tree
        (``schema="gz2"``, ``"decals-dr5"`` or ``"decals-dr8"`` among ``options``; default the tree
        whose count columns the source has); ``classes``: the classes of a label column.
    arch : str
        A torchvision ResNet name (``resnet18``, ``resnet50``, ...).
    image_size : int
        Model input side in pixels (cutouts are resized to it).
    epochs : int
        Training epochs (early stopping may end sooner).
    batch_size : int
        Images per worker per step.
    name : str, optional
        Run name (default: from task, arch and source).
    storage : str
        Directory (or ``s3://`` prefix) holding the run directory ``<storage>/<name>/``.
    workers : int or "auto"
        Ray Train workers (``auto``: one per GPU, or half the CPUs on CPU clusters).
    seed : int
        Seed of a one-worker run (reproducible ``metrics.csv``).
    **options
        Any other field of :class:`galaxy_ray.train.config.TrainConfig` (the
        ``galaxy-ray train`` flags with ``_`` for ``-``: ``lr``, ``patience``,
        ``merger_precision``, ``crop_fraction``, ``val_fraction``, ...).

    Returns
    -------
    dict
        ``run_dir``, ``model`` (the best checkpoint, ``model.pt``), ``history``
        (one dict per epoch), ``evaluation`` (the validation report) and ``seconds``.

    Raises
    ------
    GalaxyRayError
        An unknown or invalid option, an unreadable source, or a run that failed
        (calling again with the same ``name`` resumes it).
    """
    from galaxy_ray.train.config import TrainConfig, validate
    from galaxy_ray.train.driver import run_training

    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise GalaxyRayError(f"train(): unknown option {unknown[0]!r}; the options are {', '.join(sorted(known))}")
    cfg = TrainConfig(source=str(source), task=task, arch=arch, image_size=image_size, epochs=epochs,
                      batch_size=batch_size, name=name, storage=str(storage), workers=workers, seed=seed, **options)
    return run_training(validate(cfg))


def evaluate(checkpoint: str, source: str, *, split: str = "all", out: str | None = None, tta: bool = False,
             merger_threshold: float | str = "auto", merger_precision: float | None = None, batch_size: int = 64,
             format: str | None = None, label_column: str | None = None) -> dict[str, Any]:
    """Score a checkpoint on labelled cutouts (``galaxy-ray evaluate``), on Ray.

    Parameters
    ----------
    checkpoint : str
        ``model.pt`` or its run directory, path or ``s3://``.
    source : str
        Labelled cutouts (votes for a ``gz2`` model, a label column for ``classes``).
    split : {"all", "train", "val"}
        Score every row, or one side of the checkpoint's own train/validation split.
    out : str, optional
        Directory for ``evaluation.json``, its figures and the predictions
        (default: ``eval-<source name>`` beside the checkpoint).
    tta : bool
        Average over the 8 rotations and flips.
    merger_threshold : "auto" or float
        ``auto``: the threshold training chose on its validation split; a number in [0, 1] overrides it.
    merger_precision : float, optional
        With ``auto``: the lowest stored threshold reaching this validation precision.
    batch_size : int
        Images per forward pass.
    format, label_column : str, optional
        Source format when detection is not enough; the target column.

    Returns
    -------
    dict
        The evaluation report, as written to ``<out>/evaluation.json``: ``gz2``
        (RMSE per answer and overall, against the mean baseline) or ``classes``
        (accuracy, balanced accuracy, confusion matrix), and ``merger``
        (precision, recall, threshold); ``out`` is added.

    Raises
    ------
    GalaxyRayError
        An unreadable checkpoint or source, a source without the label column,
        cutouts packed for another model size, or a bad threshold.
    """
    from galaxy_ray.evaluate.core import evaluate_checkpoint, print_summary

    model_uri = layout.checkpoint_file(str(checkpoint))
    if out is None:
        ckpt_dir = model_uri.rsplit("/", 1)[0] if "/" in model_uri else "."
        out = storage.join(ckpt_dir, f"eval-{schema.slugify(Path(str(source).rstrip('/')).name)}")
    report, written, first_error = evaluate_checkpoint(
        model_uri, source, out=out, split=split, tta=tta, merger_threshold=merger_threshold,
        merger_precision=merger_precision, batch_size=batch_size, format=format, label_column=label_column)
    print_summary(report, written, first_error)  # what `galaxy-ray evaluate` says, as before
    report = json.loads(storage.read_bytes(storage.join(out, layout.EVALUATION_JSON)))  # as stored: plain JSON types
    return {**report, "out": out}


def infer(checkpoint: str, source: str, out: str, *, batch_size: int = 64, tta: bool = False,
          merger_threshold: float | str = "auto", merger_precision: float | None = None, format: str | None = None,
          rows_per_file: int | None = None, overwrite: bool = False, progress: bool = True,
          **options: Any) -> dict[str, Any]:
    """Classify a whole survey into a Parquet catalog with Ray Data (``galaxy-ray infer``).

    Calling again with the same arguments after a crash resumes: files already
    written are skipped.  Open the result with :func:`open_catalog`.

    Parameters
    ----------
    checkpoint : str
        ``model.pt`` or its run directory, path or ``s3://``.
    source : str
        Cutouts in any format galaxy-ray reads; packed shards are fastest.
    out : str
        Catalog directory (or ``s3://`` prefix).
    batch_size : int
        Images per forward pass.
    tta : bool
        Average over the 8 rotations and flips (adds ``p_merger_std`` and ``morphology_prob_std``).
    merger_threshold : "auto" or float
        ``is_merger = p_merger >= merger_threshold``; ``auto``: the checkpoint's validated threshold.
    merger_precision : float, optional
        With ``auto``: the lowest stored threshold reaching this validation precision.
    format : str, optional
        Source format when detection is not enough.
    rows_per_file : int, optional
        Rows per catalog file (a unit of resumable work).
    overwrite : bool
        Replace a catalog in ``out`` made by another model, input or rule instead of refusing.
    progress : bool
        A progress bar (a notebook widget in Jupyter, plain lines in a log).
    **options
        Other keywords of :func:`galaxy_ray.infer.run.run_inference`
        (``num_actors``, ``use_gpu``, ``decode_tasks``, ``source_options``, ``log``).

    Returns
    -------
    dict
        The run's provenance: ``rows`` and ``error_rows`` in the catalog,
        rows and files written by this call, units skipped, ``seconds``.

    Raises
    ------
    GalaxyRayError
        Bad options, a missing checkpoint or source, an ``out`` holding another
        run's catalog (without ``overwrite``), or a stream that ended early.
    """
    from galaxy_ray.infer.options import check_decode_tasks, check_num_actors
    from galaxy_ray.infer.run import run_inference

    for key, check in (("num_actors", check_num_actors), ("decode_tasks", check_decode_tasks)):
        if key in options:
            options[key] = check(options[key], f"infer(): {key}")
    if rows_per_file is not None:
        options["rows_per_file"] = int(rows_per_file)
    return run_inference(str(checkpoint), str(source), str(out), format=format, batch_size=batch_size, tta=tta,
                         merger_threshold=merger_threshold, merger_precision=merger_precision, overwrite=overwrite,
                         progress=progress, **options)
