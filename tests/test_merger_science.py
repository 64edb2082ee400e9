"""The merger flag's statistics: the operating threshold, calibration, corrected fractions.

Everything here is numpy-level statistics checked against answers worked out
independently (by hand, or by brute force over every threshold).
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import binom_conf_interval

from galaxy_ray.merger.fractions import corrected_fraction
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.merger.calibration import IsotonicCalibration, TemperatureCalibration, reliability
from galaxy_ray.merger.operating import choose_threshold, precision_recall_curve


def test_f1_optimal_threshold_known_by_construction():
    # Mergers score 0.8, 0.7, 0.6, 0.4; non-mergers 0.9, 0.5, 0.3, 0.2, 0.1.  By hand:
    #   t=0.9: P=0,   R=0    F1=0
    #   t=0.8: P=1/2, R=1/4  F1=1/3
    #   t=0.7: P=2/3, R=2/4  F1=4/7
    #   t=0.6: P=3/4, R=3/4  F1=3/4
    #   t=0.5: P=3/5, R=3/4  F1=2/3
    #   t=0.4: P=4/6, R=1    F1=4/5   <- optimal
    #   t=0.3: P=4/7, R=1    F1=8/11
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    p = np.array([0.8, 0.7, 0.6, 0.4, 0.9, 0.5, 0.3, 0.2, 0.1])
    op = choose_threshold(y, p)
    assert op.threshold == pytest.approx(0.4) and op.rule == "f1"
    assert op.precision == pytest.approx(4 / 6) and op.recall == 1.0 and op.f1 == pytest.approx(0.8)
    assert op.false_positive_rate == pytest.approx(2 / 5)
    lo, hi = binom_conf_interval(4, 6, confidence_level=0.95, interval="wilson")
    assert op.precision_interval == pytest.approx((lo, hi))


def test_f1_optimum_matches_brute_force_over_every_threshold():
    rng = np.random.default_rng(5)
    y = rng.random(400) < 0.1
    p = np.clip(rng.normal(np.where(y, 0.6, 0.3), 0.15), 0, 1).round(3)
    best_f1, best_t = -1.0, None
    for t in np.unique(p):
        flag = p >= t
        tp = (flag & y).sum()
        f1 = 2 * tp / (flag.sum() + y.sum())
        if f1 > best_f1 + 1e-12:
            best_f1, best_t = f1, t
    op = choose_threshold(y, p)
    assert op.f1 == pytest.approx(best_f1) and op.threshold == pytest.approx(best_t)


def test_precision_target_takes_the_lowest_threshold_that_meets_it():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    p = np.array([0.8, 0.7, 0.6, 0.4, 0.9, 0.5, 0.3, 0.2, 0.1])
    # Precision >= 0.7 holds at t = 0.6 (3/4) and nowhere lower (t=0.5: 3/5; t=0.4: 4/6).
    op = choose_threshold(y, p, precision=0.7)
    assert op.threshold == pytest.approx(0.6) and op.recall == pytest.approx(0.75)
    with pytest.raises(GalaxyRayError, match="no threshold reaches it"):
        choose_threshold(y, p, precision=0.99)
    with pytest.raises(GalaxyRayError, match="holds no merger"):
        choose_threshold(np.zeros(5, bool), p[:5])


def test_precision_recall_curve_counts_ties_together():
    curve = precision_recall_curve(np.array([1, 0, 1, 0], bool), np.array([0.5, 0.5, 0.2, 0.1]))
    assert curve["threshold"].tolist() == [0.5, 0.2, 0.1]
    assert curve["tp"].tolist() == [1, 2, 2] and curve["fp"].tolist() == [1, 1, 2]


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 4))
    true_p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(4, p=row) for row in true_p])
    overconfident = np.exp(logits * 3) / np.exp(logits * 3).sum(1, keepdims=True)  # T = 1/3 too sharp
    cal = TemperatureCalibration.fit(overconfident, labels)
    assert cal.temperature == pytest.approx(3.0, rel=0.1)
    fixed = cal(overconfident)
    assert np.array_equal(fixed.argmax(1), overconfident.argmax(1))  # ranking kept
    assert np.allclose(fixed.sum(1), 1, atol=1e-5)


def test_isotonic_calibration_makes_scores_match_frequencies():
    rng = np.random.default_rng(1)
    score = rng.random(20000)
    truth = rng.random(20000) < score**3  # true probability is score cubed
    cal = IsotonicCalibration.fit(score, truth)
    grid = np.array([0.2, 0.5, 0.8, 0.95])
    assert np.allclose(cal(grid), grid**3, atol=0.04)
    before, after = reliability(score, truth)["ece"], reliability(cal(score), truth)["ece"]
    assert after < 0.02 < before
    assert np.isnan(cal(np.array([np.nan]))[0])


def _classify(rng, true_merger, completeness, fpr):
    return np.where(true_merger, rng.random(len(true_merger)) < completeness, rng.random(len(true_merger)) < fpr)


def test_corrected_fraction_interval_covers_the_truth_where_the_raw_one_does_not():
    """Seeded synthetic classifiers with known completeness and false-positive rates."""
    rng = np.random.default_rng(2024)
    covered = raw_covered = 0
    repeats = 200
    for r in range(repeats):
        f_true = rng.uniform(0.02, 0.15)
        c, e = rng.uniform(0.6, 0.9), rng.uniform(0.01, 0.05)
        val_truth = rng.random(1500) < 0.1
        val_flag = _classify(rng, val_truth, c, e)
        cat_truth = rng.random(20000) < f_true
        cat_flag = _classify(rng, cat_truth, c, e)
        est = corrected_fraction(int(cat_flag.sum()), len(cat_flag), val_positives=int(val_truth.sum()),
                                 val_true_positives=int((val_flag & val_truth).sum()),
                                 val_negatives=int((~val_truth).sum()),
                                 val_false_positives=int((val_flag & ~val_truth).sum()), draws=1000, seed=r)
        lo, hi = est["interval"]
        covered += lo <= cat_truth.mean() <= hi
        raw_lo, raw_hi = binom_conf_interval(int(cat_flag.sum()), len(cat_flag), confidence_level=0.95,
                                             interval="wilson")
        raw_covered += raw_lo <= cat_truth.mean() <= raw_hi
    assert covered / repeats >= 0.90
    assert raw_covered / repeats < 0.5


def test_corrected_fraction_is_nan_when_the_classifier_cannot_tell_mergers_apart():
    est = corrected_fraction(50, 1000, val_positives=20, val_true_positives=2, val_negatives=200,
                             val_false_positives=40)
    assert np.isnan(est["fraction"])
    exact = corrected_fraction(100, 1000, val_positives=100, val_true_positives=80, val_negatives=900,
                               val_false_positives=18)
    assert exact["fraction"] == pytest.approx((0.1 - 0.02) / (0.8 - 0.02))
