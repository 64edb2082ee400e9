"""Which merger calibration: the one with the best out-of-sample log loss on the validation split.

The candidates (:mod:`galaxy_ray.merger.parametric`) run from two
parameters (Platt) through three (beta) to one per isotonic block (isotonic
shrunk toward beta).  Each is fitted on all folds of the validation split but
one and scored on that one (stratified folds, so each holds its share of the
few mergers); the per-galaxy log losses of the held-out galaxies are compared
in pairs, and the *simplest* candidate whose mean loss is within one standard
error of the best one's is kept (the one-standard-error rule of Breiman et al.
1984 and Hastie, Tibshirani & Friedman 2009, sect. 7.10): with a few dozen
mergers the richer maps rarely beat Platt by more than their noise, which is
Niculescu-Mizil & Caruana's (2005) finding.  The choice is refitted on the
whole split and stored with its cross-validated losses.

With fewer than :data:`MIN_FOLD_POSITIVES` mergers (or non-mergers) per fold
there is nothing to cross-validate, and Platt scaling, the least flexible
map, is used without comparison (the stored ``selection`` says so).

References
----------
Niculescu-Mizil, A. & Caruana, R. 2005, ICML, "Predicting good probabilities
with supervised learning".
Hastie, T., Tibshirani, R. & Friedman, J. 2009, The Elements of Statistical
Learning, 2nd ed., sect. 7.10 (the one-standard-error rule).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from galaxy_ray.merger.parametric import BetaCalibration, PlattCalibration, ShrunkIsotonicCalibration

__all__ = ["CANDIDATES", "MIN_FOLD_POSITIVES", "SELECTION_FOLDS", "fit_merger_calibration", "log_losses",
           "stratified_folds"]

#: Candidate maps, simplest first (the order the one-standard-error rule prefers).
CANDIDATES = {"platt": PlattCalibration, "beta": BetaCalibration, "isotonic-shrunk": ShrunkIsotonicCalibration}
#: Folds of the validation split the candidates are compared over.
SELECTION_FOLDS = 5
#: Fewest mergers (and non-mergers) per fold for a comparison: below it a fold's loss is one galaxy's luck.
MIN_FOLD_POSITIVES = 2
#: Probabilities are clipped this far from 0 and 1 in a log loss, so a map that says 0 for a merger scores
#: ln(1e7) = 16 nats for it rather than infinity (isotonic regression does; the loss must stay comparable).
LOSS_EPS = 1e-7


def log_losses(p: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-galaxy log loss (nats), float64 (N,), with ``p`` clipped to ``[LOSS_EPS, 1 - LOSS_EPS]``."""
    p = np.clip(np.asarray(p, dtype=np.float64), LOSS_EPS, 1 - LOSS_EPS)
    y = np.asarray(truth, dtype=bool)
    return np.where(y, -np.log(p), -np.log1p(-p))


def stratified_folds(truth: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """Fold index per galaxy, int (N,): mergers and non-mergers each dealt round-robin after a seeded shuffle."""
    y = np.asarray(truth, dtype=bool)
    fold = np.empty(len(y), dtype=int)
    rng = np.random.default_rng(seed)
    for group in (np.flatnonzero(y), np.flatnonzero(~y)):
        fold[rng.permutation(group)] = np.arange(len(group)) % folds
    return fold


def _cross_validated_losses(s: np.ndarray, y: np.ndarray, folds: int, seed: int) -> dict[str, np.ndarray]:
    fold = stratified_folds(y, folds, seed)
    losses = {name: np.empty(len(s)) for name in CANDIDATES}
    for k in range(folds):
        held = fold == k
        for name, cls in CANDIDATES.items():
            losses[name][held] = log_losses(cls.fit(s[~held], y[~held])(s[held]), y[held])
    return losses


def _one_standard_error(losses: dict[str, np.ndarray]) -> str:
    """The simplest candidate whose mean loss exceeds the best's by at most the paired difference's standard error."""
    best = min(losses, key=lambda name: losses[name].mean())
    for name in CANDIDATES:  # simplest first
        diff = losses[name] - losses[best]
        if diff.mean() <= diff.std(ddof=1) / np.sqrt(len(diff)):
            return name
    return best


def fit_merger_calibration(score: np.ndarray, truth: np.ndarray, folds: int = SELECTION_FOLDS,
                           seed: int = 0) -> tuple[Any, dict[str, Any]]:
    """The merger calibration chosen by cross-validated log loss, fitted on all of ``score``.

    Parameters
    ----------
    score : array, shape (N,)
        The uncalibrated merger output on validation (NaN rows are left out).
    truth : array of bool, shape (N,)
        True mergers.
    folds : int
        Folds of the comparison (fewer when there are too few mergers).
    seed : int
        Seed of the fold assignment.

    Returns
    -------
    (calibration, selection)
        The fitted map (``to_dict`` stores it) and a JSON-ready dict: ``rule``,
        ``folds``, ``positives``, ``negatives``, ``log_loss`` (mean held-out
        nats per candidate, or None when not compared).
    """
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(truth, dtype=bool)
    s, y = s[np.isfinite(s)], y[np.isfinite(s)]
    positives, negatives = int(y.sum()), int((~y).sum())
    k = min(folds, positives // MIN_FOLD_POSITIVES, negatives // MIN_FOLD_POSITIVES)
    selection: dict[str, Any] = {"positives": positives, "negatives": negatives}
    if k < 2:
        name = "platt"
        selection.update(folds=0, log_loss=None,
                         rule=f"platt without comparison: {positives} mergers and {negatives} non-mergers are too "
                              f"few for {MIN_FOLD_POSITIVES} of each in each of 2 folds")
    else:
        losses = _cross_validated_losses(s, y, k, seed)
        name = _one_standard_error(losses)
        selection.update(folds=k, log_loss={n: float(v.mean()) for n, v in losses.items()},
                         rule=f"simplest within one standard error of the lowest {k}-fold cross-validated log loss")
    return CANDIDATES[name].fit(s, y), selection
