"""merger_precision_recall.png is drawn for every operating point training can store."""

from __future__ import annotations

from PIL import Image

from galaxy_ray.evaluate.plots import plot_precision_recall

CURVE = {"threshold": [0.9, 0.5, 0.1], "tp": [1, 2, 2], "fp": [0, 0, 5]}


def test_a_wilson_bound_a_rounding_error_inside_the_point_still_draws(tmp_path):
    # recall 1 with an upper bound of 1 - 1e-16 (Wilson's formula in floating point): a negative bar
    merger = {"curve": CURVE, "positives": 2, "negatives": 5, "threshold": 0.5, "rule": "f1",
              "precision": 1.0, "recall": 1.0, "precision_interval": [0.34, 1.0 - 1e-16],
              "recall_interval": [0.34, 1.0 - 1e-16]}
    out = tmp_path / "pr.png"
    plot_precision_recall(merger, str(out))
    assert Image.open(out).size[0] > 100


def test_a_fallback_threshold_without_rates_draws_the_curve_alone(tmp_path):
    merger = {"curve": CURVE, "positives": 0, "negatives": 7, "threshold": 0.5,
              "reason": "no merger in the validation split"}
    out = tmp_path / "pr.png"
    plot_precision_recall(merger, str(out))
    assert Image.open(out).size[0] > 100
