"""GZ2 catalogs speak Galaxy Zoo (issue 22): conditional fractions, proportion asked, column descriptions, friendly view.

The galaxies are worked by hand: conditional fractions chosen per question, the cumulative
fractions the model would give multiplied out below (the numbers are written, not computed),
and the friendly view's masks read off the proportions asked.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.io.votable import parse

from galaxy_ray import catalog as cat
from galaxy_ray import model as model_mod
from galaxy_ray import schema
from galaxy_ray.catalog import galaxy_zoo
from galaxy_ray.cli import run_entry_point
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.infer.run import base_provenance
from galaxy_ray.infer.rows import catalog_rows
from galaxy_ray.merger.calibration import IsotonicCalibration
from galaxy_ray.merger.rule import MergerRule
from galaxy_ray.merger.truth import truth_rule
from galaxy_ray.trees import GZ2
from galaxy_ray import tasks
from galaxy_ray.trees.columns import cumulative_column_names
from galaxy_ray.trees.fractions import friendly_table

# Galaxy "disc": a face-on barred spiral.  Conditional fractions per question (Kaggle answer order):
DISC_CONDITIONAL = {
    "smooth_or_features": [0.2, 0.7, 0.1],
    "edgeon": [0.25, 0.75],              # asked of 0.7 (features_or_disk)
    "bar": [0.4, 0.6],                   # asked of 0.7 * 0.75 = 0.525
    "spiral": [0.8, 0.2],                # 0.525
    "bulge_prominence": [0.1, 0.5, 0.3, 0.1],  # 0.525
    "odd": [0.3, 0.7],                   # 1 (every galaxy)
    "rounded": [0.5, 0.25, 0.25],        # 0.2 (smooth)
    "odd_feature": [0.1, 0.1, 0.1, 0.1, 0.1, 0.4, 0.1],  # 0.3 (odd yes)
    "bulge_shape": [0.6, 0.2, 0.2],      # 0.7 * 0.25 = 0.175 (edge-on)
    "arms_winding": [0.5, 0.25, 0.25],   # 0.525 * 0.8 = 0.42 (spiral)
    "arms_number": [0.0, 0.5, 0.25, 0.0, 0.0, 0.25],  # 0.42
}
# ... and the cumulative (Kaggle) fractions that model outputs are, multiplied out by hand.
DISC_CUMULATIVE = [0.2, 0.7, 0.1, 0.175, 0.525, 0.21, 0.315, 0.42, 0.105, 0.0525, 0.2625, 0.1575, 0.0525,
                   0.3, 0.7, 0.1, 0.05, 0.05, 0.03, 0.03, 0.03, 0.03, 0.03, 0.12, 0.03, 0.105, 0.035, 0.035,
                   0.21, 0.105, 0.105, 0.0, 0.21, 0.105, 0.0, 0.0, 0.105]
DISC_ASKED = {"smooth_or_features": 1.0, "edgeon": 0.7, "bar": 0.525, "spiral": 0.525, "bulge_prominence": 0.525,
              "odd": 1.0, "rounded": 0.2, "odd_feature": 0.3, "bulge_shape": 0.175, "arms_winding": 0.42,
              "arms_number": 0.42}
# Galaxy "edge": half smooth, half featured, never edge-on, always spiral, odd for half the volunteers:
# bar, spiral, bulge prominence, arms, odd feature and rounded are asked of exactly 0.5 (shown: the
# rule is >= 0.5); bulge shape of nobody (0, masked; its fractions are 0: no volunteer reached it).
EDGE_CUMULATIVE = [0.5, 0.5, 0.0, 0.0, 0.5, 0.25, 0.25, 0.5, 0.0, 0.125, 0.125, 0.125, 0.125,
                   0.5, 0.5, 0.25, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0,
                   0.5, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0]
EDGE_ASKED = {"smooth_or_features": 1.0, "edgeon": 0.5, "bar": 0.5, "spiral": 0.5, "bulge_prominence": 0.5,
              "odd": 1.0, "rounded": 0.5, "odd_feature": 0.5, "bulge_shape": 0.0, "arms_winding": 0.5,
              "arms_number": 0.5}
DISC_SHOWN = {"smooth_or_features", "edgeon", "bar", "spiral", "bulge_prominence", "odd"}
EDGE_SHOWN = set(EDGE_ASKED) - {"bulge_shape"}
TRUTH_CUT = 0.4


def _fraction(question: str, answer: str) -> str:
    return f"{question}_{answer}_fraction"


@pytest.fixture(scope="module")
def gz2_spec(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint's spec, with a merger calibration fitted on made-up validation scores."""
    ckpt = tiny_checkpoint(str(tmp_path_factory.mktemp("gzckpt")))
    _, spec = model_mod.load_checkpoint(ckpt)
    scores = np.array([0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
    spec.calibration = {"probabilities": None,
                        "merger": IsotonicCalibration.fit(scores, np.array([0, 0, 0, 1, 1, 1])).to_dict()}
    return ckpt, spec


@pytest.fixture(scope="module")
def gz_catalog(gz2_spec, tmp_path_factory):
    """A catalog of the two hand-worked galaxies and an error row, as `infer` writes it."""
    ckpt, spec = gz2_spec
    rule = MergerRule(output=spec.merger, threshold=0.75, threshold_source="given",
                      truth=truth_rule(spec, TRUTH_CUT), vote_cut=TRUTH_CUT)
    probs = np.array([DISC_CUMULATIVE, EDGE_CUMULATIVE, EDGE_CUMULATIVE], dtype=np.float32)
    batch = {"object_id": np.array(["disc", "edge", "bad"], dtype=object), "ra": np.array([10.0, 20.0, 30.0]),
             "dec": np.array([1.0, 2.0, 3.0]), "error": np.array([None, None, "decode: truncated"], dtype=object)}
    rows = catalog_rows(spec, model_mod.output_columns(spec), batch, probs, np.array([True, True, False]), rule)
    prov = base_provenance(ckpt, spec, "hand-worked", "shards", rule.threshold, False, rule=rule)
    out = tmp_path_factory.mktemp("gzcat")
    cat.write_catalog_file(rows, str(out / "part-00000.parquet"), prov)
    cat.write_catalog_summary(str(out), prov)
    return out


def test_hand_worked_conditional_fractions_and_proportion_asked(gz_catalog):
    table = pq.read_table(gz_catalog / "part-00000.parquet")
    names = table.column_names
    # the 37 cumulative columns unchanged and first, then 37 fractions, 11 proportions asked, then the rest
    tree = cumulative_column_names(GZ2)
    assert names[4:41] == list(schema.GZ2_ANSWER_COLUMNS)
    assert names[41:41 + 48] == tree == [*GZ2.fraction_columns, *GZ2.proportion_asked_columns]
    assert names[89:] == ["morphology", "p_merger", "is_merger", "error"]
    assert table.schema.remove_metadata().equals(cat.catalog_schema(schema.GZ2_ANSWER_COLUMNS, tree))
    assert all(table.schema.field(c).type == pa.float32() for c in tree)
    rows = {r["object_id"]: r for r in table.to_pylist()}
    disc = rows["disc"]
    for question, fractions in DISC_CONDITIONAL.items():
        keys = [a.key for a in GZ2.question(question).answers]
        for key, want in zip(keys, fractions):
            assert disc[_fraction(question, key)] == pytest.approx(want, abs=2e-6), (question, key)
        assert sum(disc[_fraction(question, k)] for k in keys) == pytest.approx(1.0, abs=1e-5)
        assert disc[f"{question}_proportion_asked"] == pytest.approx(DISC_ASKED[question], abs=2e-6)
    for question, asked in EDGE_ASKED.items():
        assert rows["edge"][f"{question}_proportion_asked"] == pytest.approx(asked, abs=1e-7), question
    assert rows["edge"][_fraction("bulge_shape", "rounded")] == 0.0  # nobody reached it
    assert all(rows["bad"][c] is None for c in tree)  # no prediction: null, like the cumulative columns
    # p_merger is calibrated, not the 0.12 merger vote fraction: the isotonic fit's knots are (0.1, 0)
    # and (0.2, 1), so 0.12 maps to 0.2; the edge's 0.5 to 1
    assert disc["odd_feature_merger"] == pytest.approx(0.12) and disc["p_merger"] == pytest.approx(0.2, abs=1e-6)
    assert rows["edge"]["p_merger"] == 1.0 and rows["edge"]["is_merger"] and not disc["is_merger"]


def test_catalog_opens_in_pandas_with_galaxy_zoo_names(gz_catalog):
    df = pd.read_parquet(gz_catalog, dtype_backend="numpy_nullable").set_index("object_id")
    assert df.loc["disc", "bar_bar_fraction"] == pytest.approx(0.4) and df.loc["disc", "bar_bar"] == pytest.approx(0.21)
    assert df.loc["disc", "bar_proportion_asked"] == pytest.approx(0.525)
    assert pd.isna(df.loc["bad", "bar_bar_fraction"])


def test_every_probability_column_is_described(gz_catalog):
    summary = json.loads((gz_catalog / "_catalog.json").read_text())
    footer = json.loads(pq.read_schema(gz_catalog / "part-00000.parquet").metadata[b"galaxy_ray"])
    assert summary["column_descriptions"] == footer["column_descriptions"]
    assert summary["tree_columns"] == cumulative_column_names(GZ2)
    d = summary["column_descriptions"]
    assert set(d) == {*schema.GZ2_ANSWER_COLUMNS, *summary["tree_columns"], "p_merger", "is_merger", "morphology"}
    assert d["bar_bar"].startswith("Kaggle cumulative vote fraction: fraction of all volunteers who reached and "
                                   "chose this answer (Class3.1 bar bar")
    assert "conditional" in d["bar_bar_fraction"] and "sum to 1" in d["bar_bar_fraction"]
    assert "t03_bar_a06_bar_fraction" in d["bar_bar_fraction"]
    assert ("smooth_or_features_features_or_disk then edgeon_no then spiral_spiral"
            in d["arms_number_proportion_asked"])
    assert "asked of every galaxy" in d["odd_proportion_asked"]
    p = d["p_merger"]
    assert p.startswith("calibrated probability that the galaxy is a merger by the truth Class8.6 vote fraction > 0.4")
    assert "not a vote fraction" in p and "Darg et al. 2010" in p
    assert d["is_merger"].startswith("merger flag: p_merger >= 0.75")


def test_uncalibrated_p_merger_is_called_a_vote_fraction():
    d = galaxy_zoo.column_descriptions("gz2", schema.GZ2_KAGGLE_COLUMNS, "Class8.6", calibration=None)
    assert d["p_merger"].startswith("uncalibrated: the model's Class8.6 cumulative vote fraction")
    classes = galaxy_zoo.column_descriptions("classes", ["Spiral", "Merger"], "Merger",
                                             calibration={"probabilities": {"method": "temperature"}})
    assert classes["prob_merger"] == "probability of class 'Merger' (softmax, temperature-scaled on the training " \
                                     "run's validation split)"
    classes_task = tasks.get("classes")
    assert classes_task.tree_column_names(None) == [] and classes_task.tree_columns(None, np.ones((1, 2))) == {}


def test_friendly_view_masks_questions_asked_of_fewer_than_half(gz_catalog, tmp_path):
    out = tmp_path / "friendly.parquet"
    assert run_entry_point(cat.query_main, [str(gz_catalog), "--friendly", "--out", str(out)]) == 0
    got = {r["object_id"]: r for r in pq.read_table(out).to_pylist()}
    plain = {r["object_id"]: r for r in pq.read_table(gz_catalog / "part-00000.parquet").to_pylist()}
    for oid, shown in (("disc", DISC_SHOWN), ("edge", EDGE_SHOWN)):
        for q in GZ2.questions:
            for a in q.answers:
                column = _fraction(q.key, a.key)
                want = plain[oid][column] if q.key in shown else None
                assert got[oid][column] == want, (oid, column)
        # everything but the fractions is as stored
        for column in (*schema.GZ2_ANSWER_COLUMNS, *GZ2.proportion_asked_columns, "p_merger"):
            assert got[oid][column] == plain[oid][column]
    # the library's own friendly table (float64, from the conditional fractions) masks the same answers
    disc_cond = np.concatenate([DISC_CONDITIONAL[q.key] for q in GZ2.questions])
    lib = friendly_table(disc_cond[None, :], GZ2)
    assert {c for c, v in lib.items() if np.isnan(v[0])} == {c for c in GZ2.fraction_columns if got["disc"][c] is None}


def test_friendly_filter_and_columns(gz_catalog):
    # --where sees the masked values: the disc's bulge_shape is masked, the edge's bar is shown (asked 0.5)
    hits = cat.query(str(gz_catalog), where="bulge_shape_rounded_fraction IS NOT NULL", friendly=True)
    assert hits.empty
    assert sorted(cat.query(str(gz_catalog), where="bulge_shape_rounded_fraction IS NOT NULL").object_id) == \
        ["disc", "edge"]
    some = cat.query(str(gz_catalog), columns="object_id,bar_bar_fraction,rounded_completely_round_fraction",
                     friendly=True, sort="object_id")
    assert list(some.columns) == ["object_id", "bar_bar_fraction", "rounded_completely_round_fraction"]
    assert some.bar_bar_fraction.tolist()[1:] == [pytest.approx(0.4), pytest.approx(0.5)]  # disc, edge
    assert np.isnan(some.rounded_completely_round_fraction[1]) and some.rounded_completely_round_fraction[2] == 0.5


def test_friendly_needs_fraction_columns(tmp_path):
    from test_catalog import PROVENANCE, random_rows

    cat.write_catalog_file(random_rows(20, seed=1), str(tmp_path / "part-00000.parquet"), PROVENANCE)
    with pytest.raises(GalaxyRayError, match="--friendly: .* no \\{question\\}_\\{answer\\}_fraction"):
        cat.query(str(tmp_path), friendly=True)


def test_kaggle_submission_unchanged(gz_catalog, tmp_path):
    out = tmp_path / "kaggle.csv"
    assert run_entry_point(cat.query_main, [str(gz_catalog), "--kaggle-submission", str(out)]) == 0
    lines = list(csv.reader(out.read_text().splitlines()))
    assert lines[0] == ["GalaxyID", *schema.GZ2_KAGGLE_COLUMNS]  # the 37 cumulative columns only
    assert len(lines) == 3  # the error row is left out
    disc = next(line for line in lines if line[0] == "disc")[1:]
    np.testing.assert_allclose([float(v) for v in disc], DISC_CUMULATIVE, atol=1e-7)


def test_fits_and_votable_carry_the_descriptions(gz_catalog, tmp_path):
    fits_out, vot_out = tmp_path / "gz.fits", tmp_path / "gz.vot"
    for out in (fits_out, vot_out):
        assert run_entry_point(cat.query_main, [str(gz_catalog), "--friendly", "--out", str(out)]) == 0
    header = fits.getheader(fits_out, "CATALOG")
    number = {header[f"TTYPE{i}"]: i for i in range(1, header["TFIELDS"] + 1)}
    assert header[f"TCOMM{number['bar_bar_fraction']}"].startswith("conditional vote fraction")
    assert header[f"TUCD{number['bar_bar_fraction']}"] == "stat.probability;src.morph"
    assert "not a vote fraction" in header[f"TCOMM{number['p_merger']}"]
    assert header[f"TCOMM{number['bar_bar']}"].startswith("Kaggle cumulative vote fraction")
    assert header["GRQFRIEN"] is True
    fields = {f.name: f for f in parse(str(vot_out)).get_first_table().fields}
    assert "Class8.6 vote fraction > 0.4" in fields["p_merger"].description
    assert fields["bar_proportion_asked"].description.startswith("proportion of volunteers who would be asked")
