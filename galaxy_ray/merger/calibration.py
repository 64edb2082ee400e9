"""Calibrated probabilities: the maps fitted on the validation split and applied wherever a model predicts.

A network trained with class weights, or on vote fractions, does not output
probabilities that match frequencies: among galaxies with ``p_merger = 0.3``
far more or fewer than 30% may be mergers.  The fixes:

- **Temperature scaling** for class probabilities (Guo et al. 2017): one
  parameter T divides the log-probabilities before the softmax.  It keeps the
  ranking (so accuracy, the confusion matrix and the chosen threshold's
  selection are unchanged) and cannot overfit a small validation set.
- For the single score ``p_merger``, a map chosen by cross-validated log
  loss among Platt scaling, beta calibration and isotonic regression shrunk
  toward beta (:mod:`galaxy_ray.merger.parametric`,
  :mod:`galaxy_ray.merger.choice`).  Each keeps its output inside
  ``[1 / (N + 2), 1 - 1 / (N + 2)]`` for ``N`` validation galaxies: no
  finite validation split supports a merger probability of exactly 0 or 1.
- **Isotonic regression** (Zadrozny & Elkan 2002), the monotone step
  function of the score closest to the 0/1 truth, was the merger map of
  checkpoints written before that choice; :class:`IsotonicCalibration` still
  applies it, unchanged, so their catalogs reproduce.  It is no longer
  fitted: with a few dozen validation mergers it maps whole ranges of scores
  to exactly 0 or 1 (Niculescu-Mizil & Caruana 2005).

A model's calibration lives in its spec (:attr:`galaxy_ray.model.spec.ModelSpec.calibration`,
stored in the checkpoint): ``{"probabilities": <temperature or None>,
"merger": <map or None>}``, so every caller of
:class:`galaxy_ray.model.predict.Predictor` and
:func:`galaxy_ray.model.outputs.merger_probability` gets the same numbers.

References
----------
Guo, C. et al. 2017, ICML, "On calibration of modern neural networks".
Zadrozny, B. & Elkan, C. 2002, KDD, "Transforming classifier scores into
accurate multiclass probability estimates".
Niculescu-Mizil, A. & Caruana, R. 2005, ICML, "Predicting good probabilities
with supervised learning".
Platt, J. 1999, "Probabilistic outputs for support vector machines".
Kull, M., Silva Filho, T. & Flach, P. 2017, AISTATS, "Beta calibration".
Naeini, M. P., Cooper, G. & Hauskrecht, M. 2015, AAAI (expected calibration error).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.merger.parametric import BetaCalibration, PlattCalibration, ShrunkIsotonicCalibration

__all__ = ["reliability", "IsotonicCalibration", "TemperatureCalibration", "calibration_from_dict", "describe",
           "merger_calibration", "probability_calibration", "scores_with_intervals"]

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
    """The calibration stored by ``to_dict``, or None.

    Raises
    ------
    GalaxyRayError
        A stored map of an unknown method, or missing its parameters (a damaged or hand-edited checkpoint).
    """
    if not d:
        return None
    method = d.get("method", "isotonic") if isinstance(d, Mapping) else None
    try:
        if method == "temperature":
            return TemperatureCalibration(float(d["temperature"]))
        if method == "isotonic":  # checkpoints written before the merger map was chosen by log loss
            return IsotonicCalibration(tuple(map(float, d["scores"])), tuple(map(float, d["frequencies"])))
        if method == "platt":
            return PlattCalibration(float(d["a"]), float(d["b"]), float(d["floor"]))
        if method == "beta":
            return BetaCalibration(float(d["a"]), float(d["b"]), float(d["c"]), float(d["floor"]))
        if method == "isotonic-shrunk":
            return ShrunkIsotonicCalibration(tuple(map(float, d["scores"])), tuple(map(float, d["frequencies"])),
                                             float(d["floor"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise GalaxyRayError(f"checkpoint calibration {method!r}: missing or malformed parameter ({exc}); "
                             "retrain, or remove the calibration from the spec") from None
    raise GalaxyRayError(f"checkpoint calibration {d!r:.80}: unknown method; expected temperature, isotonic, "
                         "platt, beta or isotonic-shrunk")


#: What each stored merger map is, in the words provenance and summaries use.
_DESCRIPTION = {"isotonic": "isotonic regression (outputs can be exactly 0 or 1)",
                "platt": "Platt scaling", "beta": "beta calibration",
                "isotonic-shrunk": "isotonic regression shrunk toward beta calibration"}


def describe(d: Mapping[str, Any] | None) -> str | None:
    """The stored merger map in words, with how it was chosen; None without one."""
    if not d:
        return None
    method = d.get("method", "isotonic") if isinstance(d, Mapping) else str(d)
    text = _DESCRIPTION.get(method, str(method))
    selection = d.get("selection") if isinstance(d, Mapping) else None
    if selection and selection.get("rule"):
        text += f", {selection['rule']}"
    if isinstance(d, Mapping) and "floor" in d:
        text += f"; outputs within [{float(d['floor']):.2g}, 1 - {float(d['floor']):.2g}]"
    return text


def merger_calibration(calibration: Mapping[str, Any] | None):
    """The ``p_merger`` map of a spec's ``calibration`` (None: the score as it is)."""
    return calibration_from_dict((calibration or {}).get("merger"))


def probability_calibration(calibration: Mapping[str, Any] | None):
    """The class-probability map of a spec's ``calibration`` (None: probabilities as they are)."""
    return calibration_from_dict((calibration or {}).get("probabilities"))


def reliability(score: np.ndarray, truth: np.ndarray, bins: int = 10,
                confidence: float = 0.95) -> dict[str, np.ndarray]:
    """Reliability-diagram points: mean score and observed frequency per score bin, with binomial intervals.

    Parameters
    ----------
    score : array, shape (N,)
        Predicted probabilities in [0, 1].
    truth : array of bool, shape (N,)
    bins : int
        Equal-width bins over [0, 1].
    confidence : float
        Coverage of each bin's interval.

    Returns
    -------
    dict of arrays, shape (bins,)
        ``mean_score``, ``frequency`` (NaN for empty bins), ``count``, and
        ``frequency_lo`` / ``frequency_hi``: the Wilson (1927) interval of each
        bin's frequency (``astropy.stats.binom_conf_interval``; NaN when
        empty), the error bar a bin of 5 galaxies needs; and ``ece``, the
        expected calibration error (count-weighted mean gap; Naeini et al. 2015).
    """
    from astropy.stats import binom_conf_interval  # here, not at the top: model actors import this module

    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    keep = np.isfinite(s)
    s, y = s[keep], y[keep]
    which = np.clip((s * bins).astype(int), 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    hits = np.bincount(which, y, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_score = np.bincount(which, s, minlength=bins) / count
        frequency = hits / count
    lo, hi = np.full(bins, np.nan), np.full(bins, np.nan)
    some = count > 0
    if some.any():
        lo[some], hi[some] = binom_conf_interval(np.round(hits[some]).astype(int), count[some],
                                                 confidence_level=confidence, interval="wilson")
    gap = np.nan_to_num(np.abs(mean_score - frequency))
    return {"mean_score": mean_score, "frequency": frequency, "count": count, "frequency_lo": lo,
            "frequency_hi": hi, "ece": float((gap * count).sum() / max(count.sum(), 1))}


def _ece_draws(s: np.ndarray, y: np.ndarray, index: np.ndarray, bins: int) -> np.ndarray:
    """ECE of each bootstrap resample (rows of ``index``), float64 (D,)."""
    which = np.clip((s * bins).astype(int), 0, bins - 1)
    draw = np.repeat(np.arange(len(index)), index.shape[1])
    flat = draw * bins + which[index].ravel()
    size = len(index) * bins
    count = np.bincount(flat, minlength=size).reshape(-1, bins)
    gap = np.abs(np.bincount(flat, s[index].ravel(), size) - np.bincount(flat, y[index].ravel(), size))
    return gap.reshape(-1, bins).sum(axis=1) / np.maximum(count.sum(axis=1), 1)


def scores_with_intervals(p: np.ndarray, truth: np.ndarray, bins: int = 10, draws: int = 1000,
                          confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Log loss and ECE of probabilities ``p`` against ``truth``, each with a bootstrap interval.

    Parameters
    ----------
    p : array, shape (N,)
        Probabilities (NaN rows are left out); for an honest figure, out of
        sample (:func:`galaxy_ray.merger.truth.cross_fitted_merger_probability`).
    truth : array of bool, shape (N,)
    bins, draws, confidence, seed
        ECE bins; bootstrap resamples of the galaxies (percentile intervals,
        Efron & Tibshirani 1993), their coverage and seed.

    Returns
    -------
    dict
        ``log_loss`` (mean nats per galaxy, ``p`` clipped 1e-7 from 0 and 1, so
        a merger given exactly 0 costs 16 nats), ``log_loss_95``, ``ece``,
        ``ece_95`` ([lo, hi]), and ``exact_0_or_1`` (the share of ``p`` that is
        exactly 0 or 1).
    """
    from galaxy_ray.merger.choice import log_losses

    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(truth, dtype=bool)
    keep = np.isfinite(p)
    p, y = p[keep], y[keep]
    if not len(p):
        return {"log_loss": None, "log_loss_95": None, "ece": None, "ece_95": None, "exact_0_or_1": None}
    loss = log_losses(p, y)
    index = np.random.default_rng(seed).integers(0, len(p), size=(draws, len(p)))
    alpha = (1 - confidence) / 2
    loss_draws = loss[index].mean(axis=1)
    ece_draws = _ece_draws(p, y.astype(np.float64), index, bins)
    return {"log_loss": float(loss.mean()),
            "log_loss_95": [float(v) for v in np.quantile(loss_draws, [alpha, 1 - alpha])],
            "ece": reliability(p, y, bins)["ece"],
            "ece_95": [float(v) for v in np.quantile(ece_draws, [alpha, 1 - alpha])],
            "exact_0_or_1": float(((p == 0) | (p == 1)).mean())}
