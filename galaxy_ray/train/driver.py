"""The driver side of ``galaxy-ray train``: plan the run, run the TorchTrainer, publish the run directory.

A run directory (``<storage>/<name>/``, names in :mod:`galaxy_ray.io.layout`)
ends up with the best model, ``metrics.csv``, ``curves.png``, ``config.json``,
the evaluation report and the validation predictions, next to Ray Train's own
checkpoint directories (which a rerun with the same name resumes from).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from galaxy_ray import evaluate, raycompat, runtime, tasks
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import layout, storage
from galaxy_ray.train.cache import CachePlan, cache_datasets, plan_cache, prepared_bytes
from galaxy_ray.train.config import TrainConfig, config_from_args
from galaxy_ray.train.finalize import finalize_run
from galaxy_ray.train.data import (DataSummary, augmentation_for, build_datasets, class_weights,
                                   open_training_source, summarize_labels)
from galaxy_ray.train.loop import divergence, train_loop_per_worker, write_metrics_csv
from galaxy_ray.train.scaling import AUTO, AUTO_LOCAL_CPUS, WorkerLayout, worker_layout
from galaxy_ray.train.worker_config import WORKER_KEY, WorkerConfig

__all__ = ["RunPlan", "main", "make_trainer", "plan_run", "run_training"]


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
    worker: WorkerConfig
    layout: WorkerLayout
    cache: CachePlan


def _worker_config(cfg: TrainConfig, run_dir: str, spec, summary: DataSummary, weights: list[float] | None,
                   layout: WorkerLayout) -> WorkerConfig:
    metric, mode = cfg.monitor
    extra = {"task": cfg.task, "train_mean": summary.train_mean, "class_counts": summary.class_counts,
             "source": cfg.source, "run": cfg.name,
             "split": cfg.split.to_dict()}
    return WorkerConfig(
        spec=spec, weights=cfg.weights, epochs=cfg.epochs, freeze_epochs=cfg.resolved_freeze_epochs(),
        batch_size=cfg.batch_size, lr=cfg.lr, finetune_lr_scale=cfg.finetune_lr_scale,
        weight_decay=cfg.weight_decay, schedule=cfg.schedule, patience=cfg.patience, seed=cfg.seed,
        monitor=metric, monitor_mode=mode, augment=augmentation_for(cfg.augment, cfg.crop_fraction),
        run_dir=run_dir, name=cfg.name, bn_samples=cfg.bn_samples, label_smoothing=cfg.label_smoothing,
        extra={k: v for k, v in extra.items() if v is not None}, class_weights=weights,
        n_train=summary.n_train, torch_threads=layout.threads, verbose=runtime.is_verbose(),
        # a live bar only where a person watches a terminal; a job log gets one line per interval
        progress="live" if sys.stderr.isatty() else "lines",
    )


def say_shared_columns(names: Sequence[str]) -> None:
    """One line when class names share a catalog column name: which columns they get instead."""
    from galaxy_ray.schema import class_columns, shared_class_columns

    groups = shared_class_columns(names)
    if not groups:
        return
    column = dict(zip(names, class_columns(names)))
    told = "; ".join(" and ".join(f"{n!r} -> {column[n]}" for n in g) for g in groups)
    runtime.say(f"galaxy-ray: classes whose names make the same catalog column are kept apart: {told} (the "
                "catalog's column descriptions name each class; if two are one class, merge them in the label column)")


def _refuse_non_finite(net, weights: str) -> None:
    """One line when the ``--weights`` loaded hold NaN or infinite values: they can only train into NaN."""
    import torch

    with torch.no_grad():
        total = sum(p.numel() for p in net.parameters())
        bad = sum(int((~torch.isfinite(p)).sum()) for p in net.parameters())
    if bad:
        raise GalaxyRayError(f"--weights {weights}: {bad} of its {total} loaded weights are NaN or infinite (a "
                             "checkpoint saved after training diverged?); start from another checkpoint, imagenet "
                             "or none")


def plan_run(cfg: TrainConfig) -> RunPlan:
    """Read the source's labels, size the workers, build the model spec and the worker configuration (driver side).

    Raises
    ------
    GalaxyRayError
        Unusable ``--weights``, source or labels, or cutouts packed for another
        model size (one line each), before anything trains.
    """
    from galaxy_ray.data.packed import check_stored_pixels, stored_version
    from galaxy_ray.data.transforms import PreprocessConfig
    from galaxy_ray.model import ModelSpec, build_model

    preprocess = PreprocessConfig(int(cfg.image_size), float(cfg.crop_fraction))
    if cfg.weights not in ("none", "", None):
        # fail fast, before any data is read, with one line (offline, wrong file, wrong arch);
        # the backbone is all that loads from them, so any head will do for the check
        _refuse_non_finite(build_model(ModelSpec.for_gz2(cfg.arch, preprocess), cfg.weights), cfg.weights)
    source = open_training_source(cfg)
    preprocess = stored_version(source, preprocess)  # trained on packed pixels: record the version that made them
    check_stored_pixels(source, preprocess)
    # a local Ray gets room for the workers and for decoding; auto then sizes the run to what the cluster has
    ray = runtime.ensure_ray(min_cpus=AUTO_LOCAL_CPUS if cfg.workers == AUTO else int(cfg.workers) + 2, dashboard=True)
    resources = ray.cluster_resources()
    use_gpu = runtime.resolve_gpu(cfg.gpu, resources.get("GPU", 0))
    layout = worker_layout(cfg.workers, resources, use_gpu)
    run_dir = storage.join(cfg.storage, cfg.name)
    ds = source.dataset()
    task = tasks.get(cfg.task)
    ds, cfg.schema = task.prepare_source(ds, cfg.schema, cfg.source, cfg.label, bool(cfg.label_column))
    summary = summarize_labels(ds, cfg, workers=layout.workers)
    spec = ModelSpec(cfg.arch, task.name, preprocess=preprocess, **task.outputs(cfg, summary))
    class_index = {n: i for i, n in enumerate(summary.class_names)} if summary.class_names else None
    if summary.class_names:
        say_shared_columns(summary.class_names)
    weights = class_weights(cfg, summary) if task.takes_class_weights else None
    n_bn = min(cfg.bn_samples, summary.n_train)
    cache = plan_cache(cfg.cache, prepared_bytes(summary.n_train, summary.n_val, n_bn, preprocess),
                       resources.get("object_store_memory", 0))
    return RunPlan(cfg, run_dir, ds, summary, spec, class_index, weights, use_gpu,
                   _worker_config(cfg, run_dir, spec, summary, weights, layout), layout, cache)


def _storage_args(uri: str) -> tuple[Any, str]:
    fs, path = storage.pyarrow_filesystem(uri)
    return (fs if storage.is_remote(uri) else None), (path if storage.is_remote(uri) else uri)


def make_trainer(plan: RunPlan, train_loop: Callable[[dict], None] | None = None):
    """The :class:`ray.train.torch.TorchTrainer` of a planned run.

    ``train_loop`` replaces :func:`galaxy_ray.train.loop.train_loop_per_worker`
    (a one-argument function of the loop config ``{"worker": WorkerConfig}``; tests and benchmarks wrap it).
    Ray Data keeps the order of rows, so that one worker with one seed sees the
    same batches on every run.  Each worker reserves ``plan.layout.threads``
    CPUs (and a GPU with ``use_gpu``).
    """
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg = plan.cfg
    metric, mode = cfg.monitor
    datasets = build_datasets(plan.ds, cfg, plan.class_index, plan.spec.preprocess, plan.summary.n_train)
    if plan.cache.enabled:
        datasets = cache_datasets(datasets)
    fs, storage_path = _storage_args(cfg.storage)
    return TorchTrainer(
        train_loop or train_loop_per_worker,
        train_loop_config={WORKER_KEY: plan.worker},
        scaling_config=ScalingConfig(num_workers=plan.layout.workers, use_gpu=plan.use_gpu,
                                     resources_per_worker=plan.layout.resources_per_worker()),
        run_config=RunConfig(
            name=cfg.name,
            storage_path=storage_path,
            storage_filesystem=fs,
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints,
                                               checkpoint_score_attribute=metric, checkpoint_score_order=mode),
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            logging_config=raycompat.train_logging_config(runtime.is_verbose()),
        ),
        datasets=datasets,
        dataset_config=DataConfig(execution_options=raycompat.ordered_ingest_options()),
    )


def _best_checkpoint(result, metric: str, mode: str):
    # a NaN metric compares false with everything: min/max would keep whichever came first
    candidates = [(c, m) for c, m in (result.best_checkpoints or [])
                  if m and metric in m and math.isfinite(float(m[metric]))]
    if not candidates:
        return result.checkpoint
    pick = min if mode == "min" else max
    return pick(candidates, key=lambda cm: cm[1][metric])[0]


def _best_value(history: list[dict[str, Any]], metric: str, mode: str) -> float:
    values = [float(r[metric]) for r in history]
    return (min if mode == "min" else max)(values) if values else float("nan")


def _stage_best(best, latest, staged_uri: str, run_dir: str, metric: str) -> dict[str, Any]:
    """Stage the best weights for :func:`finalize_run`; final ``metrics.csv`` and ``curves.png`` from the latest state.

    Not ``model.pt``: that is published once, calibrated, by :func:`galaxy_ray.train.finalize.finalize_run`.
    """
    import torch

    with best.as_directory() as d:
        storage.write_bytes_atomic(staged_uri, Path(d, layout.MODEL).read_bytes())
    with (latest or best).as_directory() as d:
        state = torch.load(Path(d, layout.TRAIN_STATE), map_location="cpu", weights_only=True)
    write_metrics_csv(storage.join(run_dir, layout.METRICS_CSV), state["history"], metric)
    evaluate.plot_curves(state["history"], storage.join(run_dir, layout.CURVES_PNG), metric)
    return state


def _diverged_in_metrics_csv(run_dir: str) -> dict[str, Any] | None:
    """``{"diverged_epoch", "diverged"}`` when the last row of the run's ``metrics.csv`` diverged, else None.

    Ray Train's result carries the metrics of the last *checkpoint*, and a diverged epoch reports
    none (so that it can never be the best); rank 0 still writes its row to ``metrics.csv``.
    """
    import csv
    import io

    try:
        rows = list(csv.DictReader(io.StringIO(storage.read_bytes(storage.join(run_dir, layout.METRICS_CSV)).decode())))
    except FileNotFoundError:
        return None
    if not rows:
        return None
    try:
        last = {k: float(rows[-1][k]) for k in ("train_loss", "val_loss")}
    except (KeyError, TypeError, ValueError):
        return None
    why = divergence(last)
    return {"diverged_epoch": rows[-1].get("epoch"), "diverged": why} if why else None


def refuse_diverged(metrics: dict[str, Any] | None, cfg: TrainConfig, run_dir: str) -> None:
    """Raise one line when the run's last report says it diverged (:func:`galaxy_ray.train.loop.divergence`).

    Nothing is published: the weights of the epochs before are no model either, as the run was
    heading somewhere it could not go; the user changes ``--lr`` or ``--weights`` and trains again.

    Raises
    ------
    GalaxyRayError
        The epoch, what was not finite, the learning rate, and what to do.
    """
    if not metrics or not metrics.get("diverged_epoch"):
        metrics = _diverged_in_metrics_csv(run_dir)
        if metrics is None:
            return
    raise GalaxyRayError(
        f"training run {cfg.name} diverged in epoch {metrics['diverged_epoch']} ({metrics.get('diverged')}) "
        f"at --lr {cfg.lr:g}: no model.pt published; lower --lr (1e-3 is usual), check --weights {cfg.weights} "
        f"for NaN, and train again under another --name (metrics.csv in {run_dir} shows the epochs)")


def _fit(trainer, cfg: TrainConfig, run_dir: str):
    try:
        return trainer.fit()
    except Exception as exc:  # TrainingFailedError and friends: report in one line, the run can resume
        reason = str(exc).strip().splitlines()
        raise GalaxyRayError(f"training run {cfg.name} failed ({type(exc).__name__}: {reason[-1] if reason else ''}); "
                             f"rerun the same command to resume from its last checkpoint in {run_dir}") from None


def run_training(cfg: TrainConfig, train_loop: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train, write the run directory, evaluate; returns a summary dict.

    Raises
    ------
    GalaxyRayError
        A bad option or source, or a run that failed (rerunning resumes it).
    """
    from galaxy_ray.model import output_columns

    t_start = time.perf_counter()
    plan = plan_run(cfg)
    run_dir, summary, metric, mode = plan.run_dir, plan.summary, *cfg.monitor
    print(f"galaxy-ray train: {cfg.name}: {cfg.task} {cfg.arch} on {summary.n_train} training / {summary.n_val} "
          f"validation galaxies from {cfg.source}; {plan.layout.describe()}; run directory {run_dir}", flush=True)
    print(f"galaxy-ray train: {plan.cache.reason}", flush=True)
    result = _fit(make_trainer(plan, train_loop), cfg, run_dir)
    refuse_diverged(result.metrics, cfg, run_dir)
    best = _best_checkpoint(result, metric, mode)
    if best is None:
        raise GalaxyRayError(f"training run {cfg.name} reported no checkpoint; see the log above")
    model_uri, staged_uri = storage.join(run_dir, layout.MODEL), storage.join(run_dir, layout.STAGED_MODEL)
    state = _stage_best(best, result.checkpoint, staged_uri, run_dir, metric)
    history = state["history"]
    config_json = {
        "config": asdict(cfg), "spec": plan.spec.to_dict(), "output_columns": output_columns(plan.spec),
        "data": asdict(summary), "class_weights": plan.class_weights, "use_gpu": plan.use_gpu,
        "workers": asdict(plan.layout),
        "best": {metric: _best_value(history, metric, mode)}, "epochs_done": state["epoch"],
        "early_stopped": bool(state["stopped"]), "resumes": list(state.get("resumes", [])),
        "versions": runtime.package_versions(),
    }
    storage.write_bytes_atomic(storage.join(run_dir, layout.CONFIG_JSON), json.dumps(config_json, indent=2).encode())
    report = finalize_run(run_dir, staged_uri, plan.ds, cfg.label, batch_size=max(cfg.batch_size, 64),
                                   train_mean=summary.train_mean, class_counts=summary.class_counts, source=cfg.source,
                                   merger_threshold=cfg.merger_threshold, merger_precision=cfg.merger_precision,
                                   vote_cut=cfg.merger_vote_cut)
    seconds = time.perf_counter() - t_start
    print(f"galaxy-ray train: done in {seconds:.0f} s; best {metric} {_best_value(history, metric, mode):.4f}; "
          f"{evaluate.headline(report)}; model {model_uri}", flush=True)
    return {"run_dir": run_dir, "model": model_uri, "history": history, "evaluation": report, "seconds": seconds}


def main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray train`` / ``python jobs/train.py``."""
    cfg = config_from_args(argv)
    runtime.set_verbosity(cfg.verbose)
    run_training(cfg)
    return 0
