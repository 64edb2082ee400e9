"""Conditional fractions, proportion asked and the friendly rule on a hand-worked galaxy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galaxy_ray import schema as gz2
from galaxy_ray.trees import DECALS_DR8, GZ2
from galaxy_ray.trees.fractions import fraction_table, friendly_table, proportion_asked, to_conditional, to_cumulative

# One featured, face-on, spiral galaxy: conditional fractions per question (DECaLS answer order).
HAND = {
    "smooth-or-featured": [0.2, 0.7, 0.1],
    "disk-edge-on": [0.25, 0.75],
    "has-spiral-arms": [0.8, 0.2],
    "bar": [0.1, 0.3, 0.6],
    "bulge-size": [0.1, 0.2, 0.3, 0.3, 0.1],
    "how-rounded": [0.5, 0.4, 0.1],
    "edge-on-bulge": [0.3, 0.3, 0.4],
    "spiral-winding": [0.2, 0.5, 0.3],
    "spiral-arm-count": [0.1, 0.5, 0.2, 0.1, 0.05, 0.05],
    "merging": [0.7, 0.2, 0.05, 0.05],
}
# Worked by hand: the product of the fractions of the answers leading to each question.
HAND_ASKED = {
    "smooth-or-featured": 1.0, "disk-edge-on": 0.7, "has-spiral-arms": 0.7 * 0.75, "bar": 0.525,
    "bulge-size": 0.525, "how-rounded": 0.2, "edge-on-bulge": 0.7 * 0.25,
    "spiral-winding": 0.525 * 0.8, "spiral-arm-count": 0.42, "merging": 1.0,
}
CONDITIONAL = np.array([[v for q in HAND for v in HAND[q]]])


def test_hand_worked_galaxy_columns():
    table = pd.DataFrame(fraction_table(CONDITIONAL, DECALS_DR8))
    assert list(table.columns[:3]) == ["smooth-or-featured_smooth_fraction",
                                       "smooth-or-featured_featured-or-disk_fraction",
                                       "smooth-or-featured_artifact_fraction"]
    for q, asked in HAND_ASKED.items():
        assert table[f"{q}_proportion_asked"][0] == pytest.approx(asked, rel=1e-6), q
    assert table["bar_weak_fraction"][0] == pytest.approx(0.3)
    for q in DECALS_DR8.questions:  # conditional fractions of each question sum to 1
        assert sum(table[f"{a.name}_fraction"][0] for a in q.answers) == pytest.approx(1.0, rel=1e-6)
    cumulative = to_cumulative(CONDITIONAL, DECALS_DR8)
    assert cumulative[0, DECALS_DR8.answer_index("spiral-winding_medium")] == pytest.approx(0.5 * 0.42)
    np.testing.assert_allclose(to_conditional(cumulative, DECALS_DR8), CONDITIONAL)


def test_friendly_rule_masks_questions_most_volunteers_never_reached():
    friendly = friendly_table(CONDITIONAL, DECALS_DR8)
    shown = {q for q, asked in HAND_ASKED.items() if asked >= 0.5}
    assert shown == {"smooth-or-featured", "disk-edge-on", "has-spiral-arms", "bar", "bulge-size", "merging"}
    for q in DECALS_DR8.questions:
        values = np.array([friendly[f"{a.name}_fraction"][0] for a in q.answers])
        if q.key in shown:
            np.testing.assert_allclose(values, HAND[q.key], rtol=1e-6)
        else:  # how-rounded (0.2), edge-on-bulge (0.175), spiral winding and arm count (0.42)
            assert np.isnan(values).all(), q.key
    # exactly at the threshold is shown (Zoobot keeps prob_of_asked >= 0.5)
    edge = CONDITIONAL.copy()
    edge[0, :3] = [0.5, 0.5, 0.0]
    edge[0, 3:5] = [0.0, 1.0]
    assert not np.isnan(friendly_table(edge, DECALS_DR8)["bar_strong_fraction"][0])


def test_intervals_follow_the_fractions():
    lower, upper = CONDITIONAL * 0.5, np.minimum(CONDITIONAL * 1.5, 1.0)
    table = fraction_table(CONDITIONAL, DECALS_DR8, lower, upper)
    assert len(table) == 34 + 10 + 2 * 34
    assert table["merging_merger_90pc-lower"][0] == pytest.approx(0.025)
    assert table["merging_merger_90pc-upper"][0] == pytest.approx(0.075)


def test_gz2_agrees_with_the_existing_conversions():
    rng = np.random.default_rng(3)
    cond = np.concatenate([rng.dirichlet(np.ones(len(q.answers)), size=20) for q in gz2.GZ2_QUESTIONS], axis=1)
    np.testing.assert_allclose(to_cumulative(cond, GZ2), gz2.conditional_to_cumulative(cond), rtol=1e-12)
    cum = gz2.conditional_to_cumulative(cond)
    np.testing.assert_allclose(to_conditional(cum, GZ2), gz2.cumulative_to_conditional(cum), rtol=1e-12)
    asked = proportion_asked(cond, GZ2)
    merger = GZ2.question("odd_feature")
    # odd_feature's proportion asked is the "odd: yes" fraction, asked of everyone
    np.testing.assert_allclose(asked[:, GZ2.questions.index(merger)], cond[:, 13])
    # the Kaggle cumulative of Class8.6 is its conditional fraction times the proportion asked
    np.testing.assert_allclose(cum[:, 23], cond[:, 23] * cond[:, 13])


def test_wrong_width_is_refused():
    with pytest.raises(ValueError, match="33 fractions per row for the 34 answers of GZ DECaLS DR8 / GZ DESI"):
        proportion_asked(np.ones((1, 33)), DECALS_DR8)
