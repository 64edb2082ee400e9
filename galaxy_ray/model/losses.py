"""Training losses: MSE on GZ2 cumulative vote fractions, cross-entropy on classes."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.model.spec import ModelSpec

__all__ = ["loss_function"]


def loss_function(
    spec: ModelSpec, class_weights: Sequence[float] | None = None, label_smoothing: float = 0.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss of a task: ``loss(model(x), target)``.

    gz2: mean squared error between predicted and true cumulative fractions
    (targets float (N, 37)); its square root is the Kaggle Galaxy Challenge
    RMSE.  classes: cross-entropy on class indices (targets int64 (N,)) with
    optional per-class weights and label smoothing.

    Raises
    ------
    GalaxyRayError
        ``label_smoothing`` outside [0, 1), or one weight per class not given.
    """
    if spec.task == "gz2":
        return lambda out, target: nn.functional.mse_loss(out.float(), target.float())
    if not 0.0 <= label_smoothing < 1.0:
        raise GalaxyRayError(f"--label-smoothing {label_smoothing}: must be in [0, 1)")
    weight = None
    if class_weights is not None:
        if len(class_weights) != spec.num_outputs:
            raise GalaxyRayError(f"--class-weights: {len(class_weights)} values for {spec.num_outputs} classes")
        weight = torch.tensor(list(class_weights), dtype=torch.float32)
    ce = nn.CrossEntropyLoss(weight=weight, label_smoothing=float(label_smoothing))

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if ce.weight is not None and ce.weight.device != out.device:
            ce.to(out.device)
        return ce(out.float(), target.long())

    return loss
