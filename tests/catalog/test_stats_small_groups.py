"""`stats --by`: a group too small for the classifier correction says so (issue 21, item 6)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from galaxy_ray import catalog as cat
from galaxy_ray.cli import run_entry_point
from galaxy_ray.merger.fractions import MIN_FLAGGED, corrected_fraction
from test_catalog import PROVENANCE, random_rows

VALIDATION = {"positives": 50, "true_positives": 40, "negatives": 950, "false_positives": 19}
RATES = dict(val_positives=50, val_true_positives=40, val_negatives=950, val_false_positives=19)
#: morphology -> (galaxies, flagged)
GROUPS = {"spiral": (1000, 100), "edge_on": (40, 1), "elliptical": (5000, 12)}


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("groups")
    n = sum(rows for rows, _ in GROUPS.values())
    table = random_rows(n, seed=21, with_nulls=False)
    morph, flag = [], []
    for name, (rows, flagged) in GROUPS.items():
        morph += [name] * rows
        flag += [True] * flagged + [False] * (rows - flagged)
    table = table.set_column(table.schema.get_field_index("morphology"), "morphology", pa.array(morph))
    table = table.set_column(table.schema.get_field_index("is_merger"), "is_merger", pa.array(flag))
    prov = {**PROVENANCE, "merger_validation": VALIDATION}
    cat.write_catalog_file(table, str(out / "part-00000.parquet"), prov)
    cat.write_catalog_summary(str(out), prov)
    return out


def test_small_and_degenerate_groups_get_no_corrected_fraction(catalog_dir, capsys):
    assert run_entry_point(cat.stats_main, [str(catalog_dir), "--by", "morphology", "--json"]) == 0
    groups = {g["group"]: g for g in json.loads(capsys.readouterr().out)["groups"]}
    assert {k: (g["classified_rows"], g["mergers"]) for k, g in groups.items()} == GROUPS
    # a group with enough flags: Rogan & Gladen by hand, (0.1 - 19/950) / (40/50 - 19/950)
    assert groups["spiral"]["corrected_fraction"] == pytest.approx((0.1 - 0.02) / (0.8 - 0.02))
    lo, hi = groups["spiral"]["corrected_fraction_95"]
    assert lo < groups["spiral"]["corrected_fraction"] < hi
    # 1 flag of 40: too few
    small = groups["edge_on"]
    assert small["corrected_fraction"] is None and small["corrected_fraction_95"] is None
    assert small["correction"].startswith("unavailable: too few galaxies: 1 flagged and 39 not, of 40")
    # 12 of 5000 (0.0024) sit far below the false-positive rate 0.02: no fraction in [0, 1] gives that
    flat = groups["elliptical"]
    assert flat["corrected_fraction"] is None
    assert "flagged fraction 0.0024 lies outside the validation false-positive rate 0.0200" in flat["correction"]
    # the flagged fraction and its Wilson interval stay: they hold at small counts
    assert small["merger_fraction"] == pytest.approx(1 / 40) and small["merger_fraction_95"][1] > 0.1


def test_text_says_why_and_never_prints_a_zero_width_interval(catalog_dir, capsys):
    assert run_entry_point(cat.stats_main, [str(catalog_dir), "--by", "morphology"]) == 0
    text = capsys.readouterr().out
    assert "interval 0.0000 - 0.0000" not in text
    by = text.split("by morphology:", 1)[1]  # the per-group table, after the whole catalog's morphology mix
    edge = next(line for line in by.splitlines() if line.strip().startswith("edge_on"))
    assert edge.endswith("n/a (too few galaxies: 1 flagged and 39 not, of 40)")
    assert f"a group needs at least {MIN_FLAGGED} flagged and {MIN_FLAGGED} unflagged galaxies" in text


@pytest.mark.parametrize("flagged, total, caught, has_estimate", [
    (MIN_FLAGGED - 1, 500, 40, False), (MIN_FLAGGED, 500, 40, True),  # the fewest flagged galaxies
    (491, 500, 50, False), (490, 500, 50, True),  # and not flagged (with completeness 1, 0.98 stays in range)
])
def test_the_minimum_is_ten_of_each(flagged, total, caught, has_estimate):
    est = corrected_fraction(flagged, total, **{**RATES, "val_true_positives": caught}, draws=500)
    assert np.isfinite(est["fraction"]) == has_estimate and (est["reason"] is None) == has_estimate
