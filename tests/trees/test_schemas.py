"""The trees as data: GZ2 agrees with galaxy_ray.schema, DECaLS with galaxy-datasets, tables are recognised."""

from __future__ import annotations

import pandas as pd
import pytest

from galaxy_ray import schema as gz2
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.trees import DECALS_DR5, DECALS_DR8, GZ2, get_schema, identify_tree, match_trees, vote_columns

# galaxy-datasets galaxy_datasets/shared/label_metadata.py (commit 3cd2149c), decals_dr5_ortho_label_cols,
# written out here by hand so the test does not share the code's construction.
DR5_LABEL_COLS = """
smooth-or-featured-dr5_smooth smooth-or-featured-dr5_featured-or-disk smooth-or-featured-dr5_artifact
disk-edge-on-dr5_yes disk-edge-on-dr5_no has-spiral-arms-dr5_yes has-spiral-arms-dr5_no
bar-dr5_strong bar-dr5_weak bar-dr5_no
bulge-size-dr5_dominant bulge-size-dr5_large bulge-size-dr5_moderate bulge-size-dr5_small bulge-size-dr5_none
how-rounded-dr5_round how-rounded-dr5_in-between how-rounded-dr5_cigar-shaped
edge-on-bulge-dr5_boxy edge-on-bulge-dr5_none edge-on-bulge-dr5_rounded
spiral-winding-dr5_tight spiral-winding-dr5_medium spiral-winding-dr5_loose
spiral-arm-count-dr5_1 spiral-arm-count-dr5_2 spiral-arm-count-dr5_3 spiral-arm-count-dr5_4
spiral-arm-count-dr5_more-than-4 spiral-arm-count-dr5_cant-tell
merging-dr5_none merging-dr5_minor-disturbance merging-dr5_major-disturbance merging-dr5_merger
""".split()
# decals_ortho_dependencies, the dr5 entries
DR5_DEPENDENCIES = {
    "smooth-or-featured-dr5": None, "disk-edge-on-dr5": "smooth-or-featured-dr5_featured-or-disk",
    "has-spiral-arms-dr5": "disk-edge-on-dr5_no", "bar-dr5": "disk-edge-on-dr5_no",
    "bulge-size-dr5": "disk-edge-on-dr5_no", "how-rounded-dr5": "smooth-or-featured-dr5_smooth",
    "edge-on-bulge-dr5": "disk-edge-on-dr5_yes", "spiral-winding-dr5": "has-spiral-arms-dr5_yes",
    "spiral-arm-count-dr5": "has-spiral-arms-dr5_yes", "merging-dr5": None,
}


def test_gz2_schema_is_the_existing_tree():
    assert GZ2.answer_names == gz2.GZ2_ANSWER_COLUMNS
    assert [q.key for q in GZ2.questions] == [q.key for q in gz2.GZ2_QUESTIONS]
    assert [q.parent for q in GZ2.questions] == [q.parent for q in gz2.GZ2_QUESTIONS]
    assert [q.indices for q in GZ2.questions] == [q.indices for q in gz2.GZ2_QUESTIONS]
    assert GZ2.count_forms["hart"][24] == "t08_odd_feature_a38_dust_lane_count"
    assert GZ2.fraction_forms["kaggle"][23] == "Class8.6"
    assert GZ2.merger_answers == ("odd_feature_merger",)
    # odd_feature (Q8) follows "odd: yes" (Q6, answer 14 of Hart's numbering, Kaggle index 13)
    assert GZ2.question("odd_feature").parent == 13


def test_decals_dr5_is_galaxy_datasets():
    assert list(DECALS_DR5.count_forms["galaxy-datasets"]) == DR5_LABEL_COLS
    names = DECALS_DR5.count_forms["galaxy-datasets"]
    for q in DECALS_DR5.questions:
        parent = None if q.parent is None else names[q.parent]
        assert parent == DR5_DEPENDENCIES[f"{q.key}-dr5"], q.key
    assert len(DECALS_DR5.answers) == 34 and len(DECALS_DR5.questions) == 10


def test_dr8_differs_from_dr5_only_in_the_campaign():
    assert DECALS_DR8.answer_names == DECALS_DR5.answer_names
    assert [q.parent for q in DECALS_DR8.questions] == [q.parent for q in DECALS_DR5.questions]
    assert list(DECALS_DR8.count_forms["galaxy-datasets"]) == [c.replace("-dr5", "-dr8") for c in DR5_LABEL_COLS]
    assert DECALS_DR8.count_forms["release"] == DECALS_DR5.count_forms["release"]


def test_catalog_column_names():
    assert DECALS_DR8.fraction_columns[0] == "smooth-or-featured_smooth_fraction"
    assert DECALS_DR8.proportion_asked_columns[2] == "has-spiral-arms_proportion_asked"
    lower, upper = DECALS_DR8.interval_columns
    assert lower[-1] == "merging_merger_90pc-lower" and upper[-1] == "merging_merger_90pc-upper"
    assert GZ2.fraction_columns[23] == "odd_feature_merger_fraction"


def test_ancestors_walk_up_the_tree():
    winding = DECALS_DR5.question("spiral-winding")
    names = [DECALS_DR5.answer_names[i] for i in DECALS_DR5.ancestors(winding)]
    assert names == ["has-spiral-arms_yes", "disk-edge-on_no", "smooth-or-featured_featured-or-disk"]
    assert DECALS_DR5.ancestors(DECALS_DR5.question("merging")) == []


def test_get_schema_names_and_aliases():
    assert get_schema("desi") is DECALS_DR8 and get_schema("DECaLS-DR5") is DECALS_DR5
    with pytest.raises(GalaxyRayError, match="unknown tree; choose one of gz2, decals-dr5, decals-dr8"):
        get_schema("gz3")


def _table(columns):
    return pd.DataFrame({c: [1] for c in ["iauname", "ra", "dec", *columns]})


def test_a_tree_is_recognised_in_each_naming():
    dr8 = _table(DECALS_DR8.count_forms["galaxy-datasets"]).columns
    assert identify_tree(dr8).schema is DECALS_DR8
    assert vote_columns(dr8, DECALS_DR8).columns == DECALS_DR8.count_forms["galaxy-datasets"]
    release = _table(DECALS_DR5.count_forms["release"]).columns
    # the release names have no campaign: both DECaLS schemas accept them
    assert vote_columns(release, DECALS_DR5).form == "release"
    assert vote_columns(release, DECALS_DR8).form == "release"
    hart = _table(GZ2.count_forms["hart"] + GZ2.fraction_forms["hart"]).columns
    match = identify_tree(hart)
    assert (match.schema, match.kind, match.form) == (GZ2, "counts", "hart")
    assert identify_tree(["a", "b"]) is None


def test_another_tree_is_named_in_one_line():
    release = _table(DECALS_DR8.count_forms["release"]).columns
    with pytest.raises(GalaxyRayError) as err:
        vote_columns(release, GZ2, where="gz_desi.parquet")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("gz_desi.parquet: a GZ DECaLS DR5 or GZ DECaLS DR8 / GZ DESI table "
                              "(34 counts columns in release naming, e.g. 'smooth-or-featured_smooth')")
    assert message.endswith("not Galaxy Zoo 2; pass --schema decals-dr5 or decals-dr8")
    dr8 = _table(DECALS_DR8.count_forms["galaxy-datasets"]).columns
    with pytest.raises(GalaxyRayError, match=r"a GZ DECaLS DR8 / GZ DESI table .* not GZ DECaLS DR5; "
                                              r"pass --schema decals-dr8"):
        vote_columns(dr8, DECALS_DR5)


def test_missing_and_absent_columns_are_named():
    cols = [c for c in DECALS_DR5.count_forms["galaxy-datasets"] if c != "bar-dr5_weak"]
    with pytest.raises(GalaxyRayError, match=r"t.csv: 1 of the 34 GZ DECaLS DR5 counts columns "
                                              r"\(galaxy-datasets naming\) are missing, first 'bar-dr5_weak'"):
        vote_columns(cols, DECALS_DR5, where="t.csv")
    with pytest.raises(GalaxyRayError, match="no Galaxy Zoo 2 counts columns"):
        vote_columns(["object_id", "ra"], GZ2)


def test_partial_matches_are_ranked():
    cols = list(DECALS_DR5.count_forms["galaxy-datasets"][:17]) + list(GZ2.count_forms["hart"])
    best = match_trees(cols)
    assert (best[0].schema, best[0].complete) == (GZ2, True)
    assert best[1].schema is DECALS_DR5 and best[1].found == 17


def test_real_gz2_sample_is_gz2(gz2_sample):
    columns = pd.read_csv(gz2_sample / "catalog.csv", nrows=1).columns
    match = vote_columns(columns, GZ2, where="catalog.csv")
    assert match.form == "hart" and match.complete
    with pytest.raises(GalaxyRayError, match="a Galaxy Zoo 2 table .* pass --schema gz2"):
        vote_columns(columns, DECALS_DR8, where="catalog.csv")
