"""The Dirichlet-multinomial loss against scipy, and fractions/intervals against Monte-Carlo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import dirichlet_multinomial

from galaxy_ray.model.losses import dirichlet_multinomial_nll, vote_count_loss
from galaxy_ray.trees import DECALS_DR5, GZ2
from galaxy_ray.trees.dirichlet import expected_fractions, fraction_intervals


def _random_case(rng, schema, n_galaxies):
    """Concentrations in [0.3, 60] and counts with totals 0..40 per question (about a third zero)."""
    alpha = rng.uniform(0.3, 60.0, size=(n_galaxies, len(schema.answers)))
    counts = np.zeros_like(alpha)
    for start, stop in schema.slices:
        total = rng.integers(0, 41, size=n_galaxies) * (rng.random(n_galaxies) > 0.33)
        p = rng.dirichlet(np.ones(stop - start), size=n_galaxies)
        counts[:, start:stop] = [rng.multinomial(t, pp) for t, pp in zip(total, p)]
    return alpha, counts


@pytest.mark.parametrize("schema", [DECALS_DR5, GZ2], ids=lambda s: s.name)
def test_nll_equals_scipy_logpmf(schema):
    rng = np.random.default_rng(22)
    alpha, counts = _random_case(rng, schema, 64)
    got = dirichlet_multinomial_nll(torch.tensor(counts), torch.tensor(alpha), schema.slices).numpy()
    assert got.shape == (64, len(schema.questions))
    expected = np.zeros_like(got)
    for q, (start, stop) in enumerate(schema.slices):
        for i in range(64):
            x = counts[i, start:stop]
            expected[i, q] = -dirichlet_multinomial.logpmf(x, alpha[i, start:stop], int(x.sum()))
    totals = np.stack([counts[:, a:b].sum(axis=1) for a, b in schema.slices], axis=1)
    assert (totals == 0).mean() > 0.2 and (totals > 0).mean() > 0.5  # both kinds of question occur
    assert (got[totals == 0] == 0).all() and (got[totals > 0] > 0).all()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
    loss = vote_count_loss(schema.slices)(torch.tensor(alpha), torch.tensor(counts))
    assert loss.item() == pytest.approx(expected.sum(axis=1).mean(), rel=1e-12)


def test_float32_nll_is_close_to_scipy():
    rng = np.random.default_rng(5)
    alpha, counts = _random_case(rng, DECALS_DR5, 32)
    got = dirichlet_multinomial_nll(torch.tensor(counts, dtype=torch.float32),
                                    torch.tensor(alpha, dtype=torch.float32), DECALS_DR5.slices)
    ref = dirichlet_multinomial_nll(torch.tensor(counts), torch.tensor(alpha), DECALS_DR5.slices)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=2e-3)


def test_unanswered_question_contributes_nothing():
    alpha = torch.tensor([[2.0, 3.0, 4.0, 1.5, 7.0]], dtype=torch.float64, requires_grad=True)
    counts = torch.tensor([[3.0, 0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)  # question 2 unasked
    nll = dirichlet_multinomial_nll(counts, alpha, [(0, 3), (3, 5)])
    assert nll[0, 1].item() == 0.0
    assert nll[0, 0].item() == pytest.approx(-dirichlet_multinomial.logpmf([3, 0, 1], [2.0, 3.0, 4.0], 4))
    nll.sum().backward()
    assert alpha.grad[0, 3:].tolist() == [0.0, 0.0]
    assert (alpha.grad[0, :3] != 0).all()


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    alpha, counts = _random_case(rng, DECALS_DR5, 4)
    a = torch.tensor(alpha, requires_grad=True)
    fn = lambda x: dirichlet_multinomial_nll(torch.tensor(counts), x, DECALS_DR5.slices)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (a,), eps=1e-6, atol=1e-5)


def test_slices_must_cover_the_answers():
    with pytest.raises(ValueError, match="do not cover the 5 answers"):
        dirichlet_multinomial_nll(torch.ones(1, 5), torch.ones(1, 5), [(0, 3)])


def test_fractions_and_intervals_match_monte_carlo():
    rng = np.random.default_rng(7)
    alpha = np.array([[1.5, 8.0, 1.1, 3.0, 20.0] + [1.0] * 29,
                      [40.0, 2.0, 1.2, 1.0, 1.0] + list(rng.uniform(1, 30, 29))])
    mean = expected_fractions(alpha, DECALS_DR5)
    lower, upper = fraction_intervals(alpha, DECALS_DR5, width=0.9)
    assert mean.shape == lower.shape == upper.shape == (2, 34)
    for i in range(2):
        for start, stop in DECALS_DR5.slices:
            draws = rng.dirichlet(alpha[i, start:stop], size=200_000)
            np.testing.assert_allclose(mean[i, start:stop], draws.mean(axis=0), atol=3e-3)
            np.testing.assert_allclose(lower[i, start:stop], np.quantile(draws, 0.05, axis=0), atol=6e-3)
            np.testing.assert_allclose(upper[i, start:stop], np.quantile(draws, 0.95, axis=0), atol=6e-3)
            inside = ((draws >= lower[i, start:stop]) & (draws <= upper[i, start:stop])).mean(axis=0)
            np.testing.assert_allclose(inside, 0.9, atol=4e-3)
    np.testing.assert_allclose(mean[:, :3].sum(axis=1), 1.0)
    assert mean[0, 0] == pytest.approx(1.5 / 10.6)


def test_interval_width_is_checked():
    with pytest.raises(ValueError, match="must be in"):
        fraction_intervals(np.ones((1, 34)), DECALS_DR5, width=1.0)
