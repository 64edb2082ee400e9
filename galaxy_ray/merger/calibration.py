"""Calibrated probabilities: the maps fitted on the validation split and applied wherever a model predicts.

A network trained with class weights, or on vote fractions, does not output
probabilities that match frequencies: among galaxies with ``p_merger = 0.3``
far more or fewer than 30% may be mergers.  Two standard fixes:

- **Temperature scaling** for class probabilities (Guo et al. 2017): one
  parameter T divides the log-probabilities before the softmax.  It keeps the
  ranking (so accuracy, the confusion matrix and the chosen threshold's
  selection are unchanged) and cannot overfit a small validation set.
- **Isotonic regression** for a single score such as ``p_merger`` (Zadrozny &
  Elkan 2002): the monotone step function of the score closest to the 0/1
  truth.  It needs no shape assumption, which matters because a GZ2 vote
  fraction is not a logit of anything, and because one temperature cannot
  undo the prior shift that class weights put on a 2% class.  scipy's
  pool-adjacent-violators implementation does the fit.

A model's calibration lives in its spec (:attr:`galaxy_ray.model.spec.ModelSpec.calibration`,
stored in the checkpoint): ``{"probabilities": <temperature or None>,
"merger": <isotonic or None>}``, so every caller of
:class:`galaxy_ray.model.predict.Predictor` and
:func:`galaxy_ray.model.outputs.merger_probability` gets the same numbers.

References
----------
Guo, C. et al. 2017, ICML, "On calibration of modern neural networks".
Zadrozny, B. & Elkan, C. 2002, KDD, "Transforming classifier scores into
accurate multiclass probability estimates".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

__all__ = ["reliability", "IsotonicCalibration", "TemperatureCalibration", "calibration_from_dict", "merger_calibration",
           "probability_calibration"]

_EPS = 1e-7


@dataclass(frozen=True)
class TemperatureCalibration:
    """Class probabilities ``softmax(log p / T)``.

    Attributes
    ----------
    temperature : float
        T > 1 softens over-confident probabilities, T < 1 sharpens them.
    """

    temperature: float = 1.0

    @classmethod
    def fit(cls, probs: np.ndarray, labels: np.ndarray) -> "TemperatureCalibration":
        """The T in [0.05, 20] that minimises the validation negative log-likelihood.

        Parameters
        ----------
        probs : array, shape (N, K)
            Uncalibrated class probabilities.
        labels : array of int, shape (N,)
            True class indices.
        """
        from scipy.optimize import minimize_scalar  # fitting only: model actors apply calibrations, never fit

        logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0))
        labels = np.asarray(labels, dtype=int)

        def nll(log_t: float) -> float:
            z = logp / np.exp(log_t)
            z = z - z.max(axis=1, keepdims=True)
            return float(-(z[np.arange(len(z)), labels] - np.log(np.exp(z).sum(axis=1))).mean())

        result = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
        return cls(float(np.exp(result.x)))

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, shape (N, K), float32."""
        z = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0)) / self.temperature
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "temperature", "temperature": self.temperature}


@dataclass(frozen=True)
class IsotonicCalibration:
    """A monotone map from a score to the frequency of positives, by linear interpolation.

    Attributes
    ----------
    scores, frequencies : tuple of float
        The fitted step function's knots (scores ascending).
    """

    scores: tuple[float, ...]
    frequencies: tuple[float, ...]

    @classmethod
    def fit(cls, score: np.ndarray, truth: np.ndarray) -> "IsotonicCalibration":
        """Isotonic regression of the 0/1 ``truth`` on ``score`` (shapes (N,))."""
        from scipy.optimize import isotonic_regression  # fitting only, as above

        s = np.asarray(score, dtype=np.float64)
        y = np.asarray(truth, dtype=np.float64)
        keep = np.isfinite(s)
        s, y = s[keep], y[keep]
        order = np.argsort(s, kind="stable")
        s, y = s[order], y[order]
        # Tied scores must map to one value: fit on their means, weighted by their counts.
        knots, start, counts = np.unique(s, return_index=True, return_counts=True)
        means = np.add.reduceat(y, start) / counts if len(s) else np.array([])
        fitted = isotonic_regression(means, weights=counts, increasing=True).x if len(s) else means
        # Inside a flat block only its two ends matter to the interpolation: keep those, so a
        # checkpoint stores a few dozen knots, not one per validation galaxy.
        edge = np.ones(len(fitted), dtype=bool)
        if len(fitted) > 2:
            edge[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
        return cls(tuple(map(float, knots[edge])), tuple(map(float, fitted[edge])))

    def __call__(self, score: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape as ``score``, float32 (NaN stays NaN)."""
        s = np.asarray(score, dtype=np.float64)
        if not self.scores:
            return s.astype(np.float32)
        out = np.interp(s, self.scores, self.frequencies)
        return np.where(np.isfinite(s), out, np.nan).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "isotonic", "scores": list(self.scores), "frequencies": list(self.frequencies)}


def calibration_from_dict(d: Mapping[str, Any] | None):
    """The calibration stored by ``to_dict``, or None."""
    if not d:
        return None
    if d["method"] == "temperature":
        return TemperatureCalibration(float(d["temperature"]))
    return IsotonicCalibration(tuple(d["scores"]), tuple(d["frequencies"]))


def merger_calibration(calibration: Mapping[str, Any] | None):
    """The ``p_merger`` map of a spec's ``calibration`` (None: the score as it is)."""
    return calibration_from_dict((calibration or {}).get("merger"))


def probability_calibration(calibration: Mapping[str, Any] | None):
    """The class-probability map of a spec's ``calibration`` (None: probabilities as they are)."""
    return calibration_from_dict((calibration or {}).get("probabilities"))


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
