"""Merger calibrations that stay inside their evidence: Platt, beta, and isotonic shrunk toward beta.

Isotonic regression on a validation split with a few dozen mergers maps
every score below the lowest validation merger to exactly 0 and every score
above the highest non-merger to exactly 1: certainties no finite sample
supports, and a log loss that is infinite for the first new merger below
that score.  Niculescu-Mizil & Caruana (2005) find isotonic calibration
overfits below about a thousand calibration points and recommend Platt
scaling there.  The maps here:

- :class:`PlattCalibration`: ``p = sigmoid(a z + b)`` on ``z = logit(score)``
  (Platt 1999; on the log-odds of a probability-like score it is the
  ``a = b`` case of beta calibration, Kull et al. 2017).  Two parameters,
  fitted to Platt's smoothed targets ``(N+ + 1) / (N+ + 2)`` and
  ``1 / (N- + 2)``, so a separable validation set still gives finite
  parameters.
- :class:`BetaCalibration`: ``logit p = a ln s - b ln(1 - s) + c`` with
  ``a, b >= 0`` (monotone; Kull, Silva Filho & Flach 2017).  Three
  parameters; its family holds the identity and sigmoids of the log-odds,
  and it can bend differently at the two ends, which a score squeezed
  toward 0 for a 2% class needs.
- :class:`ShrunkIsotonicCalibration`: isotonic blocks whose frequency
  ``(k + m q) / (n + m)`` counts the beta fit's mean ``q`` as ``m``
  (:data:`SHRINK_PSEUDOCOUNT`) galaxies of evidence, then made monotone
  again: a block of 3 galaxies follows the parametric curve, one of 3,000
  its own frequency.

Every map clips its output to ``[floor, 1 - floor]`` with
``floor = 1 / (N + 2)`` for ``N`` calibration galaxies (Laplace's rule of
succession: after 0 successes in ``N`` trials the estimate is
``1 / (N + 2)``, not 0), never below :data:`MIN_FLOOR` (which float32 can
still tell from 0 and 1).  :func:`galaxy_ray.merger.choice.fit_merger_calibration`
chooses among them by cross-validated log loss.

References
----------
Platt, J. 1999, in Advances in Large Margin Classifiers, MIT Press, 61,
"Probabilistic outputs for support vector machines".
Niculescu-Mizil, A. & Caruana, R. 2005, ICML, "Predicting good probabilities
with supervised learning".
Kull, M., Silva Filho, T. & Flach, P. 2017, AISTATS (PMLR 54, 623), "Beta
calibration: a well-founded and easily implemented improvement on logistic
calibration for binary classifiers".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["MIN_FLOOR", "SHRINK_PSEUDOCOUNT", "BetaCalibration", "PlattCalibration", "ShrunkIsotonicCalibration",
           "evidence_floor"]

#: Smallest clip distance from 0 and 1: float32(1 - 1e-6) is still below 1.
MIN_FLOOR = 1e-6
#: Galaxies of evidence the beta fit counts for in each isotonic block (ShrunkIsotonicCalibration).
SHRINK_PSEUDOCOUNT = 10.0
#: Scores are clipped this far inside (0, 1) before a logarithm (a raw output can be exactly 0).
_SCORE_EPS = 1e-6


def evidence_floor(n: int) -> float:
    """``1 / (n + 2)``, at least :data:`MIN_FLOOR`: the least probability ``n`` calibration galaxies support."""
    return max(MIN_FLOOR, 1.0 / (int(n) + 2))


def _clean(score: np.ndarray, truth: np.ndarray | None = None):
    s = np.asarray(score, dtype=np.float64)
    if truth is None:
        return s
    y = np.asarray(truth, dtype=np.float64)
    keep = np.isfinite(s)
    return s[keep], y[keep]


def _platt_targets(y: np.ndarray) -> np.ndarray:
    """Platt's (1999) smoothed targets: a finite optimum even when validation is separable."""
    pos, neg = y.sum(), len(y) - y.sum()
    return np.where(y > 0.5, (pos + 1) / (pos + 2), 1 / (neg + 2))


def _fit_logistic(features: np.ndarray, target: np.ndarray, bounds: list) -> np.ndarray:
    """Weights ``w`` (last: intercept) minimising the cross-entropy of ``sigmoid(X w)`` against ``target``."""
    from scipy.optimize import minimize  # fitting only: model actors apply calibrations, never fit

    X = np.column_stack([features, np.ones(len(features))])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = X @ w
        # log(1 + e^z) - t z, stable for either sign of z
        value = np.logaddexp(0.0, z) - target * z
        grad = X.T @ (1.0 / (1.0 + np.exp(-z)) - target)
        return float(value.mean()), grad / len(z)

    w0 = np.zeros(X.shape[1])
    w0[:-1] = 1.0  # the identity map on the log-odds: where an already calibrated score should end
    result = minimize(loss, w0, jac=True, method="L-BFGS-B", bounds=bounds + [(None, None)])
    return result.x


def _logit(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, _SCORE_EPS, 1 - _SCORE_EPS)
    return np.log(s) - np.log1p(-s)


def _beta_features(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, _SCORE_EPS, 1 - _SCORE_EPS)
    return np.column_stack([np.log(s), -np.log1p(-s)])


def _apply(logits: np.ndarray, s: np.ndarray, floor: float) -> np.ndarray:
    p = np.clip(1.0 / (1.0 + np.exp(-logits)), floor, 1 - floor)
    return np.where(np.isfinite(s), p, np.nan).astype(np.float32)


@dataclass(frozen=True)
class PlattCalibration:
    """``p = sigmoid(a logit(score) + b)``, clipped to ``[floor, 1 - floor]`` (Platt 1999).

    Attributes
    ----------
    a, b : float
        Slope and intercept on the score's log-odds.
    floor : float
        Output clip (:func:`evidence_floor` of the calibration galaxies).
    """

    a: float
    b: float
    floor: float = MIN_FLOOR

    @classmethod
    def fit(cls, score: np.ndarray, truth: np.ndarray) -> "PlattCalibration":
        """Fit on scores in [0, 1] and 0/1 truth, shape (N,); NaN scores are left out."""
        s, y = _clean(score, truth)
        a, b = _fit_logistic(_logit(s)[:, None], _platt_targets(y), [(0.0, None)])
        return cls(float(a), float(b), evidence_floor(len(s)))

    def __call__(self, score: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape as ``score``, float32 (NaN stays NaN)."""
        s = _clean(score)
        return _apply(self.a * _logit(s) + self.b, s, self.floor)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", "a": self.a, "b": self.b, "floor": self.floor}


@dataclass(frozen=True)
class BetaCalibration:
    """``logit p = a ln s - b ln(1 - s) + c`` with ``a, b >= 0``, clipped (Kull et al. 2017).

    Attributes
    ----------
    a, b, c : float
        The beta calibration map's parameters.
    floor : float
        Output clip (:func:`evidence_floor` of the calibration galaxies).
    """

    a: float
    b: float
    c: float
    floor: float = MIN_FLOOR

    @classmethod
    def fit(cls, score: np.ndarray, truth: np.ndarray) -> "BetaCalibration":
        """Fit on scores in [0, 1] and 0/1 truth, shape (N,); NaN scores are left out."""
        s, y = _clean(score, truth)
        a, b, c = _fit_logistic(_beta_features(s), _platt_targets(y), [(0.0, None), (0.0, None)])
        return cls(float(a), float(b), float(c), evidence_floor(len(s)))

    def __call__(self, score: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape as ``score``, float32 (NaN stays NaN)."""
        s = _clean(score)
        f = _beta_features(s.ravel())
        return _apply((f @ np.array([self.a, self.b]) + self.c).reshape(s.shape), s, self.floor)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "beta", "a": self.a, "b": self.b, "c": self.c, "floor": self.floor}


def _blocks(s: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Indices (into sorted ``s``) of each block of the isotonic fit of ``y`` on ``s``."""
    from scipy.optimize import isotonic_regression

    knots, start, counts = np.unique(s, return_index=True, return_counts=True)
    means = np.add.reduceat(y, start) / counts
    fitted = isotonic_regression(means, weights=counts, increasing=True).x
    cut = np.r_[0, np.flatnonzero(np.diff(fitted) != 0) + 1, len(fitted)]
    bounds = np.r_[start, len(s)]
    return [np.arange(bounds[a], bounds[b]) for a, b in zip(cut[:-1], cut[1:])]


@dataclass(frozen=True)
class ShrunkIsotonicCalibration:
    """Isotonic regression whose blocks are shrunk toward a beta fit, interpolated between knots.

    Attributes
    ----------
    scores, frequencies : tuple of float
        Knots (each block's lowest and highest score) and their shrunk frequencies.
    floor : float
        Output clip (:func:`evidence_floor` of the calibration galaxies).
    """

    scores: tuple[float, ...]
    frequencies: tuple[float, ...]
    floor: float = MIN_FLOOR

    @classmethod
    def fit(cls, score: np.ndarray, truth: np.ndarray,
            pseudocount: float = SHRINK_PSEUDOCOUNT) -> "ShrunkIsotonicCalibration":
        """Fit on scores in [0, 1] and 0/1 truth, shape (N,); ``pseudocount`` is ``m`` of the module text."""
        from scipy.optimize import isotonic_regression

        s, y = _clean(score, truth)
        order = np.argsort(s, kind="stable")
        s, y = s[order], y[order]
        prior = BetaCalibration.fit(s, y)(s).astype(np.float64)
        blocks = _blocks(s, y)
        n = np.array([len(b) for b in blocks], dtype=np.float64)
        shrunk = np.array([(y[b].sum() + pseudocount * prior[b].mean()) / (len(b) + pseudocount) for b in blocks])
        # the beta means rise along the blocks but the weights n / (n + m) differ: restore monotonicity
        shrunk = isotonic_regression(shrunk, weights=n + pseudocount, increasing=True).x
        knots = [(float(s[b[0]]), float(s[b[-1]]), float(v)) for b, v in zip(blocks, shrunk)]
        scores = tuple(x for lo, hi, _ in knots for x in ((lo,) if lo == hi else (lo, hi)))
        freqs = tuple(v for lo, hi, v in knots for _ in ((lo,) if lo == hi else (lo, hi)))
        return cls(scores, freqs, evidence_floor(len(s)))

    def __call__(self, score: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape as ``score``, float32 (NaN stays NaN)."""
        s = _clean(score)
        p = np.clip(np.interp(s, self.scores, self.frequencies), self.floor, 1 - self.floor)
        return np.where(np.isfinite(s), p, np.nan).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "isotonic-shrunk", "scores": list(self.scores), "frequencies": list(self.frequencies),
                "floor": self.floor}
