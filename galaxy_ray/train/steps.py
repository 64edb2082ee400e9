"""The steps of one epoch on a worker: augmenting collate, training pass, precise BatchNorm, validation."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from ray.data.collate_fn import NumpyBatchCollateFn

from galaxy_ray import tasks
from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.model.nets import unwrap
from galaxy_ray.train.data import KEY, augment_batch
from galaxy_ray.train.progress import EpochProgress

__all__ = ["AugmentingCollate", "ValidationSums", "channels_last", "recompute_batchnorm", "train_one_epoch",
           "validate"]


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
            if len(batch["pixels"]) < 2:  # in training mode BatchNorm cannot take a single image
                continue
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


class AugmentingCollate(NumpyBatchCollateFn):
    """``collate_fn`` of the training iterator: augment (:func:`augment_batch`) and make tensors.

    It runs in Ray Data's prefetch threads on the worker, overlapping the training step.
    """

    def __init__(self, preprocess: PreprocessConfig, seed: int, epoch: int, target_dtype,
                 mode: str = "affine") -> None:
        self.preprocess, self.seed, self.epoch, self.target_dtype = preprocess, seed, epoch, target_dtype
        self.mode = mode

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, Any]:
        import torch

        pixels = augment_batch(batch["pixels"], batch[KEY], self.preprocess, self.seed, self.epoch, self.mode)
        return {"pixels": torch.from_numpy(pixels),
                # a copy: cached batches are read-only views of Ray's object store
                "target": torch.tensor(np.asarray(batch["target"]), dtype=self.target_dtype)}


def channels_last(x, cuda: bool):
    import torch

    return x.contiguous(memory_format=torch.channels_last) if cuda else x


def train_one_epoch(model, shard, loss_fn, opt, collate, *, batch_size: int, shuffle_rows: int | None,
                    shuffle_seed: int, cuda: bool,
                    progress: EpochProgress | None = None) -> tuple[float, float, float]:
    """One pass over the worker's training shard.

    ``progress`` (an :class:`EpochProgress`, or anything with
    ``update(samples, loss)``) hears of every batch, with the mean loss so
    far; the caller closes it.

    Returns
    -------
    (loss_sum, samples, data_wait_seconds)
        The summed (not mean) loss over this worker's samples, and the seconds
        spent waiting for batches.
    """
    import torch

    model.train()
    loss_sum = count = data_wait = 0.0
    t_data = time.perf_counter()
    for batch in shard.iter_torch_batches(batch_size=batch_size, collate_fn=collate, prefetch_batches=2,
                                          local_shuffle_buffer_size=shuffle_rows, local_shuffle_seed=shuffle_seed):
        data_wait += time.perf_counter() - t_data
        if len(batch["target"]) < 2:  # BatchNorm cannot normalise one image (a shard's last batch can be one)
            if progress is not None:
                progress.update(len(batch["target"]), loss_sum / count if count else float("nan"))
            t_data = time.perf_counter()
            continue
        x, y = channels_last(batch["pixels"], cuda), batch["target"]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += float(loss.detach()) * len(x)
        count += len(x)
        if progress is not None:
            progress.update(len(x), loss_sum / count)
        t_data = time.perf_counter()
    return loss_sum, count, data_wait


@dataclass
class ValidationSums:
    """Sums over one worker's validation rows; adding the workers' sums gives the whole split's.

    Attributes
    ----------
    loss, samples : float
        Summed loss and rows.
    squared_error : float
        gz2: squared error summed over rows and all outputs; votes: squared error of the
        expected against the observed conditional fractions, over answered questions.
    answered : float
        votes: the (row, answer) pairs whose question got a vote (the squared error's count).
    hits, support : numpy.ndarray, float64 (K,)
        classes: per true class, rows predicted correctly and rows (empty otherwise).
    """

    loss: float = 0.0
    samples: float = 0.0
    squared_error: float = 0.0
    answered: float = 0.0
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0))
    support: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def to_list(self) -> list[float]:
        """Flat list for one all-reduce (:meth:`from_list` reads it back)."""
        return [self.loss, self.samples, self.squared_error, self.answered, *self.hits.tolist(),
                *self.support.tolist()]

    @classmethod
    def from_list(cls, values: list[float]) -> "ValidationSums":
        k = (len(values) - 4) // 2
        v = np.asarray(values, dtype=np.float64)
        return cls(float(v[0]), float(v[1]), float(v[2]), float(v[3]), v[4:4 + k], v[4 + k:])

    def metrics(self, num_outputs: int, task: str) -> dict[str, float]:
        """``val_rmse`` (gz2), ``val_fraction_rmse`` (votes: expected against observed conditional
        fractions, over answered questions) or ``val_accuracy`` and ``val_balanced_accuracy`` (classes).

        Balanced accuracy is the mean recall over the classes present in
        validation (Brodersen et al. 2010); it does not reward predicting the
        majority class, so an epoch that finds a 2% class scores above one that
        never predicts it.
        """
        return tasks.get(task).validation_metrics(self, num_outputs)


def validate(model, shard, loss_fn, *, batch_size: int, dtypes: Mapping[str, Any], task: str, num_outputs: int,
             cuda: bool) -> ValidationSums:
    """One pass over the worker's validation shard, in eval mode.

    Returns
    -------
    ValidationSums
        This worker's sums: loss and rows, the squared error over all outputs
        (gz2), or per-class hits and support (classes).
    """
    import torch

    model.eval()
    owner, net = tasks.get(task), unwrap(model)
    # per-class counters for the tasks that count hits (classes); K zeros cost nothing to the others
    sums = ValidationSums(hits=torch.zeros(num_outputs, dtype=torch.float64))
    sums.support = torch.zeros_like(sums.hits)
    with torch.no_grad():
        for batch in shard.iter_torch_batches(batch_size=batch_size, dtypes=dtypes):
            x, y = channels_last(batch["pixels"], cuda), batch["target"]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                out = model(x).float()
            sums.loss += float(loss_fn(out, y)) * len(x)
            sums.samples += len(x)
            owner.validation_step(sums, net, out, y)
    sums.hits, sums.support = sums.hits.numpy(), sums.support.numpy()
    return sums
