"""What every Ray Train worker of a run is told: :class:`WorkerConfig`, one typed value.

The driver builds it once from the run's :class:`~galaxy_ray.train.config.TrainConfig`
(whose defaults are the only ones) and hands it to Ray Train as the loop
config ``{"worker": WorkerConfig}`` (Ray Train takes a dict there); the worker
reads attributes, so a missing or misspelt setting fails on the driver, not as
a silent fallback on a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from galaxy_ray.model.spec import ModelSpec

__all__ = ["WORKER_KEY", "WorkerConfig", "worker_config"]

#: The loop config's one key (:func:`galaxy_ray.train.loop.train_loop_per_worker` reads it).
WORKER_KEY = "worker"


@dataclass(frozen=True)
class WorkerConfig:
    """The settings a training worker needs.

    Attributes
    ----------
    spec : ModelSpec
        The model to build (its Preprocess is what the worker augments to).
    weights : str
        Starting weights (``none``, ``imagenet`` or a path); ignored when resuming.
    epochs, freeze_epochs, batch_size, patience, seed, bn_samples : int
        As the ``galaxy-ray train`` options; ``freeze_epochs`` is resolved.
    lr, finetune_lr_scale, weight_decay, label_smoothing : float
        As the options.
    schedule : str
        ``cosine`` or ``plateau``.
    monitor, monitor_mode : str
        The validation metric that picks the best epoch and its direction.
    augment : str
        ``affine`` or ``dihedral`` (``auto`` resolved by the driver).
    run_dir, name : str
        Where ``metrics.csv`` goes; the run's name (in progress lines).
    extra : dict
        Stored in every checkpoint's ``extra`` (task, split, baseline, source).
    class_weights : list of float or None
        Cross-entropy weights in class order (classes task).
    n_train : int or None
        Training rows in the split (the progress total).
    torch_threads : int or None
        Intra-op threads per worker (None: torch's default).
    verbose : bool
        Show Ray's INFO records from the worker.
    progress : str
        ``live`` (a bar on a terminal), ``lines`` (a job log) or ``off``.
    """

    spec: ModelSpec
    weights: str
    epochs: int
    freeze_epochs: int
    batch_size: int
    lr: float
    finetune_lr_scale: float
    weight_decay: float
    schedule: str
    patience: int
    seed: int
    monitor: str
    monitor_mode: str
    augment: str
    run_dir: str
    name: str
    bn_samples: int
    label_smoothing: float
    extra: Mapping[str, Any]
    class_weights: list[float] | None
    n_train: int | None
    torch_threads: int | None
    verbose: bool
    progress: str


def worker_config(loop_config: Mapping[str, Any]) -> WorkerConfig:
    """The :class:`WorkerConfig` in a Ray Train loop config (``{"worker": WorkerConfig}``)."""
    return loop_config[WORKER_KEY]
