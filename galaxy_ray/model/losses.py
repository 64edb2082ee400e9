"""Training losses: MSE on GZ2 cumulative vote fractions, cross-entropy on classes, and the
Dirichlet-multinomial likelihood of Galaxy Zoo vote counts."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.model.spec import ModelSpec

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
    if spec.task == "gz2":
        return lambda out, target: nn.functional.mse_loss(out.float(), target.float())
    if spec.task == "votes":
        return vote_count_loss(spec.schema_tree.slices)
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


def _membership(slices: Sequence[tuple[int, int]], k: int, like: torch.Tensor) -> torch.Tensor:
    """(K, Q) matrix with 1 where answer k belongs to question q (``slices`` are ``(start, stop)``)."""
    m = torch.zeros(k, len(slices), dtype=like.dtype, device=like.device)
    for q, (start, stop) in enumerate(slices):
        m[start:stop, q] = 1.0
    if not torch.all(m.sum(dim=1) == 1):
        raise ValueError(f"question slices {list(slices)} do not cover the {k} answers exactly once")
    return m


def dirichlet_multinomial_nll(counts: torch.Tensor, concentrations: torch.Tensor,
                              slices: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Negative log-likelihood of vote counts, one Dirichlet-multinomial per question.

    For a question with answers k, votes :math:`n_k` (:math:`N = \\sum_k n_k`) and predicted
    Dirichlet concentrations :math:`\\alpha_k` (:math:`A = \\sum_k \\alpha_k`),

    .. math::

        \\ln P(n \\mid \\alpha) = \\ln\\Gamma(A) + \\ln\\Gamma(N + 1) - \\ln\\Gamma(N + A)
            + \\sum_k \\left[\\ln\\Gamma(n_k + \\alpha_k) - \\ln\\Gamma(\\alpha_k) - \\ln\\Gamma(n_k + 1)\\right],

    the multinomial of the volunteers' votes integrated over a Dirichlet prior on the vote
    probabilities (Walmsley et al. 2022, MNRAS 509, 3966, GZ DECaLS; Zoobot's
    ``zoobot/pytorch/training/losses.py``, which calls pyro's ``DirichletMultinomial``; the
    formula as in scipy's ``scipy.stats.dirichlet_multinomial``).  A question nobody answered
    (:math:`N = 0`) has probability 1 and contributes exactly 0, with zero gradient, so unasked
    questions need no mask.

    Parameters
    ----------
    counts : torch.Tensor
        (N, K) vote counts (non-negative; integers for a likelihood, any float is accepted).
    concentrations : torch.Tensor
        (N, K) Dirichlet concentrations, > 0 (the network's softplus + 1).
    slices : sequence of (start, stop)
        Each question's answer columns (``Schema.slices``), covering the K answers once.

    Returns
    -------
    torch.Tensor
        (N, Q) negative log-likelihood per galaxy and question, in nats, in the dtype of
        ``concentrations`` (float32 at least).
    """
    alpha = concentrations.float() if concentrations.dtype in (torch.float16, torch.bfloat16) else concentrations
    n = counts.to(alpha.dtype)
    member = _membership(slices, alpha.shape[1], alpha)
    total_n, total_a = n @ member, alpha @ member
    per_answer = torch.lgamma(n + alpha) - torch.lgamma(alpha) - torch.lgamma(n + 1.0)
    log_p = torch.lgamma(total_a) + torch.lgamma(total_n + 1.0) - torch.lgamma(total_n + total_a) + per_answer @ member
    return torch.where(total_n > 0, -log_p, torch.zeros_like(log_p))


def vote_count_loss(slices: Sequence[tuple[int, int]]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(concentrations, counts)``: the Dirichlet-multinomial NLL summed over questions, mean over galaxies.

    The sum over questions treats them as independent given the image, as Walmsley et al.
    (2022) do; the mean over the batch keeps the learning rate independent of batch size.
    """
    slices = [(int(a), int(b)) for a, b in slices]
    return lambda out, target: dirichlet_multinomial_nll(target, out, slices).sum(dim=1).mean()
