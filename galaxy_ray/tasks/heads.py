"""The torch side of the tasks: the GZ2 tree head, the Dirichlet concentration head, the vote-count loss.

Imported only by the task methods that build a head or a loss (and by :mod:`galaxy_ray.model`),
so that :mod:`galaxy_ray.tasks` itself imports no torch.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from galaxy_ray import schema

__all__ = ["GZ2TreeHead", "ConcentrationHead", "MAX_EXTRA_CONCENTRATION", "dirichlet_multinomial_nll",
           "vote_count_loss"]


class GZ2TreeHead(nn.Module):
    """37 logits -> cumulative GZ2 vote fractions consistent with the decision tree.

    Each question's answers go through a softmax (they sum to 1) and are then
    multiplied by the cumulative value of the parent answer, so every
    question's answers sum exactly to the value that leads to it (Dieleman et
    al. 2015, the Kaggle Galaxy Challenge winner).
    """

    def __init__(self) -> None:
        super().__init__()
        # Each question's answers are contiguous in Kaggle order, and questions
        # come parent-first in schema.GZ2_QUESTIONS, so one pass fills the tree.
        self._groups = [(q.indices[0], q.indices[-1] + 1, q.parent) for q in schema.GZ2_QUESTIONS]
        for q, (start, stop, _) in zip(schema.GZ2_QUESTIONS, self._groups):
            assert q.indices == list(range(start, stop))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, 37) logits -> (N, 37) float32 cumulative fractions."""
        logits = logits.float()  # the tree's products run in float32 even under bf16 autocast
        out = [None] * logits.shape[1]
        for start, stop, parent in self._groups:
            probs = torch.softmax(logits[:, start:stop], dim=1)
            if parent is not None:
                probs = probs * out[parent]
            for k in range(start, stop):
                out[k] = probs[:, k - start : k - start + 1]
        return torch.cat(out, dim=1)


#: A :class:`ConcentrationHead` maps logits into (1, 1 + this): Zoobot's range for Dirichlet concentrations.
MAX_EXTRA_CONCENTRATION = 100.0


class ConcentrationHead(nn.Module):
    """Logits (N, K) -> Dirichlet concentrations in (1, 101) for a vote-count model.

    ``1 + 100 * sigmoid(logits)``, Zoobot's activation for the GZ DECaLS models
    (``ScaledSigmoid`` in ``zoobot/pytorch/estimators/efficientnet_custom.py``, Zoobot at commit
    fda17b0f; Walmsley et al. 2022, MNRAS 509, 3966).  Concentrations of at least 1 keep every
    Dirichlet unimodal or flat (never piling up at 0 or 1); the upper bound keeps the most
    confident prediction about as certain as ~100 volunteers, so one galaxy cannot drive the
    likelihood to infinity.  Computed in float32 even under bf16 autocast, as the lgamma of
    the loss needs.
    """

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, K) logits -> (N, K) float32 concentrations."""
        return 1.0 + MAX_EXTRA_CONCENTRATION * torch.sigmoid(logits.float())


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
