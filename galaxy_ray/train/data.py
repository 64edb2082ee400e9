"""The data side of training: one light pass over the labels, and the Ray Datasets the workers consume.

Decoding and resizing run in Ray Data ``map_batches`` tasks; the random
augmentation of training cutouts runs on the worker (:func:`augment_batch`,
from the iterator's prefetch threads), because only the worker knows the epoch:
each row's augmentation is drawn from (seed, epoch, object id), so a run is
reproducible from ``--seed`` and still sees a new view of every galaxy each
epoch, whatever order the rows arrive in.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from galaxy_ray import runtime, tasks
from galaxy_ray.data.labels import column_names
from galaxy_ray.data.sources import identity
from galaxy_ray.data.split import Split
from galaxy_ray.data.transforms import PreprocessConfig, nonempty_batch, ok_rows, prepare_image, preprocess_batch
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.train.config import TrainConfig

__all__ = [
    "DataSummary",
    "augment_batch",
    "augmentation_for",
    "build_datasets",
    "class_weights",
    "default_merger",
    "open_training_source",
    "prepare_training_batch",
    "prepared_batches",
    "row_keys",
    "summarize_labels",
]

#: Column of :func:`prepare_training_batch`'s augmentable output: a stable 63-bit key per object id.
KEY = "key"


@dataclass
class DataSummary:
    """What one light pass over ids and labels tells the driver."""

    n_labelled: int
    n_train: int
    n_val: int
    class_names: list[str] | None = None
    class_counts: list[int] | None = None
    train_mean: list[float] | None = None
    baseline_val_rmse: float | None = None
    baseline_val_accuracy: float | None = None
    n_unlabelled: int = 0


def open_training_source(cfg: TrainConfig):
    """The training source, opened (:class:`galaxy_ray.data.sources.Source`: its format, files and ``dataset()``).

    Raises
    ------
    GalaxyRayError
        A missing path, or content no format reads.
    """
    from galaxy_ray.data.sources import open_source

    return open_source(cfg.source, cfg.format, votes=cfg.votes, allow_outside_paths=cfg.allow_outside_paths)


def summarize_labels(ds, cfg: TrainConfig, workers: int) -> DataSummary:
    """Class list, training mean, baselines and split sizes from ``object_id`` + label only.

    ``workers`` is the number of Ray Train workers (``--workers`` resolved):
    each needs two training rows at least.

    Raises
    ------
    GalaxyRayError
        No label column, no labels, an object_id on several rows, too few rows
        for the workers, labels of the wrong kind.
    """
    # Ray Data logs every execution plan at INFO; for this quick look they only bury the answer.
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(logging.WARNING)
    try:
        return _summarize_labels(ds, cfg, int(workers))
    finally:
        data_logger.setLevel(level)


def _readable_rows(table, source: str):
    """``table`` without the rows its reader could not read (a corrupt shard's row group), said in one line.

    Those rows hold no pixels (their ``error`` names the shard and its rows) and
    are left out of training; counting them as training rows would misstate the
    split, and leaving them out unsaid would hide a damaged source.
    """
    if C.ERROR not in table.columns:
        return table
    failed = ~ok_rows(table[C.ERROR].to_numpy(dtype=object))
    if failed.any():
        from collections import Counter

        from galaxy_ray.errors import error_reason

        errors = table[C.ERROR][failed].astype(str)
        reasons = ", ".join(f"{r}: {k}" for r, k in Counter(map(error_reason, errors)).most_common())
        runtime.say(f"galaxy-ray train: warning: {int(failed.sum())} rows of {source} cannot be read and are left "
                    f"out of training ({reasons}); e.g. {errors.iloc[0]}")
    return table[~failed].drop(columns=[C.ERROR]).reset_index(drop=True)


def _summarize_labels(ds, cfg: TrainConfig, workers: int) -> DataSummary:
    columns = column_names(ds)
    if cfg.label not in columns:
        hint = tasks.get(cfg.task).missing_label_hint()
        raise GalaxyRayError(f"{cfg.source}: no column {cfg.label!r} (columns: {', '.join(columns)}); {hint}")
    read = [C.OBJECT_ID, cfg.label] + ([C.ERROR] if C.ERROR in columns else [])
    table = _readable_rows(ds.select_columns(read).to_pandas(), cfg.source)
    # The split, the checkpoint's validation and a catalog are all keyed by object_id.
    identity.refuse_duplicate_ids(table[C.OBJECT_ID].tolist(), cfg.source)
    present = tasks.get(cfg.task).labelled(table[cfg.label].to_numpy(dtype=object))
    labelled = table[present]
    if labelled.empty:
        raise GalaxyRayError(f"{cfg.source}: no labels in column {cfg.label!r} ({len(table)} rows, all null); "
                             "train on a labelled source")
    is_val = cfg.split.mask(labelled[C.OBJECT_ID], "val")
    summary = DataSummary(len(labelled), int((~is_val).sum()), int(is_val.sum()), n_unlabelled=int((~present).sum()))
    if summary.n_train < workers * 2 or summary.n_val < 1:
        raise GalaxyRayError(
            f"{cfg.source}: {summary.n_train} training and {summary.n_val} validation rows for {workers} workers; "
            "use fewer --workers, another --val-fraction, or more data")
    values = labelled[cfg.label].to_numpy(dtype=object)
    tasks.get(cfg.task).summarize(summary, values, is_val, cfg)
    return summary


def class_weights(cfg: TrainConfig, summary: DataSummary) -> list[float] | None:
    """Per-class loss weights of ``--class-weights``, in class order (None: unweighted).

    ``balanced`` is n / (K n_k), as scikit-learn's; a class absent from training gets 0.
    """
    if not cfg.class_weights:
        return None
    names, counts = summary.class_names, np.asarray(summary.class_counts, dtype=np.float64)
    if cfg.class_weights == "balanced":
        w = np.where(counts > 0, counts.sum() / (len(counts) * np.maximum(counts, 1)), 0.0)
        return w.tolist()
    try:
        w = [float(x) for x in str(cfg.class_weights).split(",")]
    except ValueError:
        raise GalaxyRayError(f"--class-weights {cfg.class_weights!r}: 'balanced' or comma-separated numbers") from None
    if len(w) != len(names):
        raise GalaxyRayError(f"--class-weights: {len(w)} values for {len(names)} classes ({', '.join(names)})")
    return w


def default_merger(cfg: TrainConfig, names: Sequence[str] | None) -> str | None:
    """The output that is the merger probability: ``--merger``, or the task's (GZ2's Class8.6, a merger-like class)."""
    return cfg.merger or tasks.get(cfg.task).default_merger(cfg, names)


# --------------------------------------------------------------------------- per-batch stages


def row_keys(object_ids: Sequence[Any]) -> np.ndarray:
    """A stable 63-bit integer per object id (BLAKE2b), int64 (N,): the per-row part of augmentation seeds."""
    return np.array([int.from_bytes(hashlib.blake2b(str(i).encode("utf-8"), digest_size=8).digest(), "big") >> 1
                     for i in object_ids], dtype=np.int64)


def prepare_training_batch(
    batch: dict[str, np.ndarray],
    *,
    split: Split,
    subset: str,
    label: str,
    task: str,
    class_index: Mapping[str, int] | None,
    preprocess: PreprocessConfig,
    augment: bool,
) -> dict[str, np.ndarray]:
    """Ray Data stage: keep ``subset``'s labelled rows, decode, attach targets.

    Parameters
    ----------
    batch : dict of numpy arrays
        Rows of the cutout table.
    split : Split
        The run's train/validation split; ``subset`` is ``"train"`` or ``"val"``.
    preprocess : PreprocessConfig
        The model's :class:`~galaxy_ray.data.transforms.PreprocessConfig` as a dict.
    augment : bool
        False: ``pixels`` are the model input, uint8 (N, 3, S, S).  True: they are
        decoded and resized but not yet augmented nor cropped, uint8 (N, 3, R, R)
        with R = ``resize_to``, and a ``key`` column (int64, :func:`row_keys`)
        lets :func:`augment_batch` finish them on the worker.

    Returns
    -------
    dict of numpy arrays
        ``pixels``, ``target`` (float32 (N, 37) for gz2, float32 (N, K) vote
        counts for votes, int64 class index for classes) and, with ``augment``, ``key``.  Rows that cannot be decoded are
        left out (a warning names them): inference, not training, is where a bad
        cutout must become a row.
    """
    owner, names = tasks.get(task), (list(class_index) if class_index is not None else None)
    keep = split.mask(batch[C.OBJECT_ID], subset) & owner.labelled(batch[label], names)
    sub = {k: v[keep] for k, v in batch.items() if k in (C.OBJECT_ID, C.IMAGE, C.SOURCE, C.ERROR, label)}
    config = preprocess
    if augment:  # the augmentation rotates before the centre crop: keep the margin for the worker
        config = PreprocessConfig(config.resize_to, 1.0, config.version)
    out = preprocess_batch(sub, config, augment=False)
    ok = ok_rows(out[C.ERROR])
    if not ok.all():
        bad = [e for e in out[C.ERROR] if e is not None]
        runtime.say(f"galaxy-ray: warning: {len(bad)} cutouts left out of training, e.g. {bad[0]}")
    prepared = {"pixels": out["pixels"][ok], "target": owner.targets(out[label][ok], names)}
    if augment:
        prepared[KEY] = row_keys(out[C.OBJECT_ID][ok])
    return prepared


def prepared_batches(batch: dict[str, np.ndarray], **kwargs: Any) -> Iterator[dict[str, np.ndarray]]:
    """Ray Data stage: :func:`prepare_training_batch` of ``batch``, or nothing when no row of it is kept
    (:func:`galaxy_ray.data.transforms.nonempty_batch`)."""
    yield from nonempty_batch(prepare_training_batch(batch, **kwargs), "target")


def augmentation_for(mode: str, crop_fraction: float) -> str:
    """The augmentation ``auto`` means: dihedral when nothing is cropped, else affine.

    A rotation by any angle needs sky to fill the corners it turns in: with
    ``crop_fraction < 1`` the centre crop takes it from the margin; at 1.0 the
    corners fill with black, which the model then learns and never sees in
    inference.  The 8 rotations by multiples of 90 degrees and their mirror
    images lose no pixel.
    """
    if mode == "auto":
        return "dihedral" if float(crop_fraction) >= 1.0 else "affine"
    return mode


def augment_batch(pixels: np.ndarray, keys: Sequence[int], preprocess: PreprocessConfig, seed: int,
                  epoch: int, mode: str = "affine") -> np.ndarray:
    """The training augmentation, one draw per row.

    Parameters
    ----------
    pixels : numpy.ndarray, uint8, shape (N, 3, R, R)
        From :func:`prepare_training_batch` with ``augment=True``.
    keys : sequence of int, length N
        Its ``key`` column.
    preprocess : PreprocessConfig
        The model's preprocessing config.
    seed, epoch : int
        Row i is augmented with ``numpy.random.default_rng([seed, epoch, keys[i]])``:
        reproducible, different every epoch, independent of batch and worker.
    mode : str
        ``affine``: :func:`galaxy_ray.data.transforms.prepare_image`'s random
        rotation by any angle, small shift and zoom, flip and brightness jitter,
        then the centre crop.  ``dihedral``: the centre crop, then one of the 8
        rotations by multiples of 90 degrees and flips (lossless).

    Returns
    -------
    numpy.ndarray
        uint8 (N, 3, S, S), the model input.
    """
    config = preprocess
    out = np.empty((len(pixels), 3, config.image_size, config.image_size), dtype=np.uint8)
    for i, key in enumerate(keys):
        image = np.asarray(pixels[i], dtype=np.float32).transpose(1, 2, 0) / 255.0
        rng = np.random.default_rng([int(seed), int(epoch), int(key)])
        if mode == "dihedral":
            view = prepare_image(image, config).numpy()
            view = np.rot90(view, int(rng.integers(4)), axes=(1, 2))
            out[i] = view[:, :, ::-1] if rng.random() < 0.5 else view
        else:
            out[i] = prepare_image(image, config, rng).numpy()
    return out


def build_datasets(ds, cfg: TrainConfig, class_index: Mapping[str, int] | None, preprocess: PreprocessConfig,
                   n_train: int | None = None) -> dict[str, Any]:
    """The Ray Datasets the workers consume (columns ``pixels``, ``target``).

    ``train`` leaves augmentation to the worker (it also has ``key``); ``val`` is
    the deterministic model input; ``bn`` (when ``cfg.bn_samples`` > 0) is a fixed
    random sample of about ``bn_samples`` training cutouts, prepared like
    validation, that re-estimates the BatchNorm statistics every epoch.
    """
    common = dict(split=cfg.split, label=cfg.label, task=cfg.task, class_index=class_index,
                  preprocess=preprocess)
    columns = [c for c in (C.OBJECT_ID, C.IMAGE, C.SOURCE, C.ERROR, cfg.label) if c in column_names(ds)]
    base = ds.select_columns(columns)

    def prepared(rows, subset: str, augment: bool):
        return rows.map_batches(prepared_batches, fn_kwargs=dict(common, subset=subset, augment=augment),
                                batch_size=64, batch_format="numpy")

    datasets = {"train": prepared(base, "train", True), "val": prepared(base, "val", False)}
    if cfg.bn_samples > 0:
        # Sampling by row (not the first rows) keeps sources sorted by label from biasing the statistics.
        fraction = min(1.0, cfg.bn_samples / max(n_train or cfg.bn_samples, 1))
        datasets["bn"] = prepared(base if fraction >= 1.0 else base.random_sample(fraction, seed=cfg.seed),
                                  "train", False)
    return datasets
