"""The concentration head with the Dirichlet-multinomial loss recovers known vote probabilities."""

from __future__ import annotations

import numpy as np
import torch

from galaxy_ray.model.losses import vote_count_loss
from galaxy_ray.model.nets import ConcentrationHead
from galaxy_ray.synthetic.votes import decals_probabilities, tree_vote_counts
from galaxy_ray.trees import DECALS_DR5
from galaxy_ray.trees.dirichlet import expected_fractions
from galaxy_ray.trees.fractions import proportion_asked


def test_head_range_and_formula():
    x = torch.tensor([[-50.0, -1.0, 0.0, 2.0, 50.0]], dtype=torch.bfloat16)
    out = ConcentrationHead()(x)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), 1 + 100 / (1 + np.exp(-x.float().numpy())), rtol=1e-6)
    assert out.min() >= 1.0 and out.max() <= 101.0


def test_fitted_concentrations_give_the_true_fractions():
    """One set of logits fitted to 400 galaxies of one kind: its expected fractions are the truth."""
    rng = np.random.default_rng(2)
    truth = decals_probabilities(5, {})  # barred spiral answer probabilities
    counts = np.stack([tree_vote_counts(rng, DECALS_DR5, truth, int(rng.integers(3, 41))) for _ in range(400)])
    logits = torch.zeros(1, 34, requires_grad=True)
    head, loss_fn = ConcentrationHead(), vote_count_loss(DECALS_DR5.slices)
    target = torch.tensor(counts, dtype=torch.float32)
    optimiser = torch.optim.Adam([logits], lr=0.05)
    for _ in range(600):
        optimiser.zero_grad()
        loss = loss_fn(head(logits).expand(len(counts), -1), target)
        loss.backward()
        optimiser.step()
    predicted = expected_fractions(head(logits).detach().numpy(), DECALS_DR5)[0]
    asked = proportion_asked(truth[None], DECALS_DR5)[0]
    for qi, q in enumerate(DECALS_DR5.questions):
        reached = counts[:, q.start:q.stop].sum()
        if asked[qi] < 0.2:  # too few votes to pin down
            continue
        tolerance = 4 * np.sqrt(truth[q.start:q.stop] * (1 - truth[q.start:q.stop]) / reached) + 0.01
        assert (np.abs(predicted[q.start:q.stop] - truth[q.start:q.stop]) < tolerance).all(), q.key
