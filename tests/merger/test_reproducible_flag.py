"""The merger flag is reproducible from the threshold as printed; calibration is scored out of sample."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from galaxy_ray import schema
from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.merger.calibration import IsotonicCalibration, probability_calibration
from galaxy_ray.merger.operating import choose_threshold, format_threshold, printable_threshold
from galaxy_ray.merger.rule import MergerRule
from galaxy_ray.merger.truth import fit_calibration, merger_reliability
from galaxy_ray.model.spec import ModelSpec


def test_a_printable_threshold_selects_what_the_chosen_score_selects():
    # 0.46666667 stored, 0.4667 printed: 0.4667 would drop every galaxy on the tie at 0.46666667
    t = printable_threshold(0.46666667, below=0.42)
    assert t == 0.4666 and format_threshold(t) == "0.4666"
    assert printable_threshold(0.8, below=0.5) == 0.8  # float32(0.8) > 0.8: the comparison agrees
    # float32(0.11) < 0.11, so 0.11 would flag a float32(0.11) score in float32 and not in float64
    assert float(np.float32(0.11)) < 0.11
    t = printable_threshold(0.11, below=0.05)
    assert float(np.float32(0.1099)) < 0.1099  # so is the next 4-place decimal: a fifth place
    assert t == 0.10999 and float(np.float32(t)) >= t
    t = printable_threshold(0.30001, below=0.3)  # a small gap: more places
    assert 0.3 < t <= 0.30001 and float(np.float32(t)) >= t and len(format_threshold(t)) <= 8


def test_isotonic_ties_on_the_threshold_are_flagged_alike_by_the_rule_pandas_and_duckdb():
    rng = np.random.default_rng(7)
    raw = rng.uniform(0, 1, 3000)
    truth = rng.uniform(0, 1, 3000) < raw ** 2
    p = IsotonicCalibration.fit(raw, truth)(raw)  # runs of galaxies share one calibrated value
    assert len(np.unique(p)) < 200
    point = choose_threshold(truth, p)
    rule = MergerRule(output="merger", threshold=point.threshold, threshold_source="validation (F1-optimal)")
    flagged = rule.flag(p)
    assert flagged.sum() == point.true_positives + point.false_positives  # its rates describe its flags
    printed = float(format_threshold(rule.threshold))
    assert (p >= printed).sum() == flagged.sum()  # numpy/pandas: float32 against a Python float
    con = duckdb.connect()
    con.register("catalog", pa.table({"p_merger": pa.array(p, pa.float32())}))
    got = con.execute(f"SELECT count(*) FROM catalog WHERE p_merger >= {format_threshold(rule.threshold)}").fetchone()
    assert got[0] == flagged.sum()  # SQL: float32 promoted to double against the decimal


def test_calibration_is_scored_out_of_sample():
    """Uninformative scores: out of sample no calibration beats the base rate, and the report says so."""
    rng = np.random.default_rng(3)
    classes = list(schema.GALAXY10_CLASSES)
    spec = ModelSpec("resnet18", "classes", classes, PreprocessConfig(32), schema.GALAXY10_MERGER_CLASS)
    n, k = 300, len(classes)
    raw = rng.dirichlet(np.ones(k), n).astype(np.float32)  # scores that know nothing of the labels
    labels = rng.integers(0, k, n)
    y_true = np.eye(k, dtype=np.float32)[labels]
    fitted = ModelSpec.from_dict({**spec.to_dict(), "calibration": fit_calibration(spec, y_true, raw, None)})
    probs = probability_calibration(fitted.calibration)(raw)
    rel = merger_reliability(fitted, y_true, raw, probs, None)
    assert rel["calibrated"]["scored"].startswith("out of sample")
    # the best any map of a useless score can do for new galaxies is the base rate's entropy (by hand)
    base = float((labels == classes.index(schema.GALAXY10_MERGER_CLASS)).mean())
    entropy = -(base * np.log(base) + (1 - base) * np.log(1 - base))
    lo, hi = rel["calibrated"]["log_loss_95"]
    assert rel["calibrated"]["log_loss"] > entropy - 0.005 and lo < entropy + 0.02 < hi + 0.02
    assert rel["calibrated"]["exact_0_or_1"] == 0.0
