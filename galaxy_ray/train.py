"""Fine-tune a torchvision ResNet on galaxy cutouts with Ray Train (``galaxy-ray train``).

The flow, driver side (:func:`run_training`):

1. read the source as a Ray Dataset (:func:`galaxy_ray.data.sources.read_source`);
   one light pass over ``object_id`` and the label column gives the class list,
   the training mean (the baseline) and the split sizes;
2. split by a stable hash of ``object_id`` (:func:`split_of`): the same
   galaxies are in validation on every run and every machine, so nothing leaks;
3. decode + augment (training) or decode (validation) in CPU ``map_batches``
   stages with :func:`galaxy_ray.data.preprocess.preprocess_batch`;
4. a :class:`ray.train.torch.TorchTrainer` runs :func:`train_loop_per_worker`
   on every worker, each consuming its shard with ``iter_torch_batches``;
5. the best checkpoint becomes ``<storage>/<name>/model.pt`` next to
   ``metrics.csv``, ``curves.png``, ``config.json``, the evaluation report and
   ``validation_predictions.parquet``.

Worker side: two phases (a frozen backbone while the new head settles, then the
whole network at a lower learning rate), AdamW, a cosine or plateau schedule,
early stopping on the validation metric, bf16 autocast and channels_last on
GPUs.  Every epoch reports metrics and a checkpoint; rerunning with the same
``--name`` and ``--storage`` resumes from the last one, and a worker that dies
is replaced and the run recovers by itself (``FailureConfig``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from galaxy_ray import schema
from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C

__all__ = [
    "TrainConfig",
    "build_parser",
    "config_from_args",
    "split_of",
    "split_mask",
    "prepare_training_batch",
    "train_loop_per_worker",
    "recompute_batchnorm",
    "run_training",
    "main",
    "METRICS_COLUMNS",
]

#: Files of our own inside Ray Train checkpoint directories.
TRAIN_STATE_NAME = "train_state.pt"
MODEL_NAME = "model.pt"
SPLIT_SALT = b"galaxy-ray-split-v1"


# --------------------------------------------------------------------------- configuration


@dataclass
class TrainConfig:
    """Every option of a training run (the flags of ``galaxy-ray train``)."""

    source: str = ""
    format: str | None = None
    task: str = "gz2"
    label_column: str | None = None
    arch: str = "resnet18"
    weights: str = "none"
    image_size: int = 64
    crop_fraction: float = 1.0
    epochs: int = 10
    freeze_epochs: int | None = None
    batch_size: int = 64
    lr: float = 1e-3
    finetune_lr_scale: float = 0.1
    weight_decay: float = 0.05
    schedule: str = "cosine"
    patience: int = 5
    workers: int = 2
    use_gpu: str = "auto"
    name: str | None = None
    storage: str = "runs"
    merger: str | None = None
    merger_threshold: float = 0.5
    class_weights: str | None = None
    label_smoothing: float = 0.0
    val_fraction: float = 0.2
    seed: int = 0
    max_failures: int = 3
    keep_checkpoints: int = 3
    bn_samples: int = 1024
    votes: str = "fraction"
    fault_at_epoch: int | None = None  # testing: one worker dies at the start of this epoch, once
    fault_marker: str | None = None

    @property
    def label(self) -> str:
        return self.label_column or (C.VOTES if self.task == "gz2" else C.LABEL)

    @property
    def monitor(self) -> tuple[str, str]:
        """Validation metric that picks the best checkpoint and stops early, and its direction."""
        return ("val_rmse", "min") if self.task == "gz2" else ("val_accuracy", "max")

    def resolved_freeze_epochs(self) -> int:
        if self.freeze_epochs is not None:
            return int(self.freeze_epochs)
        # A randomly initialised backbone has nothing worth protecting from the new head.
        return 0 if self.weights in ("none", "", None) else 1


def _positive(value: Any, flag: str, kind=int, minimum: float = 1) -> Any:
    try:
        v = kind(value)
    except (TypeError, ValueError):
        raise GalaxyRayError(f"{flag} {value!r}: not a number") from None
    if v < minimum:
        raise GalaxyRayError(f"{flag} {value!r}: must be at least {minimum}")
    return v


def _validate(cfg: TrainConfig) -> TrainConfig:
    from galaxy_ray.model import ARCHS, TASKS

    if not cfg.source:
        raise GalaxyRayError("--source is required: a path or s3:// URI of labelled cutouts")
    if cfg.task not in TASKS:
        raise GalaxyRayError(f"--task {cfg.task!r}: unknown task; one of {', '.join(TASKS)}")
    if cfg.arch not in ARCHS:
        raise GalaxyRayError(f"--arch {cfg.arch!r}: unknown architecture; one of {', '.join(ARCHS)}")
    cfg.epochs = _positive(cfg.epochs, "--epochs")
    cfg.batch_size = _positive(cfg.batch_size, "--batch-size")
    cfg.workers = _positive(cfg.workers, "--workers")
    cfg.lr = _positive(cfg.lr, "--lr", float, 1e-12)
    if cfg.freeze_epochs is not None:
        cfg.freeze_epochs = _positive(cfg.freeze_epochs, "--freeze-epochs", int, 0)
    cfg.bn_samples = _positive(cfg.bn_samples, "--bn-samples", int, 0)
    if not 0.0 < float(cfg.val_fraction) < 1.0:
        raise GalaxyRayError(f"--val-fraction {cfg.val_fraction}: must be between 0 and 1")
    if not 0.0 <= float(cfg.merger_threshold) <= 1.0:
        raise GalaxyRayError(f"--merger-threshold {cfg.merger_threshold}: must be between 0 and 1")
    if not 0.0 <= float(cfg.label_smoothing) < 1.0:
        raise GalaxyRayError(f"--label-smoothing {cfg.label_smoothing}: must be in [0, 1)")
    if cfg.schedule not in ("cosine", "plateau"):
        raise GalaxyRayError(f"--schedule {cfg.schedule!r}: one of cosine, plateau")
    if str(cfg.use_gpu).lower() not in ("auto", "true", "false", "yes", "no", "1", "0"):
        raise GalaxyRayError(f"--use-gpu {cfg.use_gpu!r}: one of auto, true, false")
    if cfg.task == "gz2" and cfg.class_weights:
        raise GalaxyRayError("--class-weights applies to --task classes only")
    if cfg.votes not in ("fraction", "debiased"):
        raise GalaxyRayError(f"--votes {cfg.votes!r}: one of fraction, debiased")
    from galaxy_ray.data.preprocess import PreprocessConfig

    PreprocessConfig(int(cfg.image_size), float(cfg.crop_fraction))  # validates both
    if not cfg.name:
        stem = Path(str(cfg.source).rstrip("/")).name.split(".")[0] or "source"
        cfg.name = f"{cfg.task}-{cfg.arch}-{schema.slugify(stem)}"
    if not storage.is_remote(cfg.storage):
        cfg.storage = str(Path(cfg.storage).expanduser().resolve())
    return cfg


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="galaxy-ray train",
        description="Fine-tune a ResNet on labelled galaxy cutouts with Ray Train (all workers of the cluster).",
    )
    p.add_argument("--config", help="YAML or JSON file of the same options (keys as below, - or _); flags override it")
    p.add_argument("--source", help="labelled cutouts: path or s3:// URI of any supported format")
    p.add_argument("--format", help="source format, when detection is not enough")
    p.add_argument("--task", choices=None, help="gz2 (37 vote fractions, default) or classes")
    p.add_argument("--label-column", help="target column (default: votes for gz2, label for classes)")
    p.add_argument("--arch", help="resnet18 (default), resnet34 or resnet50")
    p.add_argument("--weights", help="starting weights: none (default), imagenet, or PATH (state dict / our checkpoint)")
    p.add_argument("--image-size", type=int, help="model input side in pixels (default 64)")
    p.add_argument("--crop-fraction", type=float, help="centre crop kept before resizing (default 1.0)")
    p.add_argument("--epochs", type=int, help="total epochs (default 10)")
    p.add_argument("--freeze-epochs", type=int, help="epochs with a frozen backbone first (default 1 with pretrained weights, else 0)")
    p.add_argument("--batch-size", type=int, help="per-worker batch size (default 64)")
    p.add_argument("--lr", type=float, help="AdamW learning rate (default 1e-3); the whole-network phase after a frozen one uses lr x --finetune-lr-scale")
    p.add_argument("--finetune-lr-scale", type=float, help="(default 0.1)")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0.05)")
    p.add_argument("--schedule", help="cosine (default) or plateau")
    p.add_argument("--patience", type=int, help="early stopping: epochs without improvement (default 5)")
    p.add_argument("--workers", type=int, help="Ray Train workers (default 2)")
    p.add_argument("--use-gpu", help="auto (default: when the cluster has GPUs), true or false")
    p.add_argument("--name", help="run name; rerunning with the same name and storage resumes (default from task, arch, source)")
    p.add_argument("--storage", help="where runs live: local path or s3:// URI (default ./runs)")
    p.add_argument("--merger", help="what the merger probability is: Class8.6 for gz2 (default), a class name for classes")
    p.add_argument("--merger-threshold", type=float, help="p_merger at or above which a galaxy is a merger (default 0.5)")
    p.add_argument("--class-weights", help="classes: 'balanced' or comma-separated weights in class order")
    p.add_argument("--label-smoothing", type=float, help="classes: cross-entropy label smoothing (default 0)")
    p.add_argument("--val-fraction", type=float, help="fraction of galaxies held out for validation (default 0.2)")
    p.add_argument("--seed", type=int, help="random seed for the model and the shuffles (default 0)")
    p.add_argument("--max-failures", type=int, help="worker failures the run recovers from (default 3)")
    p.add_argument("--keep-checkpoints", type=int, help="best checkpoints kept (default 3)")
    p.add_argument("--bn-samples", type=int,
                   help="un-augmented training cutouts that re-estimate the BatchNorm statistics before each "
                        "validation (default 1024; 0 keeps the running averages of augmented batches)")
    p.add_argument("--votes", help="gz2-catalog sources: fraction (default) or debiased")
    p.add_argument("--fault-at-epoch", type=int, help=argparse.SUPPRESS)
    p.add_argument("--fault-marker", help=argparse.SUPPRESS)
    return p


def _load_config_file(path: str) -> dict[str, Any]:
    try:
        text = storage.read_bytes(path).decode("utf-8")
    except FileNotFoundError:
        raise GalaxyRayError(f"--config {path}: no such file") from None
    try:
        if path.endswith(".json"):
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        raise GalaxyRayError(f"--config {path}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise GalaxyRayError(f"--config {path}: expected a mapping of option: value")
    known = {f.name for f in fields(TrainConfig)}
    out = {}
    for key, value in data.items():
        k = str(key).replace("-", "_")
        if k not in known:
            raise GalaxyRayError(f"--config {path}: unknown option {key!r}")
        out[k] = value
    return out


def config_from_args(argv: Sequence[str] | None) -> TrainConfig:
    """Parse flags (over an optional ``--config`` file) into a validated :class:`TrainConfig`."""
    args = build_parser().parse_args(argv)
    values = _load_config_file(args.config) if args.config else {}
    values.update({k: v for k, v in vars(args).items() if v is not None and k != "config"})
    if isinstance(values.get("class_weights"), list):
        values["class_weights"] = ",".join(str(v) for v in values["class_weights"])
    return _validate(TrainConfig(**values))


# --------------------------------------------------------------------------- data


def split_of(object_id: str, val_fraction: float) -> str:
    """``"val"`` or ``"train"`` from a stable hash of the id (same answer on every run and machine)."""
    digest = hashlib.blake2b(str(object_id).encode("utf-8"), digest_size=8, key=SPLIT_SALT).digest()
    return "val" if int.from_bytes(digest, "big") / 2.0**64 < val_fraction else "train"


def split_mask(object_ids: Iterable[Any], val_fraction: float, split: str) -> np.ndarray:
    """Boolean mask of the rows in ``split`` (``train`` or ``val``)."""
    return np.array([split_of(i, val_fraction) == split for i in object_ids], dtype=bool)


def _present(values: np.ndarray) -> np.ndarray:
    """True where a label is set (not None, NaN or pandas' NA)."""
    import pandas as pd

    return np.array([v is not None and not (np.ndim(v) == 0 and pd.isna(v)) for v in values], dtype=bool)


def _targets(values: np.ndarray, task: str, class_index: Mapping[str, int] | None) -> np.ndarray:
    if task == "gz2":
        if not len(values):  # a batch with no row of this split
            return np.zeros((0, len(schema.GZ2_KAGGLE_COLUMNS)), dtype=np.float32)
        return np.stack([np.asarray(v, dtype=np.float32) for v in values]).reshape(len(values), -1)
    return np.array([class_index[str(v)] for v in values], dtype=np.int64)


def prepare_training_batch(
    batch: dict[str, np.ndarray],
    *,
    split: str,
    val_fraction: float,
    label: str,
    task: str,
    class_index: Mapping[str, int] | None,
    preprocess: Mapping[str, Any],
    augment: bool,
) -> dict[str, np.ndarray]:
    """Ray Data stage: keep this split's labelled rows, decode (+augment), attach targets.

    Rows that cannot be decoded are left out of training (a warning names
    them); inference, not training, is where a bad cutout must become a row.
    """
    from galaxy_ray.data.preprocess import preprocess_batch

    keep = split_mask(batch[C.OBJECT_ID], val_fraction, split) & _present(batch[label])
    if class_index is not None:
        keep &= np.array([str(v) in class_index for v in batch[label]], dtype=bool)
    sub = {k: v[keep] for k, v in batch.items() if k in (C.OBJECT_ID, C.IMAGE, C.SOURCE, C.ERROR, label)}
    out = preprocess_batch(sub, preprocess, augment=augment)
    ok = np.array([e is None for e in out[C.ERROR]], dtype=bool)
    if not ok.all():
        bad = [e for e in out[C.ERROR] if e is not None]
        print(f"galaxy-ray: warning: {len(bad)} cutouts left out of training, e.g. {bad[0]}", file=sys.stderr)
    return {"pixels": out["pixels"][ok], "target": _targets(out[label][ok], task, class_index)}


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


def _read_source(cfg: TrainConfig):
    from galaxy_ray.data.sources import read_source

    return read_source(cfg.source, cfg.format, votes=cfg.votes)


def _column_names(ds) -> list[str]:
    sch = ds.schema()
    names = getattr(sch, "names", None)
    return list(names) if names is not None else [f.name for f in sch]


def summarize_labels(ds, cfg: TrainConfig) -> DataSummary:
    """Class list, training mean, baselines and split sizes from ``object_id`` + label only."""
    import logging

    # Ray Data logs every execution plan at INFO; for this quick look they only bury the answer.
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(logging.WARNING)
    try:
        return _summarize_labels(ds, cfg)
    finally:
        data_logger.setLevel(level)


def _summarize_labels(ds, cfg: TrainConfig) -> DataSummary:
    columns = _column_names(ds)
    if cfg.label not in columns:
        hint = "pass --label-column" if cfg.task == "classes" else "is it a labelled GZ2 source? pass --label-column"
        raise GalaxyRayError(f"{cfg.source}: no column {cfg.label!r} (columns: {', '.join(columns)}); {hint}")
    table = ds.select_columns([C.OBJECT_ID, cfg.label]).to_pandas()
    present = _present(table[cfg.label].to_numpy(dtype=object))
    labelled = table[present]
    if labelled.empty:
        raise GalaxyRayError(f"{cfg.source}: no labels in column {cfg.label!r} ({len(table)} rows, all null); "
                             "train on a labelled source")
    is_val = split_mask(labelled[C.OBJECT_ID], cfg.val_fraction, "val")
    summary = DataSummary(len(labelled), int((~is_val).sum()), int(is_val.sum()), n_unlabelled=int((~present).sum()))
    if summary.n_train < cfg.workers * 2 or summary.n_val < 1:
        raise GalaxyRayError(
            f"{cfg.source}: {summary.n_train} training and {summary.n_val} validation rows for {cfg.workers} workers; "
            "use fewer --workers, another --val-fraction, or more data")
    values = labelled[cfg.label].to_numpy(dtype=object)
    if cfg.task == "gz2":
        try:
            votes = np.stack([np.asarray(v, dtype=np.float64) for v in values])
        except (TypeError, ValueError):
            votes = np.zeros((0, 0))
        if votes.ndim != 2 or votes.shape[1] != len(schema.GZ2_KAGGLE_COLUMNS):
            raise GalaxyRayError(f"{cfg.source}: column {cfg.label!r} does not hold 37 GZ2 vote fractions per row; "
                                 "use --task classes for class labels")
        mean = votes[~is_val].mean(axis=0)
        summary.train_mean = mean.tolist()
        summary.baseline_val_rmse = float(np.sqrt(((votes[is_val] - mean) ** 2).mean()))
    else:
        names = sorted({str(v) for v in values})
        if set(names) <= set(schema.GALAXY10_CLASSES):
            names = list(schema.GALAXY10_CLASSES)  # keep the standard order and all ten columns
        if len(names) < 2:
            raise GalaxyRayError(f"{cfg.source}: column {cfg.label!r} has a single class {names}; need at least 2")
        labels = np.array([str(v) for v in values], dtype=object)
        counts = [int((labels[~is_val] == n).sum()) for n in names]
        summary.class_names, summary.class_counts = names, counts
        majority = names[int(np.argmax(counts))]
        summary.baseline_val_accuracy = float((labels[is_val] == majority).mean())
    return summary


def _class_weights(cfg: TrainConfig, summary: DataSummary) -> list[float] | None:
    if not cfg.class_weights:
        return None
    names, counts = summary.class_names, np.asarray(summary.class_counts, dtype=np.float64)
    if cfg.class_weights == "balanced":
        # n / (K * n_k), as scikit-learn's "balanced"; classes absent from training get weight 0
        w = np.where(counts > 0, counts.sum() / (len(counts) * np.maximum(counts, 1)), 0.0)
        return w.tolist()
    try:
        w = [float(x) for x in str(cfg.class_weights).split(",")]
    except ValueError:
        raise GalaxyRayError(f"--class-weights {cfg.class_weights!r}: 'balanced' or comma-separated numbers") from None
    if len(w) != len(names):
        raise GalaxyRayError(f"--class-weights: {len(w)} values for {len(names)} classes ({', '.join(names)})")
    return w


def _default_merger(cfg: TrainConfig, names: list[str] | None) -> str | None:
    if cfg.merger:
        return cfg.merger
    if cfg.task == "gz2":
        return schema.GZ2_KAGGLE_COLUMNS[schema.GZ2_MERGER_INDEX]
    if schema.GALAXY10_MERGER_CLASS in names:
        return schema.GALAXY10_MERGER_CLASS
    return next((n for n in names if "merg" in n.lower()), None)


# --------------------------------------------------------------------------- worker loop


def _write_metrics_csv(uri: str, history: list[dict[str, Any]], metric: str) -> None:
    columns = ["epoch", "phase", "train_loss", "val_loss", metric, "lr", "seconds"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    storage.write_bytes_atomic(uri, buf.getvalue().encode("utf-8"))


METRICS_COLUMNS = ("epoch", "phase", "train_loss", "val_loss", "lr", "seconds")


def _phase(epoch: int, freeze_epochs: int) -> str:
    return "frozen" if epoch <= freeze_epochs else "full"


def _make_optimizer(net, cfg: Mapping[str, Any], phase: str, n_epochs: int):
    import torch

    params = [p for p in net.parameters() if p.requires_grad]
    lr = cfg["lr"] if phase == "frozen" or cfg["freeze_epochs"] == 0 else cfg["lr"] * cfg["finetune_lr_scale"]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg["weight_decay"])
    if cfg["schedule"] == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=cfg["monitor_mode"], factor=0.3, patience=1)
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, n_epochs), eta_min=lr * 0.01)
    return opt, sched


def _all_reduce(values: list[float], device) -> list[float]:
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t.tolist()


def recompute_batchnorm(net, shard, batch_size: int, dtypes: Mapping[str, Any], device) -> int:
    """Re-estimate BatchNorm running statistics on un-augmented training cutouts ("precise BN").

    Running averages gathered in training describe *augmented* batches (rotated,
    zero-filled corners, zoomed, brightness-jittered) taken while the weights
    moved; validation and inference see deterministic cutouts.  That mismatch
    swung validation accuracy by up to 10 points between late epochs.  Each
    worker averages over its share of ``shard`` with
    :func:`torch.optim.swa_utils.update_bn`, then the workers average their
    statistics weighted by images, so every replica (and the checkpoint) holds
    the same ones.

    Returns
    -------
    int
        Cutouts used over all workers (0 leaves the statistics as they were).
    """
    import torch
    import torch.distributed as dist
    from torch.optim.swa_utils import update_bn

    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    cuda = device.type == "cuda"
    seen = 0

    def batches():
        nonlocal seen
        for batch in shard.iter_torch_batches(batch_size=batch_size, dtypes=dtypes, device=device):
            seen += len(batch["pixels"])
            yield batch["pixels"].contiguous(memory_format=torch.channels_last) if cuda else batch["pixels"]

    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        update_bn(batches(), net)
    # one all-reduce of (mean, var of every layer, 1) x images: the last element sums to the images used
    one = torch.ones(1, device=norms[0].running_mean.device)
    stats = torch.cat([*(torch.cat([m.running_mean, m.running_var]) for m in norms), one]).double() * seen
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(stats)
    total = stats[-1].item()
    if total == 0:
        for m, (mean, var) in zip(norms, before):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
        return 0
    stats /= total
    offset = 0
    for m in norms:
        n = m.running_mean.numel()
        m.running_mean.copy_(stats[offset:offset + n])
        m.running_var.copy_(stats[offset + n:offset + 2 * n])
        offset += 2 * n
    return int(total)


def _progress(line: str) -> None:
    """One progress line on the worker's stdout, which Ray streams to the driver and the job log.

    Not ``print``: Ray Train patches it on workers to log *and* echo, which shows every line twice.
    """
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _maybe_inject_fault(cfg: Mapping[str, Any], epoch: int, rank: int, world: int, last_report: float) -> None:
    """Testing aid: the last worker dies once, in the middle of epoch ``fault_at_epoch``.

    It first lets the controller register the previous epoch's report (Ray Train
    polls workers every 2 s; a report made less than that before a crash is lost
    with the worker, and the run then resumes one epoch earlier).
    """
    if cfg.get("fault_at_epoch") != epoch or rank != world - 1 or not cfg.get("fault_marker"):
        return
    marker = Path(cfg["fault_marker"])
    if marker.exists():
        return
    time.sleep(max(0.0, 6.0 - (time.monotonic() - last_report)))
    marker.write_text(f"worker {rank} died in epoch {epoch}\n")
    _progress(f"galaxy-ray: fault injection: worker {rank} exits in epoch {epoch}")
    os._exit(1)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """The Ray Train worker function: resume, train, validate, report every epoch."""
    import ray.train
    import ray.train.torch
    import torch

    from galaxy_ray.model import (ModelSpec, build_model, checkpoint_bytes, loss_function,
                                  set_backbone_trainable)

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    cuda = device.type == "cuda"
    torch.manual_seed(config["seed"] + rank)
    spec = ModelSpec.from_dict(config["spec"])
    metric, mode = config["monitor"], config["monitor_mode"]
    epochs, freeze = config["epochs"], config["freeze_epochs"]

    state: dict[str, Any] = {"epoch": 0, "best": None, "bad_epochs": 0, "history": [], "stopped": False,
                             "resumes": []}
    checkpoint = ray.train.get_checkpoint()
    net = build_model(spec, "none" if checkpoint else config["weights"])
    opt_state = sched_state = None
    if checkpoint:
        with checkpoint.as_directory() as d:
            saved = torch.load(Path(d, MODEL_NAME), map_location="cpu", weights_only=True)
            net.load_state_dict(saved["model_state"])
            state = torch.load(Path(d, TRAIN_STATE_NAME), map_location="cpu", weights_only=True)
        opt_state, sched_state = state.pop("optimizer"), state.pop("scheduler")
        state["resumes"] = list(state.get("resumes", [])) + [state["epoch"]]
        if rank == 0:
            _progress(f"galaxy-ray: resuming {config['name']} after epoch {state['epoch']}")
    if cuda:
        net = net.to(memory_format=torch.channels_last)

    loss_fn = loss_function(spec, config.get("class_weights"), config.get("label_smoothing", 0.0))
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")
    bn_shard = ray.train.get_dataset_shard("bn") if config.get("bn_samples") else None
    target_dtype = torch.float32 if spec.task == "gz2" else torch.int64
    dtypes = {"pixels": torch.float32, "target": target_dtype}
    bs = config["batch_size"]

    model = opt = sched = None
    phase = None
    last_report = time.monotonic()
    bn_announced = False
    for epoch in range(state["epoch"] + 1, epochs + 1):
        if state["stopped"]:
            break
        if _phase(epoch, freeze) != phase:
            phase = _phase(epoch, freeze)
            set_backbone_trainable(net, phase == "full")
            # DDP must be rebuilt when the set of trainable parameters changes.
            model = ray.train.torch.prepare_model(net)
            phase_epochs = freeze if phase == "frozen" else epochs - freeze
            opt, sched = _make_optimizer(net, config, phase, phase_epochs)
            prev = state["history"][-1]["phase"] if state["history"] else None
            if opt_state is not None and prev == phase:
                opt.load_state_dict(opt_state)
                sched.load_state_dict(sched_state)
            opt_state = sched_state = None
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]

        model.train()
        loss_sum = count = data_wait = 0.0
        shuffle = int(config.get("shuffle_buffer_batches", 4)) * bs or None
        t_data = time.perf_counter()
        for batch in train_shard.iter_torch_batches(batch_size=bs, dtypes=dtypes, prefetch_batches=2,
                                                    local_shuffle_buffer_size=shuffle,
                                                    local_shuffle_seed=config["seed"] + 1000 * epoch + rank):
            data_wait += time.perf_counter() - t_data
            x, y = batch["pixels"], batch["target"]
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(x)
            count += len(x)
            _maybe_inject_fault(config, epoch, rank, world, last_report)
            t_data = time.perf_counter()

        train_seconds = time.perf_counter() - t0
        bn_images = recompute_batchnorm(net, bn_shard, bs, dtypes, device) if bn_shard is not None else 0
        if rank == 0 and bn_images and not bn_announced:
            bn_announced = True
            _progress(f"galaxy-ray: BatchNorm statistics re-estimated on {bn_images} un-augmented training "
                      "cutouts before each validation (--bn-samples)")
        model.eval()
        v_loss = v_n = v_sq = v_correct = 0.0
        with torch.no_grad():
            for batch in val_shard.iter_torch_batches(batch_size=bs, dtypes=dtypes):
                x, y = batch["pixels"], batch["target"]
                if cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                    out = model(x).float()
                v_loss += float(loss_fn(out, y)) * len(x)
                v_n += len(x)
                if spec.task == "gz2":
                    v_sq += float(((out - y) ** 2).sum())
                else:
                    v_correct += float((out.argmax(dim=1) == y).sum())
        loss_sum, count, v_loss, v_n, v_sq, v_correct = _all_reduce(
            [loss_sum, count, v_loss, v_n, v_sq, v_correct], device)
        row = {
            "epoch": epoch,
            "phase": phase,
            "train_loss": loss_sum / max(count, 1),
            "val_loss": v_loss / max(v_n, 1),
            "lr": lr,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        if spec.task == "gz2":
            row["val_rmse"] = math.sqrt(v_sq / max(v_n * spec.num_outputs, 1))
        else:
            row["val_accuracy"] = v_correct / max(v_n, 1)

        value = row[metric]
        better = state["best"] is None or (value < state["best"] if mode == "min" else value > state["best"])
        state["best"] = value if better else state["best"]
        state["bad_epochs"] = 0 if better else state["bad_epochs"] + 1
        # Early stopping only judges the whole-network phase: the frozen one is expected to plateau.
        state["stopped"] = phase == "full" and state["bad_epochs"] >= config["patience"]
        state["epoch"] = epoch
        state["history"].append(row)
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(value)
        else:
            sched.step()

        metrics = dict(row, samples=count, train_seconds=train_seconds, data_wait_seconds=data_wait,
                       stopped=state["stopped"])
        if rank == 0:
            _progress(
                f"epoch {epoch}/{epochs} [{phase}] train_loss {row['train_loss']:.4f} val_loss {row['val_loss']:.4f} "
                f"{metric} {value:.4f} lr {lr:.2e} {row['seconds']:.1f} s ({count / max(row['seconds'], 1e-9):.0f} samples/s)"
                + ("  early stop" if state["stopped"] else "")
            )
            _write_metrics_csv(storage.join(config["run_dir"], "metrics.csv"), state["history"], metric)
            with tempfile.TemporaryDirectory(prefix="galaxy-ray-ckpt-") as tmp:
                extra = {"epoch": epoch, metric: value, **config["extra"]}
                Path(tmp, MODEL_NAME).write_bytes(checkpoint_bytes(net, spec, extra))
                torch.save(dict(state, optimizer=opt.state_dict(), scheduler=sched.state_dict()),
                           Path(tmp, TRAIN_STATE_NAME))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                                 checkpoint_dir_name=f"checkpoint_epoch_{epoch:04d}")
        else:
            ray.train.report(metrics, checkpoint=None)
        last_report = time.monotonic()


# --------------------------------------------------------------------------- driver


def ensure_ray(workers: int = 1) -> None:
    """Connect to the cluster in ``RAY_ADDRESS`` (set by ``ray job submit``), else start a local Ray.

    A local Ray gets at least ``workers + 2`` logical CPUs, so that the Ray Data
    tasks decoding cutouts can run beside the training workers on a small machine.
    It runs the dashboard on loopback: progress can be watched there, and Ray
    Train's placement-group cleaner asks its state API whether the run is alive
    (without it, the cleaner logs a warning every second of the run).
    """
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return
    context = ray.init(address="local", num_cpus=max(os.cpu_count() or 1, workers + 2), include_dashboard=True,
                       dashboard_host="127.0.0.1", log_to_driver=True)
    if context.dashboard_url:
        _progress(f"galaxy-ray: local Ray dashboard at http://{context.dashboard_url}")


def _use_gpu(cfg: TrainConfig) -> bool:
    import ray

    flag = str(cfg.use_gpu).lower()
    if flag == "auto":
        return ray.cluster_resources().get("GPU", 0) >= 1
    return flag in ("true", "yes", "1")


def _storage_args(uri: str) -> tuple[Any, str]:
    fs, path = storage.pyarrow_filesystem(uri)
    return (fs if storage.is_remote(uri) else None), (path if storage.is_remote(uri) else uri)


def build_datasets(ds, cfg: TrainConfig, class_index: Mapping[str, int] | None, preprocess: Mapping[str, Any],
                   n_train: int | None = None) -> dict[str, Any]:
    """The Ray Datasets of tensors (``pixels``, ``target``) the workers consume.

    ``train`` is augmented, ``val`` is not; ``bn`` (when ``cfg.bn_samples`` > 0)
    is a fixed random sample of about ``bn_samples`` training cutouts, prepared
    like validation, that re-estimates the BatchNorm statistics every epoch.
    """
    common = dict(val_fraction=cfg.val_fraction, label=cfg.label, task=cfg.task,
                  class_index=class_index, preprocess=dict(preprocess))
    columns = [c for c in (C.OBJECT_ID, C.IMAGE, C.SOURCE, C.ERROR, cfg.label) if c in _column_names(ds)]
    base = ds.select_columns(columns)

    def prepared(rows, split: str, augment: bool):
        return rows.map_batches(prepare_training_batch, fn_kwargs=dict(common, split=split, augment=augment),
                                batch_size=64, batch_format="numpy")

    datasets = {"train": prepared(base, "train", True), "val": prepared(base, "val", False)}
    if cfg.bn_samples > 0:
        # Sampling by row (not the first rows) keeps sources sorted by label from biasing the statistics.
        fraction = min(1.0, cfg.bn_samples / max(n_train or cfg.bn_samples, 1))
        datasets["bn"] = prepared(base if fraction >= 1.0 else base.random_sample(fraction, seed=cfg.seed),
                                  "train", False)
    return datasets


@dataclass
class RunPlan:
    """Everything the driver decides before training starts."""

    cfg: TrainConfig
    run_dir: str
    ds: Any
    summary: DataSummary
    spec: Any
    class_index: dict[str, int] | None
    class_weights: list[float] | None
    use_gpu: bool
    loop_config: dict[str, Any]


def plan_run(cfg: TrainConfig) -> RunPlan:
    """Read the source's labels, build the model spec and the worker configuration (driver side)."""
    from galaxy_ray.model import ModelSpec, build_model
    from galaxy_ray.data.preprocess import PreprocessConfig

    preprocess = PreprocessConfig(int(cfg.image_size), float(cfg.crop_fraction)).to_dict()
    if cfg.weights not in ("none", "", None):
        # fail fast, before any data is read, with one line (offline, wrong file, wrong arch);
        # the backbone is all that loads from them, so any head will do for the check
        build_model(ModelSpec.for_gz2(cfg.arch, preprocess), cfg.weights)
    ensure_ray(cfg.workers)
    run_dir = storage.join(cfg.storage, cfg.name)
    ds = _read_source(cfg)
    summary = summarize_labels(ds, cfg)
    if cfg.task == "gz2":
        spec = ModelSpec.for_gz2(cfg.arch, preprocess, cfg.merger)
        class_index = None
    else:
        spec = ModelSpec(cfg.arch, "classes", summary.class_names, preprocess, _default_merger(cfg, summary.class_names))
        class_index = {n: i for i, n in enumerate(summary.class_names)}
    class_weights = _class_weights(cfg, summary) if cfg.task == "classes" else None
    metric, mode = cfg.monitor
    extra = {"task": cfg.task, "train_mean": summary.train_mean, "class_counts": summary.class_counts,
             "merger_threshold": float(cfg.merger_threshold), "source": cfg.source, "run": cfg.name}
    loop_config = {
        "spec": spec.to_dict(), "weights": cfg.weights, "epochs": cfg.epochs,
        "freeze_epochs": cfg.resolved_freeze_epochs(), "batch_size": cfg.batch_size, "lr": cfg.lr,
        "finetune_lr_scale": cfg.finetune_lr_scale, "weight_decay": cfg.weight_decay, "schedule": cfg.schedule,
        "patience": cfg.patience, "seed": cfg.seed, "monitor": metric, "monitor_mode": mode,
        "class_weights": class_weights, "label_smoothing": cfg.label_smoothing, "run_dir": run_dir,
        "name": cfg.name, "extra": {k: v for k, v in extra.items() if v is not None},
        "fault_at_epoch": cfg.fault_at_epoch, "fault_marker": cfg.fault_marker, "bn_samples": cfg.bn_samples,
    }
    return RunPlan(cfg, run_dir, ds, summary, spec, class_index, class_weights, _use_gpu(cfg), loop_config)


def make_trainer(plan: RunPlan):
    """The :class:`ray.train.torch.TorchTrainer` of a planned run."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg = plan.cfg
    metric, mode = cfg.monitor
    datasets = build_datasets(plan.ds, cfg, plan.class_index, plan.spec.preprocess, plan.summary.n_train)
    fs, storage_path = _storage_args(cfg.storage)
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=plan.loop_config,
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=plan.use_gpu),
        run_config=RunConfig(
            name=cfg.name,
            storage_path=storage_path,
            storage_filesystem=fs,
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints,
                                               checkpoint_score_attribute=metric, checkpoint_score_order=mode),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
        ),
        datasets=datasets,
    )


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    """Train, write the run directory, evaluate; returns a summary dict."""
    from galaxy_ray import evaluate
    from galaxy_ray.model import output_columns

    t_start = time.perf_counter()
    plan = plan_run(cfg)
    run_dir, summary, spec, use_gpu = plan.run_dir, plan.summary, plan.spec, plan.use_gpu
    class_weights = plan.class_weights
    metric, mode = cfg.monitor
    print(f"galaxy-ray train: {cfg.name}: {cfg.task} {cfg.arch} on {summary.n_train} training / {summary.n_val} "
          f"validation galaxies from {cfg.source}; {cfg.workers} workers ({'GPU' if use_gpu else 'CPU'}); "
          f"run directory {run_dir}", flush=True)
    trainer = make_trainer(plan)
    try:
        result = trainer.fit()
    except Exception as exc:  # TrainingFailedError and friends: report in one line, the run can resume
        reason = str(exc).strip().splitlines()
        raise GalaxyRayError(f"training run {cfg.name} failed ({type(exc).__name__}: {reason[-1] if reason else ''}); "
                             f"rerun the same command to resume from its last checkpoint in {run_dir}") from None
    best = _best_checkpoint(result, metric, mode)
    if best is None:
        raise GalaxyRayError(f"training run {cfg.name} reported no checkpoint; see the log above")
    model_uri = storage.join(run_dir, MODEL_NAME)
    state = _publish(best, result.checkpoint, model_uri, run_dir, metric)
    history = state["history"]
    config_json = {
        "config": asdict(cfg), "spec": spec.to_dict(), "output_columns": output_columns(spec),
        "data": asdict(summary), "class_weights": class_weights, "use_gpu": use_gpu,
        "best": {metric: _best_value(history, metric, mode)}, "epochs_done": state["epoch"],
        "early_stopped": bool(state["stopped"]), "resumes": list(state.get("resumes", [])), "versions": _versions(),
    }
    storage.write_bytes_atomic(storage.join(run_dir, "config.json"), json.dumps(config_json, indent=2).encode())
    report = evaluate.evaluate_run(run_dir, plan.ds, cfg, summary)
    seconds = time.perf_counter() - t_start
    headline = evaluate.headline(report)
    print(f"galaxy-ray train: done in {seconds:.0f} s; best {metric} {_best_value(history, metric, mode):.4f}; "
          f"{headline}; model {model_uri}", flush=True)
    return {"run_dir": run_dir, "model": model_uri, "history": history, "evaluation": report, "seconds": seconds}


def _best_checkpoint(result, metric: str, mode: str):
    candidates = [(c, m) for c, m in (result.best_checkpoints or []) if m and metric in m]
    if not candidates:
        return result.checkpoint
    pick = min if mode == "min" else max
    return pick(candidates, key=lambda cm: cm[1][metric])[0]


def _best_value(history: list[dict[str, Any]], metric: str, mode: str) -> float:
    values = [float(r[metric]) for r in history]
    return (min if mode == "min" else max)(values) if values else float("nan")


def _publish(best, latest, model_uri: str, run_dir: str, metric: str) -> dict[str, Any]:
    """Copy the best model to ``model.pt``; final ``metrics.csv`` and ``curves.png`` from the latest state."""
    import torch

    from galaxy_ray import evaluate

    with best.as_directory() as d:
        storage.write_bytes_atomic(model_uri, Path(d, MODEL_NAME).read_bytes())
    with (latest or best).as_directory() as d:
        state = torch.load(Path(d, TRAIN_STATE_NAME), map_location="cpu", weights_only=True)
    history = state["history"]
    _write_metrics_csv(storage.join(run_dir, "metrics.csv"), history, metric)
    evaluate.plot_curves(history, storage.join(run_dir, "curves.png"), metric)
    return state


def _versions() -> dict[str, str]:
    import ray
    import torch

    from galaxy_ray import __version__
    from galaxy_ray.tv import torchvision

    return {"galaxy_ray": __version__, "ray": ray.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "python": sys.version.split()[0]}


def main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray train`` / ``python jobs/train.py``."""
    cfg = config_from_args(argv)
    run_training(cfg)
    return 0
