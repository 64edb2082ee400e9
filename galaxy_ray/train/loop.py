"""The Ray Train worker: resume, train, validate and report every epoch.

Two phases (a frozen backbone while the new head settles, then the whole
network at a lower learning rate), AdamW, a cosine or plateau schedule, early
stopping on the validation metric, bf16 autocast and channels_last on GPUs.
Every epoch reports metrics and a checkpoint to Ray Train; a replaced worker
(or a rerun of the same command) resumes from the last one.

Rank 0 shows the training pass of each epoch as it goes (the worker config's
``progress``: a bar on the driver's terminal, plain lines in a job log, or
nothing) and one summary line per epoch; Ray's own INFO records stay in its
log files unless the run is verbose.
"""

from __future__ import annotations

import csv
import io
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from galaxy_ray import raycompat, runtime
from galaxy_ray.io import layout, storage
from galaxy_ray.train.progress import EpochProgress, epoch_samples
from galaxy_ray.train.worker_config import WorkerConfig, worker_config
from galaxy_ray.train.steps import AugmentingCollate, ValidationSums, recompute_batchnorm, train_one_epoch, validate

__all__ = ["SHUFFLE_BUFFER_BATCHES", "divergence", "recompute_batchnorm", "train_loop_per_worker",
           "train_one_epoch", "validate", "write_metrics_csv"]

#: Columns of ``metrics.csv`` besides the validation metrics (which follow ``val_loss``).
#: Training batches held in each worker's local shuffle buffer.
SHUFFLE_BUFFER_BATCHES = 4


def write_metrics_csv(uri: str, history: list[dict[str, Any]], metric: str) -> None:
    """``metrics.csv``: one row per epoch, ``epoch``, ``phase``, ``train_loss``, ``val_loss``, the validation metrics, ``lr``, ``seconds``.

    ``metric`` (the one that picks the best epoch) comes first after ``val_loss``,
    then any other ``val_*`` metric the rows hold (``val_accuracy`` beside
    ``val_balanced_accuracy`` for classes).
    """
    others = [k for k in (history[0] if history else {}) if k.startswith("val_") and k not in ("val_loss", metric)]
    columns = list(dict.fromkeys(["epoch", "phase", "train_loss", "val_loss", metric, *others, "lr", "seconds"]))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    storage.write_bytes_atomic(uri, buf.getvalue().encode("utf-8"))


def _progress(line: str) -> None:
    """One progress line on the worker's stdout, which Ray streams to the driver and the job log."""
    raycompat.worker_print(line)


def _phase(epoch: int, freeze_epochs: int) -> str:
    return "frozen" if epoch <= freeze_epochs else "full"


def _make_optimizer(net, cfg: WorkerConfig, phase: str, n_epochs: int):
    import torch

    params = [p for p in net.parameters() if p.requires_grad]
    lr = cfg.lr if phase == "frozen" or cfg.freeze_epochs == 0 else cfg.lr * cfg.finetune_lr_scale
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=cfg.monitor_mode, factor=0.3, patience=1)
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


@dataclass
class WorkerRun:
    """What one worker holds across epochs."""

    config: WorkerConfig
    rank: int
    world: int
    device: Any
    spec: Any
    net: Any
    state: dict[str, Any]
    loss_fn: Callable
    shards: dict[str, Any]
    model: Any = None
    opt: Any = None
    sched: Any = None
    phase: str | None = None
    bn_announced: bool = False
    epoch_samples: int | None = None
    saved_optimizer: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def _start(config: WorkerConfig) -> WorkerRun:
    """Seed, build (or restore from Ray Train's checkpoint) the model and the early-stopping state."""
    import ray.train
    import ray.train.torch
    import torch

    from galaxy_ray.model import build_model, loss_function

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if config.torch_threads:  # the driver's choice, which leaves cores to Ray Data's decoding
        torch.set_num_threads(int(config.torch_threads))
    torch.manual_seed(config.seed + rank)
    spec = config.spec
    state: dict[str, Any] = {"epoch": 0, "best": None, "bad_epochs": 0, "history": [], "stopped": False,
                             "resumes": []}
    checkpoint = ray.train.get_checkpoint()
    net = build_model(spec, "none" if checkpoint else config.weights)
    saved_optimizer = None
    if checkpoint:
        with checkpoint.as_directory() as d:
            net.load_state_dict(torch.load(Path(d, layout.MODEL), map_location="cpu", weights_only=True)["model_state"])
            state = torch.load(Path(d, layout.TRAIN_STATE), map_location="cpu", weights_only=True)
        saved_optimizer = {"optimizer": state.pop("optimizer"), "scheduler": state.pop("scheduler")}
        state["resumes"] = list(state.get("resumes", [])) + [state["epoch"]]
        if rank == 0:
            _progress(f"galaxy-ray: resuming {config.name} after epoch {state['epoch']}")
    device = ray.train.torch.get_device()
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    shards = {name: ray.train.get_dataset_shard(name) for name in ("train", "val")}
    shards["bn"] = ray.train.get_dataset_shard("bn") if config.bn_samples else None
    loss_fn = loss_function(spec, config.class_weights, config.label_smoothing)
    return WorkerRun(config, rank, world, device, spec, net, state, loss_fn, shards,
                     epoch_samples=epoch_samples(config.n_train, world), saved_optimizer=saved_optimizer)


def _enter_phase(run: WorkerRun, epoch: int) -> None:
    """Freeze or thaw the backbone when the phase changes; a fresh optimizer (or the resumed one)."""
    import ray.train.torch

    from galaxy_ray.model import set_backbone_trainable

    phase = _phase(epoch, run.config.freeze_epochs)
    if phase == run.phase:
        return
    run.phase = phase
    set_backbone_trainable(run.net, phase == "full")
    # DDP must be rebuilt when the set of trainable parameters changes.
    run.model = ray.train.torch.prepare_model(run.net)
    freeze, epochs = run.config.freeze_epochs, run.config.epochs
    run.opt, run.sched = _make_optimizer(run.net, run.config, phase, freeze if phase == "frozen" else epochs - freeze)
    previous = run.state["history"][-1]["phase"] if run.state["history"] else None
    if run.saved_optimizer is not None and previous == phase:
        run.opt.load_state_dict(run.saved_optimizer["optimizer"])
        run.sched.load_state_dict(run.saved_optimizer["scheduler"])
    run.saved_optimizer = None


def divergence(row: dict[str, Any], net=None) -> str | None:
    """Why an epoch's row (and weights) show the run diverged, or None.

    A non-finite ``train_loss`` or ``val_loss`` (the all-reduced sums, so every rank decides alike),
    or a non-finite weight (DDP keeps the replicas equal): an ``--lr`` of ``1e6`` typed for ``1e-6``,
    or ``--weights`` holding NaN.  Nothing learned after that point can be trusted, so the run stops.
    """
    import math

    bad = [f"{k} {row[k]}" for k in ("train_loss", "val_loss") if not math.isfinite(float(row[k]))]
    if net is not None:
        import torch

        with torch.no_grad():
            broken = sum(int((~torch.isfinite(p)).sum()) for p in net.parameters())
        if broken:
            bad.append(f"{broken} non-finite weights")
    return ", ".join(bad) or None


def _record(run: WorkerRun, row: dict[str, Any]) -> float:
    """Append the epoch's row, update best / patience / early stop, step the schedule; returns the metric."""
    import torch

    state, metric, mode = run.state, run.config.monitor, run.config.monitor_mode
    value = row[metric]
    better = state["best"] is None or (value < state["best"] if mode == "min" else value > state["best"])
    state["best"] = value if better else state["best"]
    state["bad_epochs"] = 0 if better else state["bad_epochs"] + 1
    # Early stopping only judges the whole-network phase: the frozen one is expected to plateau.
    state["stopped"] = row["phase"] == "full" and state["bad_epochs"] >= run.config.patience
    state["epoch"] = row["epoch"]
    state["history"].append(row)
    if isinstance(run.sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        run.sched.step(value)
    else:
        run.sched.step()
    return value


def _report(run: WorkerRun, row: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Rank 0: ``metrics.csv`` and a checkpoint (model + optimizer + state); every rank reports."""
    import ray.train
    import torch

    from galaxy_ray.model import checkpoint_bytes

    if run.rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    config, metric = run.config, run.config.monitor
    if run.state.get("diverged"):  # no checkpoint: a diverged epoch must never become the best one
        _progress(f"galaxy-ray: epoch {row['epoch']} diverged ({run.state['diverged']['why']}); training stopped")
        write_metrics_csv(storage.join(config.run_dir, layout.METRICS_CSV), run.state["history"], metric)
        ray.train.report(metrics, checkpoint=None)
        return
    seconds = max(row["seconds"], 1e-9)
    _progress(f"epoch {row['epoch']}/{config.epochs} [{row['phase']}] train_loss {row['train_loss']:.4f} "
              f"val_loss {row['val_loss']:.4f}" + ("" if metric == "val_loss" else f" {metric} {row[metric]:.4f}")
              + f" lr {row['lr']:.2e} {row['seconds']:.1f} s "
              f"({metrics['samples'] / seconds:.0f} samples/s)" + ("  early stop" if run.state["stopped"] else ""))
    write_metrics_csv(storage.join(config.run_dir, layout.METRICS_CSV), run.state["history"], metric)
    with tempfile.TemporaryDirectory(prefix="galaxy-ray-ckpt-") as tmp:
        extra = {"epoch": row["epoch"], metric: row[metric], **config.extra}
        Path(tmp, layout.MODEL).write_bytes(checkpoint_bytes(run.net, run.spec, extra))
        torch.save(dict(run.state, optimizer=run.opt.state_dict(), scheduler=run.sched.state_dict()),
                   Path(tmp, layout.TRAIN_STATE))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                         checkpoint_dir_name=f"checkpoint_epoch_{row['epoch']:04d}")


def _run_epoch(run: WorkerRun, epoch: int, shuffle_buffer_batches: int) -> None:
    import torch

    config, bs = run.config, run.config.batch_size
    target_dtype = getattr(torch, run.spec.task_of.target_dtype)
    t0, lr = time.perf_counter(), run.opt.param_groups[0]["lr"]
    collate = AugmentingCollate(run.spec.preprocess, config.seed, epoch, target_dtype,
                                config.augment)
    mode = config.progress if run.rank == 0 else "off"
    with EpochProgress(epoch, config.epochs, run.epoch_samples, world=run.world, mode=mode) as progress:
        loss_sum, count, data_wait = train_one_epoch(
            run.model, run.shards["train"], run.loss_fn, run.opt, collate, batch_size=bs,
            shuffle_rows=shuffle_buffer_batches * bs or None, shuffle_seed=config.seed + 1000 * epoch + run.rank,
            cuda=run.cuda, progress=progress)
    run.epoch_samples = run.epoch_samples or progress.done  # without n_train, the first epoch tells the total
    train_seconds = time.perf_counter() - t0
    dtypes = {"pixels": torch.uint8, "target": target_dtype}  # Ray converts only the columns named here
    if run.shards["bn"] is not None:
        bn_images = recompute_batchnorm(run.net, run.shards["bn"], bs, dtypes, run.device)
        if run.rank == 0 and bn_images and not run.bn_announced:
            run.bn_announced = True
            _progress(f"galaxy-ray: BatchNorm statistics re-estimated on {bn_images} un-augmented training "
                      "cutouts before each validation (--bn-samples)")
    sums = validate(run.model, run.shards["val"], run.loss_fn, batch_size=bs, dtypes=dtypes, task=run.spec.task,
                    num_outputs=run.spec.num_outputs, cuda=run.cuda)
    loss_sum, count, *rest = _all_reduce([loss_sum, count, *sums.to_list()], run.device)
    total = ValidationSums.from_list(rest)
    row = {"epoch": epoch, "phase": run.phase, "train_loss": loss_sum / max(count, 1),
           "val_loss": total.loss / max(total.samples, 1), **total.metrics(run.spec.num_outputs, run.spec.task),
           "lr": lr, "seconds": round(time.perf_counter() - t0, 3)}
    why = divergence(row, run.net)
    if why is not None:
        run.state["history"].append(row)
        run.state.update(stopped=True, diverged={"epoch": epoch, "why": why})
    else:
        _record(run, row)
    _report(run, row, dict(row, samples=count, train_seconds=train_seconds, data_wait_seconds=data_wait,
                           stopped=run.state["stopped"], diverged_epoch=epoch if why else 0, diverged=why or ""))


def train_loop_per_worker(config: dict[str, Any], *, on_epoch_start: Callable[[int], None] | None = None,
                          shuffle_buffer_batches: int = SHUFFLE_BUFFER_BATCHES) -> None:
    """The Ray Train worker function: resume, then train, validate and report each remaining epoch.

    Parameters
    ----------
    config : dict
        The loop config of :func:`galaxy_ray.train.driver.make_trainer`, ``{"worker": WorkerConfig}``
        (:class:`galaxy_ray.train.worker_config.WorkerConfig`, built by the driver).
    on_epoch_start : callable, optional
        Called with the epoch number before each epoch (tests use it to end a worker).
    shuffle_buffer_batches : int
        Batches held in the local shuffle buffer (0: no local shuffle).

    Ray Train calls this with ``config`` only; the keyword arguments are for a
    caller that wraps it in its own one-argument loop function.
    """
    config = worker_config(config)
    runtime.quiet_worker_logs(config.verbose)
    run = _start(config)
    for epoch in range(run.state["epoch"] + 1, config.epochs + 1):
        if run.state["stopped"]:
            break
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        _enter_phase(run, epoch)
        _run_epoch(run, epoch, shuffle_buffer_batches)
