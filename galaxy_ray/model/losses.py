"""Training losses: MSE on GZ2 cumulative vote fractions, cross-entropy on classes, and the
Dirichlet-multinomial likelihood of Galaxy Zoo vote counts."""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from galaxy_ray.model.spec import ModelSpec
from galaxy_ray.tasks.heads import dirichlet_multinomial_nll, vote_count_loss

__all__ = ["loss_function", "dirichlet_multinomial_nll", "vote_count_loss"]


def loss_function(
    spec: ModelSpec, class_weights: Sequence[float] | None = None, label_smoothing: float = 0.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss of a task: ``loss(model(x), target)``.

    gz2: mean squared error between predicted and true cumulative fractions
    (targets float (N, 37)); its square root is the Kaggle Galaxy Challenge
    RMSE.  votes: :func:`vote_count_loss` of the predicted concentrations and the
    vote counts (targets float (N, K)).  classes: cross-entropy on class indices (targets int64 (N,)) with
    optional per-class weights and label smoothing.

    Raises
    ------
    GalaxyRayError
        ``label_smoothing`` outside [0, 1), or one weight per class not given.
    """
    return spec.task_of.loss(spec, class_weights, label_smoothing)
