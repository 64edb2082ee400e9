"""Synthetic GZ DECaLS vote tables: counts respect the tree, fractions converge to the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.synthetic.galaxy import render_galaxy
from galaxy_ray.synthetic.votes import (
    count_matrix, decals_probabilities, decals_vote_table, draw_true_probabilities, tree_vote_counts,
    true_probabilities, write_vote_table,
)
from galaxy_ray.trees import DECALS_DR5, DECALS_DR8, vote_columns


@pytest.fixture(scope="module")
def table():
    return decals_vote_table(seed=4, n=300)


def _totals(counts, tree):
    return np.stack([counts[:, q.start:q.stop].sum(axis=1) for q in tree.questions], axis=1)


def test_counts_respect_the_tree(table):
    counts = count_matrix(table, vote_columns(table.columns, DECALS_DR5))
    totals = _totals(counts, DECALS_DR5)
    volunteers = totals[:, 0]
    for qi, q in enumerate(DECALS_DR5.questions):
        expected = volunteers if q.parent is None else counts[:, q.parent]
        np.testing.assert_array_equal(totals[:, qi], expected, err_msg=q.key)
        np.testing.assert_array_equal(table[f"{q.key}-dr5_total-votes"], totals[:, qi])
    assert volunteers.min() >= 3 and volunteers.max() <= 40
    assert (volunteers <= 8).mean() == pytest.approx(0.5, abs=0.1)  # few and many volunteers both occur
    assert (volunteers >= 30).mean() == pytest.approx(0.5, abs=0.1)
    assert len(np.unique(volunteers)) > 10
    # the unasked questions of a galaxy have zero votes (spiral questions of smooth galaxies, ...)
    assert (totals == 0).any(axis=0)[DECALS_DR5.questions.index(DECALS_DR5.question("spiral-winding"))]


def test_fractions_and_truth_columns(table):
    truth = true_probabilities(table, DECALS_DR5)
    for q in DECALS_DR5.questions:
        np.testing.assert_allclose(truth[:, q.start:q.stop].sum(axis=1), 1.0)
    frac = table["bar-dr5_weak_fraction"].to_numpy()
    total = table["bar-dr5_total-votes"].to_numpy()
    np.testing.assert_array_equal(np.isnan(frac), total == 0)
    np.testing.assert_allclose(frac[total > 0], table["bar-dr5_weak"][total > 0] / total[total > 0])


def test_fractions_converge_to_the_true_probabilities():
    rng = np.random.default_rng(0)
    truth = draw_true_probabilities(rng, DECALS_DR5, decals_probabilities(5, {}))  # a barred spiral
    errors = {}
    for volunteers in (40, 4000, 400_000):
        counts = tree_vote_counts(rng, DECALS_DR5, truth, volunteers)
        worst = 0.0
        for q in DECALS_DR5.questions:
            reached = counts[q.start:q.stop].sum()
            if reached < 100:
                continue
            p = truth[q.start:q.stop]
            z = np.abs(counts[q.start:q.stop] / reached - p) / np.sqrt(p * (1 - p) / reached)
            assert (z < 5).all(), (q.key, volunteers)  # binomial error bars
            worst = max(worst, np.abs(counts[q.start:q.stop] / reached - p).max())
        errors[volunteers] = worst
    assert errors[400_000] < 0.01 and errors[400_000] < errors[4000]


def test_table_joins_the_rendered_survey(table):
    for index in (0, 7):
        galaxy = render_galaxy(4, index, 32)
        row = table.iloc[index]
        assert row["object_id"] == galaxy.object_id
        assert (row["ra"], row["dec"]) == pytest.approx((galaxy.ra, galaxy.dec))
        assert row["galaxy10"] == galaxy.galaxy10


def test_same_seed_same_table_and_release_naming():
    a = decals_vote_table(seed=4, n=20, tree=DECALS_DR8, form="release", start=10)
    b = decals_vote_table(seed=4, n=20, tree=DECALS_DR8, form="release", start=10)
    pd.testing.assert_frame_equal(a, b)
    assert vote_columns(a.columns, DECALS_DR8).form == "release"
    assert "smooth-or-featured_total-votes" in a.columns and "merging_merger_fraction" in a.columns
    with pytest.raises(GalaxyRayError, match="naming 'ortho': choose one of galaxy-datasets, release"):
        decals_vote_table(seed=4, n=1, form="ortho")


@pytest.mark.parametrize("name", ["votes.csv", "votes.csv.gz", "votes.parquet"])
def test_written_tables_read_back(tmp_path, table, name):
    path = str(tmp_path / name)
    write_vote_table(table.head(25), path)
    back = pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)
    match = vote_columns(back.columns, DECALS_DR5, where=name)
    np.testing.assert_array_equal(count_matrix(back, match), count_matrix(table.head(25), match))
    with pytest.raises(GalaxyRayError, match="write a vote table as .parquet, .csv or .csv.gz"):
        write_vote_table(table, str(tmp_path / "votes.xlsx"))
