"""The GZ2 tree, its two fraction conventions, and the label names."""

from __future__ import annotations

import numpy as np
import pytest

from galaxy_ray import schema


def test_tree_has_37_answers_in_kaggle_order():
    assert len(schema.GZ2_ANSWERS) == 37 and len(schema.GZ2_QUESTIONS) == 11
    assert schema.GZ2_KAGGLE_COLUMNS[:3] == ("Class1.1", "Class1.2", "Class1.3")
    assert schema.GZ2_KAGGLE_COLUMNS[-1] == "Class11.6"
    assert schema.GZ2_KAGGLE_COLUMNS[schema.GZ2_MERGER_INDEX] == "Class8.6"
    assert schema.GZ2_ANSWER_COLUMNS[schema.GZ2_MERGER_INDEX] == "odd_feature_merger"
    assert schema.GZ2_HART_COLUMNS[schema.GZ2_MERGER_INDEX] == "t08_odd_feature_a24_merger"
    assert "t08_odd_feature_a38_dust_lane" in schema.GZ2_HART_COLUMNS
    assert len(set(schema.GZ2_ANSWER_COLUMNS)) == 37


def test_hart_names_match_the_real_catalog(gz2_sample):
    header = (gz2_sample / "catalog.csv").read_text().split("\n", 1)[0].split(",")
    for stem in schema.GZ2_HART_COLUMNS:
        assert f"{stem}_fraction" in header and f"{stem}_debiased" in header


def _random_conditional(rng, n):
    cond = np.zeros((n, 37))
    for q in schema.GZ2_QUESTIONS:
        cond[:, q.indices] = rng.dirichlet(np.ones(len(q.indices)), size=n)
    return cond


def test_conversion_round_trip_and_tree_sums():
    rng = np.random.default_rng(0)
    cond = _random_conditional(rng, 200)
    cum = schema.conditional_to_cumulative(cond)
    assert schema.tree_violation(cum).max() < 1e-12
    schema.check_tree(cum)
    assert np.allclose(schema.cumulative_to_conditional(cum), cond)
    # A merger's cumulative value is P(odd) x P(merger | odd).
    odd_yes = schema.GZ2_KAGGLE_COLUMNS.index("Class6.1")
    assert np.allclose(cum[:, schema.GZ2_MERGER_INDEX], cond[:, odd_yes] * cond[:, schema.GZ2_MERGER_INDEX])


def test_check_tree_rejects_conditional_fractions():
    cond = _random_conditional(np.random.default_rng(1), 5)
    with pytest.raises(ValueError, match="conditional_to_cumulative"):
        schema.check_tree(cond)


def test_morphology_reads_down_the_tree():
    cond = np.zeros((3, 37))
    idx = {a.column: a.index for a in schema.GZ2_ANSWERS}
    for row, first in enumerate(["smooth_or_features_smooth", "smooth_or_features_features_or_disk",
                                 "smooth_or_features_features_or_disk"]):
        cond[row, idx[first]] = 1
        cond[row, idx["odd_no"]] = 1
    cond[1, idx["edgeon_yes"]] = 1
    cond[2, idx["edgeon_no"]] = 1
    cond[2, idx["spiral_spiral"]] = 1
    labels = schema.gz2_morphology(schema.conditional_to_cumulative(cond))
    assert list(labels) == ["elliptical", "edge_on", "spiral"]


def test_class_columns_are_identifiers():
    cols = [schema.class_column(c) for c in schema.GALAXY10_CLASSES]
    assert cols[3] == "prob_in_between_round_smooth"
    assert all(c.isidentifier() for c in cols) and len(set(cols)) == 10
