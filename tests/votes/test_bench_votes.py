"""The scores of ``jobs/bench_votes.py``: weighted RMSE by hand, the binomial noise floor against
simulated volunteers, and the fraction baseline's loss leaving unasked questions out."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from galaxy_ray.trees import DECALS_DR8

BENCH = Path(__file__).resolve().parents[2] / "jobs" / "bench_votes.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_votes", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_weighted_rmse_weights_each_galaxy_by_its_questions_proportion_asked():
    bench, tree = _bench(), DECALS_DR8
    bar = tree.question("bar")
    truth = np.full((2, len(tree.answers)), 0.25)
    pred = truth.copy()
    pred[0, bar.start:bar.stop] += [0.1, -0.1, 0.0]
    pred[1, bar.start:bar.stop] += [0.2, 0.0, -0.2]
    weight = np.ones((2, len(tree.questions)))
    weight[1, [q.key for q in tree.questions].index("bar")] = 0.5
    got = bench.weighted_rmse(pred, truth, weight, tree)
    # bar: (1 x (0.01 + 0.01) + 0.5 x (0.04 + 0.04)) / ((1 + 0.5) x 3 answers)
    assert got["per_question"]["bar"] == pytest.approx(np.sqrt(0.06 / 4.5), abs=1e-4)
    assert got["per_question"]["merging"] == 0.0
    # overall: every answer with its question's weight; 31 other answers of weight 1 in both galaxies
    assert got["overall"] == pytest.approx(np.sqrt(0.06 / (2 * 31 + 1.5 * 3)), abs=1e-4)
    assert got["per_question_mae"]["bar"] == pytest.approx((1 * 0.2 + 0.5 * 0.4) / 4.5, abs=1e-4)


def test_binomial_floor_is_the_rmse_of_observed_fractions_around_the_vote_probability():
    bench, tree = _bench(), DECALS_DR8
    rng = np.random.default_rng(5)
    p, n, galaxies = np.array([0.3, 0.7, 0.0]), 20, 20000
    root = tree.question("smooth-or-featured")
    counts = np.zeros((galaxies, len(tree.answers)))
    counts[:, root.start:root.stop] = rng.multinomial(n, p, size=galaxies)
    weight = np.ones((galaxies, len(tree.questions)))
    got = bench.binomial_floor(counts, weight, tree)
    # the observed fractions scatter around p by p(1-p)/n per answer: (0.21 + 0.21 + 0) / 20 / 3 answers
    expected = np.sqrt(2 * 0.21 / n / 3)
    assert got["per_question"]["smooth-or-featured"] == pytest.approx(expected, rel=0.02)
    observed = counts[:, root.start:root.stop] / n
    assert np.sqrt(((observed - p) ** 2).mean()) == pytest.approx(expected, rel=0.02)  # the simulation agrees
    assert got["per_question"]["bar"] is None  # nobody was asked
    assert got["overall"] == pytest.approx(got["per_question"]["smooth-or-featured"], rel=1e-3)


def test_binomial_floor_leaves_out_questions_with_fewer_than_two_votes():
    bench, tree = _bench(), DECALS_DR8
    counts = np.zeros((1, len(tree.answers)))
    root, edge, merging = (tree.question(k) for k in ("smooth-or-featured", "disk-edge-on", "merging"))
    counts[0, root.start:root.stop] = [3, 1, 0]
    counts[0, edge.start:edge.stop] = [1, 0]
    counts[0, merging.start:merging.stop] = [4, 0, 0, 0]
    got = bench.binomial_floor(counts, np.ones((1, len(tree.questions))), tree)
    # root: p = (0.75, 0.25, 0), p(1-p)/(N-1) = (0.0625, 0.0625, 0); merging: all one answer, 0
    assert got["per_question"]["smooth-or-featured"] == pytest.approx(np.sqrt(0.125 / 3), abs=1e-4)
    assert got["per_question"]["disk-edge-on"] is None
    assert got["overall"] == pytest.approx(np.sqrt(0.125 / (3 + 4)), abs=1e-4)


def test_fraction_loss_ignores_the_answers_of_questions_nobody_reached():
    import torch

    bench, tree = _bench(), DECALS_DR8
    loss = bench.fraction_loss(tree.slices)
    logits = torch.zeros(1, len(tree.answers), requires_grad=True)
    counts = torch.zeros(1, len(tree.answers))
    root = tree.question("smooth-or-featured")
    counts[0, root.start] = 5.0  # five volunteers, all "smooth": only the root question was reached
    observed = torch.zeros(1, len(tree.answers))
    observed[0, root.start] = 1.0
    value = loss(logits, torch.stack([counts, observed], 1))
    # uniform softmax over 3 answers: ((1/3 - 1)^2 + 2 (1/3)^2) / 3 answers
    assert float(value.detach()) == pytest.approx(((2 / 3) ** 2 + 2 / 9) / 3, rel=1e-5)
    value.backward()
    assert torch.all(logits.grad[0, root.stop:] == 0)
    assert torch.any(logits.grad[0, root.start:root.stop] != 0)
