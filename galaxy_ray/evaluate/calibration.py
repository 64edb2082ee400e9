"""Reliability of probabilities, and the calibration maps fitted on the validation split.

The maps themselves (:class:`TemperatureCalibration`, :class:`IsotonicCalibration`)
live in :mod:`galaxy_ray.model.calibration`, beside the Predictor that applies
them; this module measures how well probabilities match frequencies.

References
----------
Guo, C. et al. 2017, ICML, "On calibration of modern neural networks" (reliability
diagrams, expected calibration error).
"""

from __future__ import annotations

import numpy as np

from galaxy_ray.model.calibration import IsotonicCalibration, TemperatureCalibration, calibration_from_dict

__all__ = ["IsotonicCalibration", "TemperatureCalibration", "calibration_from_dict", "reliability"]


def reliability(score: np.ndarray, truth: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Reliability-diagram points: mean score and observed frequency per score bin.

    Parameters
    ----------
    score : array, shape (N,)
        Predicted probabilities in [0, 1].
    truth : array of bool, shape (N,)
    bins : int
        Equal-width bins over [0, 1].

    Returns
    -------
    dict of arrays, shape (bins,)
        ``mean_score``, ``frequency`` (NaN for empty bins) and ``count``; and
        ``ece``, the expected calibration error (count-weighted mean gap).
    """
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    keep = np.isfinite(s)
    s, y = s[keep], y[keep]
    which = np.clip((s * bins).astype(int), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_score = np.bincount(which, s, minlength=bins) / count
        frequency = np.bincount(which, y, minlength=bins) / count
    gap = np.nan_to_num(np.abs(mean_score - frequency))
    return {"mean_score": mean_score, "frequency": frequency, "count": count,
            "ece": float((gap * count).sum() / max(count.sum(), 1))}
