"""A vote table whose count columns cannot be counts, or that holds two trees' counts, is named in one line
on the driver before anything trains (issue 33, section 2)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from galaxy_ray.data.vote_checks import scan_counts
from galaxy_ray.data.vote_counts import attach_vote_counts, candidate_trees, choose_tree
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.trees import DECALS_DR5, DECALS_DR8

DR5 = list(DECALS_DR5.count_forms["galaxy-datasets"])
DR8 = list(DECALS_DR8.count_forms["galaxy-datasets"])
RELEASE = list(DECALS_DR5.count_forms["release"])


def _counts(n: int, k: int = 34, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 30, size=(n, k)).astype(np.float64)


def _table(columns: list[str], values: np.ndarray, **extra) -> pa.Table:
    data = {"object_id": [str(i) for i in range(len(values))]}
    data.update({c: values[:, j] for j, c in enumerate(columns)})
    data.update(extra)
    return pa.table(data)


def _check(table: pa.Table, tree: str | None = None, where: str = "t.csv"):
    """candidate_trees + scan_counts + choose_tree + refuse_unusable, as attach_vote_counts runs them."""
    matches = candidate_trees(table.column_names, tree, where)
    scans = scan_counts([table.slice(0, 3), table.slice(3)], [m.columns for m in matches])  # two batches
    match, scan, line = choose_tree(matches, scans, tree, where)
    scan.refuse_unusable(where, match.schema.title)
    return match, line


def test_good_counts_pass_and_the_line_names_the_tree():
    match, line = _check(_table(DR8, _counts(8)))
    assert match.schema is DECALS_DR8
    assert "decals-dr8" in line and "'smooth-or-featured-dr8_smooth'" in line and "of 8 rows" in line


def test_all_zero_counts_are_refused():
    with pytest.raises(GalaxyRayError, match=r"t.csv: every GZ DECaLS DR5 vote count is 0 in all 8 rows"):
        _check(_table(DR5, np.zeros((8, 34))))


def test_all_missing_counts_are_refused():
    """Variant not in the issue: a left join that matched nothing leaves every count blank (NaN), not 0."""
    with pytest.raises(GalaxyRayError, match=r"every GZ DECaLS DR5 vote count is missing in all 8 rows"):
        _check(_table(DR5, np.full((8, 34), np.nan)))


def test_fractions_in_count_columns_are_refused():
    fractions = _counts(8) / 30.0
    with pytest.raises(GalaxyRayError, match=r"columns 'smooth-or-featured-dr5_smooth' and \d+ more hold non-integer values .*look like vote fractions"):
        _check(_table(DR5, fractions))


def test_real_gz2_counts_pass_and_its_fractions_in_the_count_columns_do_not(gz2_sample):
    """The real SDSS sample (Hart et al. 2016 columns): its counts are counts; its fractions pasted over them are not."""
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(str(gz2_sample / "catalog.csv"))
    match, line = _check(table)
    assert match.schema.name == "gz2" and f"votes in {table.num_rows} of {table.num_rows} rows" in line
    for c in match.columns:
        table = table.set_column(table.column_names.index(c), c, table[c.replace("_count", "_fraction")])
    with pytest.raises(GalaxyRayError, match=r"columns 't01_smooth_or_features_a01_smooth_count' and 36 more hold "
                                             r"non-integer values .* these look like vote fractions"):
        _check(table)


def test_zero_one_flags_are_refused():
    flags = (_counts(8) > 15).astype(np.float64)
    with pytest.raises(GalaxyRayError, match=r"no GZ DECaLS DR5 vote count is above 1 in 8 rows"):
        _check(_table(DR5, flags))


def test_non_integer_counts_are_refused_naming_the_column():
    values = _counts(8)
    values[5, 3] = 12.5
    with pytest.raises(GalaxyRayError, match=r"vote count column 'disk-edge-on-dr5_yes' holds non-integer values "
                                             r"\(e.g. 12.5\); fix those cells"):
        _check(_table(DR5, values))


def test_negative_counts_are_refused_naming_the_column():
    values = _counts(8)
    values[4, 33] = -2
    with pytest.raises(GalaxyRayError, match=r"'merging-dr5_merger' holds negative values \(e.g. -2\)"):
        _check(_table(DR5, values))


def test_infinite_counts_are_refused():
    """Variant not in the issue: an overflowed export writes inf."""
    values = _counts(8)
    values[2, 0] = np.inf
    with pytest.raises(GalaxyRayError, match=r"'smooth-or-featured-dr5_smooth' holds inf"):
        _check(_table(DR5, values))


def test_text_counts_are_refused_and_numbers_as_text_are_not():
    values = _counts(8)
    table = _table(DR5, values)
    text = pa.array([str(int(v)) for v in values[:, 1]])
    ok = table.set_column(2, DR5[1], text)  # "12" stored as text (a CSV read as strings) is a count
    assert _check(ok)[0].schema is DECALS_DR5
    bad = table.set_column(2, DR5[1], pa.array(["n/a"] + text.to_pylist()[1:]))
    with pytest.raises(GalaxyRayError, match=r"'smooth-or-featured-dr5_featured-or-disk' holds text \(e.g. 'n/a'\)"):
        _check(bad)


def test_dr5_and_dr8_with_votes_in_both_are_refused_without_schema():
    table = _table(DR5 + DR8, np.concatenate([_counts(8, seed=1), _counts(8, seed=2)], axis=1))
    with pytest.raises(GalaxyRayError, match=r"holds GZ DECaLS DR5 counts \(8 rows with votes.* pass --schema "
                                             r"decals-dr5 or --schema decals-dr8"):
        _check(table)


def test_dr5_and_dr8_with_schema_says_which_and_how_to_take_the_other():
    table = _table(DR5 + DR8, np.concatenate([_counts(8, seed=1), _counts(8, seed=2)], axis=1))
    match, line = _check(table, "decals-dr8")
    assert match.schema is DECALS_DR8
    assert "the tree asked for (--schema or the checkpoint)" in line and "pass --schema decals-dr5" in line


def test_dr5_and_dr8_with_one_holding_votes_takes_that_one_and_says_so():
    """GZ DESI rows on the hub: one campaign's columns filled, the other's 0."""
    table = _table(DR5 + DR8, np.concatenate([np.zeros((8, 34)), _counts(8)], axis=1))
    match, line = _check(table)
    assert match.schema is DECALS_DR8
    assert "using decals-dr8, the only one with votes" in line and "pass --schema decals-dr5" in line


def test_release_naming_says_it_fits_dr5_and_dr8():
    match, line = _check(_table(RELEASE, _counts(8)))
    assert match.schema is DECALS_DR5
    assert "decals-dr5 and decals-dr8 alike" in line and "--schema decals-dr8" in line


def test_attach_refuses_on_the_driver_not_in_a_ray_task(ray_cluster, capsys):
    import ray.data

    values = _counts(40)
    values[30, 7] = -1
    ds = ray.data.from_arrow(_table(DR5, values)).repartition(4)
    with pytest.raises(GalaxyRayError) as info:
        attach_vote_counts(ds, None, "votes.parquet")
    # a GalaxyRayError raised by the driver's own code, not a RayTaskError wrapping one
    assert type(info.value) is GalaxyRayError
    assert str(info.value) == ("votes.parquet: vote count column 'bar-dr5_strong' holds negative values (e.g. -1); "
                               "fix those cells (a count is a whole number of volunteers, blank where unknown)")
    good, tree = attach_vote_counts(ray.data.from_arrow(_table(DR5, _counts(40))), None, "votes.parquet")
    assert tree is DECALS_DR5 and good.count() == 40
    assert "galaxy-ray: vote counts: GZ DECaLS DR5 (decals-dr5)" in capsys.readouterr().err
