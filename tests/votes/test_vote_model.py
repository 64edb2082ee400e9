"""The votes task's model side: spec, network outputs, merger score, morphology, truth and metrics.

Expected values are worked by hand on small galaxies, or computed with scipy / numpy
independently of the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import beta

from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.evaluate.metrics import votes_metrics
from galaxy_ray.merger.truth import true_mergers
from galaxy_ray.model import outputs
from galaxy_ray.model.losses import loss_function
from galaxy_ray.model.nets import build_model
from galaxy_ray.model.spec import ModelSpec
from galaxy_ray.trees import DECALS_DR5, DECALS_DR8, GZ2
from galaxy_ray.trees.fractions import observed_fractions

PRE = PreprocessConfig(32)


def _spec(tree: str = "decals-dr8") -> ModelSpec:
    return ModelSpec.for_votes("resnet18", tree, PRE)


def test_spec_round_trip_and_defaults():
    spec = _spec("gz-desi")
    assert spec.tree == "decals-dr8" and spec.merger == "merging_merger"
    assert spec.output_names == list(DECALS_DR8.answer_names) and spec.num_outputs == 34
    again = ModelSpec.from_dict(spec.to_dict())
    assert again == spec
    with pytest.raises(GalaxyRayError, match="needs its tree"):
        ModelSpec("resnet18", "votes", list(DECALS_DR8.answer_names))
    with pytest.raises(GalaxyRayError, match="answers, in order"):
        ModelSpec("resnet18", "votes", list(DECALS_DR8.answer_names)[::-1], PRE, tree="decals-dr8")


def test_network_gives_concentrations_and_their_dirichlet_means():
    torch.manual_seed(0)
    spec = _spec()
    net = build_model(spec).eval()
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        alpha = net(x).numpy().astype(np.float64)
        fractions = net.predict(x).numpy().astype(np.float64)
    assert alpha.shape == (3, 34) and (alpha > 1).all() and (alpha < 101).all()
    for q in DECALS_DR8.questions:  # the Dirichlet mean, by hand, question by question
        a = alpha[:, q.start:q.stop]
        np.testing.assert_allclose(fractions[:, q.start:q.stop], a / a.sum(axis=1, keepdims=True), rtol=1e-5)


def test_loss_of_the_spec_is_the_dirichlet_multinomial_of_the_tree():
    from scipy.stats import dirichlet_multinomial

    spec = _spec("decals-dr5")
    rng = np.random.default_rng(3)
    alpha = rng.uniform(1.0, 20.0, (2, 34))
    counts = np.stack([np.concatenate([rng.multinomial(int(rng.integers(0, 9)), np.ones(len(q.answers)) / len(q.answers))
                                       for q in DECALS_DR5.questions]) for _ in range(2)])
    expected = 0.0
    for row in range(2):
        for q in DECALS_DR5.questions:
            n = counts[row, q.start:q.stop]
            if n.sum():
                expected -= dirichlet_multinomial.logpmf(n, alpha[row, q.start:q.stop], n.sum())
    got = float(loss_function(spec)(torch.tensor(alpha), torch.tensor(counts, dtype=torch.float64)))
    assert got == pytest.approx(expected / 2, rel=1e-9)


def _gz2_row(odd_yes: float, merger: float) -> np.ndarray:
    """GZ2 conditional fractions: a smooth galaxy, ``odd_yes`` saying odd, ``merger`` of those a merger."""
    row = np.zeros(37)
    for q in GZ2.questions:
        row[q.start] = 1.0  # first answer of each question
    odd = GZ2.question("odd")
    row[odd.start:odd.stop] = (odd_yes, 1 - odd_yes)
    feature = GZ2.question("odd_feature")
    row[feature.start:feature.stop] = 0.0
    row[GZ2.answer_index("odd_feature_merger")] = merger
    row[feature.start] = 1 - merger
    return row


def test_merger_score_is_the_cumulative_merger_fraction():
    spec = _spec("gz2")
    assert spec.merger == "odd_feature_merger"
    score = outputs.merger_score(spec, np.stack([_gz2_row(0.5, 0.6), _gz2_row(1.0, 0.3)]))
    np.testing.assert_allclose(score, [0.5 * 0.6, 0.3])  # odd question asked of all: odd_yes x merger
    decals = _spec()
    row = np.full(34, 0.0)
    for q in DECALS_DR8.questions:
        row[q.start:q.stop] = 1.0 / len(q.answers)
    assert outputs.merger_score(decals, row[None])[0] == pytest.approx(0.25)  # merging: asked of all, 4 answers


def test_morphology_is_read_down_the_tree():
    spec = _spec()
    rows = []
    for smooth, edge_yes, spiral_yes in ((0.7, 0.5, 0.5), (0.2, 0.8, 0.1), (0.2, 0.3, 0.9), (0.2, 0.3, 0.4)):
        row = np.zeros(34)
        for q in DECALS_DR8.questions:
            row[q.start:q.stop] = 1.0 / len(q.answers)
        row[0:3] = (smooth, 0.95 - smooth, 0.05)
        row[3:5] = (edge_yes, 1 - edge_yes)
        row[5:7] = (spiral_yes, 1 - spiral_yes)
        rows.append(row)
    labels = outputs.morphology(spec, np.stack(rows))
    assert list(labels) == ["elliptical", "edge_on", "spiral", "disk"]
    prob = outputs.morphology_probability(spec, np.stack(rows), labels)
    # cumulative: smooth 0.7; edge-on 0.75 x 0.8; spiral 0.75 x 0.7 x 0.9; no arms 0.75 x 0.7 x 0.6
    np.testing.assert_allclose(prob, [0.7, 0.75 * 0.8, 0.75 * 0.7 * 0.9, 0.75 * 0.7 * 0.6], rtol=1e-6)


def test_truth_comes_from_the_volunteers_counts():
    spec = _spec()
    counts = np.zeros((3, 34))
    merging = DECALS_DR8.question("merging")
    counts[0, merging.start:merging.stop] = (2, 0, 0, 3)   # 3 of 5 say merger: 0.6
    counts[1, merging.start:merging.stop] = (6, 1, 0, 3)   # 0.3
    counts[2, merging.start:merging.stop] = (0, 0, 0, 0)   # nobody answered: not a merger
    np.testing.assert_array_equal(true_mergers(spec, counts, 0.4), [True, False, False])
    with pytest.raises(GalaxyRayError, match="vote cut"):
        true_mergers(spec, counts, None)


def test_observed_fractions_and_votes_metrics_by_hand():
    tree = DECALS_DR8
    counts = np.zeros((2, 34))
    counts[0, 0:3] = (3, 1, 0)
    counts[1, 0:3] = (0, 2, 2)
    counts[1, 3:5] = (1, 1)
    obs = observed_fractions(counts, tree)
    np.testing.assert_allclose(obs[:, 0:5], [[0.75, 0.25, 0, 0, 0], [0, 0.5, 0.5, 0.5, 0.5]])
    pred = np.zeros((2, 34))
    for q in tree.questions:
        pred[:, q.start:q.stop] = 1.0 / len(q.answers)
    report = votes_metrics(counts, pred, tree)
    third = 1 / 3
    first = [(third - v) ** 2 for v in (0.75, 0.25, 0, 0, 0.5, 0.5)]  # both rows answered question 1
    edge = [(0.5 - 0.5) ** 2] * 2                                      # only row 1 answered question 2
    assert report["per_question"]["smooth-or-featured"]["rows"] == 2
    assert report["per_question"]["smooth-or-featured"]["rmse"] == pytest.approx(np.sqrt(np.mean(first)))
    assert report["per_question"]["disk-edge-on"]["rmse"] == pytest.approx(0.0)
    assert report["per_question"]["bar"]["rows"] == 0 and np.isnan(report["per_question"]["bar"]["rmse"])
    assert report["rmse"] == pytest.approx(np.sqrt(np.mean(first + edge)))


def test_interval_columns_are_the_beta_quantiles():
    from galaxy_ray.catalog import galaxy_zoo
    from galaxy_ray.trees.columns import vote_column_names, vote_columns

    rng = np.random.default_rng(5)
    alpha = rng.uniform(1.0, 60.0, (4, 34))
    fractions = np.concatenate([alpha[:, q.start:q.stop] / alpha[:, q.start:q.stop].sum(axis=1, keepdims=True)
                                for q in DECALS_DR8.questions], axis=1)
    cols = vote_columns(DECALS_DR8, fractions, alpha)
    assert list(cols) == vote_column_names(DECALS_DR8)
    q = DECALS_DR8.question("bar")
    k = q.start  # bar_strong: Beta(alpha_k, A - alpha_k)
    total = alpha[:, q.start:q.stop].sum(axis=1)
    np.testing.assert_allclose(cols["bar_strong_90pc-lower"], beta.ppf(0.05, alpha[:, k], total - alpha[:, k]), rtol=1e-5)
    np.testing.assert_allclose(cols["bar_strong_90pc-upper"], beta.ppf(0.95, alpha[:, k], total - alpha[:, k]), rtol=1e-5)
    edge = fractions[:, DECALS_DR8.answer_index("smooth-or-featured_featured-or-disk")]
    np.testing.assert_allclose(cols["bar_proportion_asked"], edge * fractions[:, DECALS_DR8.answer_index("disk-edge-on_no")],
                               rtol=1e-5)
    d = galaxy_zoo.column_descriptions("votes", DECALS_DR8.answer_names, "merging_merger", tree="decals-dr8")
    assert "Dirichlet" in d["bar_strong_fraction"] and "90%" in d["bar_strong_90pc-lower"]
    assert "not a probability" in d["p_merger"]  # uncalibrated here: the description says it is a vote fraction
