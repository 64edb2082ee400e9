"""What the merger flag is worth: truth on validation, calibration, operating point, reliability.

At the end of training, on the validation split:

1. **truth**: for class labels, the merger class; for GZ2 vote fractions, a
   volunteer vote cut, ``Class8.6 > 0.4`` (:data:`MERGER_VOTE_CUT`).  Class8.6
   is the cumulative fraction of *all* volunteers who answered "merger" to
   "is there anything odd?" (odd x merger), the GZ2 counterpart of Galaxy Zoo 1's
   merger vote fraction f_m, and Darg et al. (2010) built their catalogue of
   3003 GZ1 mergers from galaxies with f_m > 0.4.  Cuts elsewhere in the
   literature range from 0.3 to 0.6; ``--merger-vote-cut`` changes it, and the
   rule is stored with every number it produced.
2. **calibration**: temperature scaling of class probabilities (one parameter,
   keeps the ranking) and a map of the merger output to ``p_merger`` chosen
   by cross-validated log loss among Platt, beta and shrunk isotonic
   calibration (:mod:`galaxy_ray.merger.calibration` says why).
3. **operating point**: the F1-optimal threshold on the calibrated ``p_merger``,
   or the lowest meeting ``--merger-precision`` (:mod:`galaxy_ray.merger.operating`).

The rates are measured on the same validation galaxies the threshold and the
calibration were fitted on, so they are slightly optimistic; their Wilson
intervals, and the bootstrap of :func:`galaxy_ray.merger.fractions.corrected_fraction`,
carry their sampling noise but not that selection.

References
----------
Darg, D. W. et al. 2010, MNRAS 401, 1043, "Galaxy Zoo: the fraction of merging
galaxies in the SDSS and their morphologies".
Willett, K. W. et al. 2013, MNRAS 435, 2835 (the GZ2 tree and its vote fractions).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import numpy as np

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.merger.calibration import (TemperatureCalibration, describe, probability_calibration, reliability,
                                           scores_with_intervals)
from galaxy_ray.merger.choice import fit_merger_calibration
from galaxy_ray.merger.score import merger_probability, merger_score
from galaxy_ray.tasks.gz2 import VOTE_CUT_REFERENCE
from galaxy_ray.merger.operating import (choose_from_curve, curve_to_dict, format_threshold, point_at,
                                         precision_recall_curve)

__all__ = ["CALIBRATION_FOLDS", "MERGER_VOTE_CUT", "VOTE_CUT_REFERENCE", "choose_operating_point", "classes_reliability",
           "cross_fitted_merger_probability", "fit_calibration", "merger_reliability", "operating_summary", "true_mergers", "truth_rule"]

#: GZ2 truth on validation: a galaxy is a merger when its Class8.6 vote fraction exceeds this.
MERGER_VOTE_CUT = 0.4


def truth_rule(spec, vote_cut: float | None) -> str:
    """The sentence stored with every merger rate: what counted as a true merger (the task's words)."""
    return spec.task_of.truth_rule(spec, vote_cut)


def true_mergers(spec, y_true: np.ndarray, vote_cut: float | None) -> np.ndarray:
    """The truth per row, bool (N,), from evaluation targets (votes, or one-hot classes), shape (N, K).

    ``vote_cut`` is the rule's (:attr:`galaxy_ray.merger.rule.MergerRule.vote_cut`,
    training's ``--merger-vote-cut``); class labels need none (their one-hot target is above 0.5).
    """
    task = spec.task_of
    if task.vote_truth and vote_cut is None:
        raise GalaxyRayError(f"{spec.task} merger truth needs the rule's vote cut (MergerRule.vote_cut)")
    return task.merger_truth_values(spec, y_true) > (vote_cut if task.vote_truth else 0.5)


def fit_calibration(spec, y_true: np.ndarray, y_raw: np.ndarray,
                    vote_cut: float | None) -> dict[str, Any] | None:
    """The spec's ``calibration`` fitted on validation: temperature (classes), then the merger map.

    The merger map is :func:`galaxy_ray.merger.choice.fit_merger_calibration`'s
    choice; its dict carries ``selection`` (the cross-validated log losses and the rule).

    Parameters
    ----------
    spec : ModelSpec
    y_true, y_raw : numpy.ndarray, shape (N, K)
        Validation targets (votes, or one-hot classes) and the network's own probabilities.

    Returns
    -------
    dict or None
        ``{"probabilities": ..., "merger": ...}`` (each None when it cannot be
        fitted: a single class in validation, no merger output, or validation
        holding only mergers or none); None when neither can.
    """
    calibration: dict[str, Any] = {"probabilities": None, "merger": None}
    probs = y_raw
    if spec.task_of.temperature and len(np.unique(y_true.argmax(axis=1))) > 1:
        temperature = TemperatureCalibration.fit(y_raw, y_true.argmax(axis=1))
        calibration["probabilities"] = temperature.to_dict()
        probs = temperature(y_raw)
    if spec.merger is not None:
        is_merger = true_mergers(spec, y_true, vote_cut)
        if is_merger.any() and not is_merger.all():
            fitted, selection = fit_merger_calibration(merger_score(spec, probs), is_merger)
            calibration["merger"] = dict(fitted.to_dict(), selection=selection)
    return calibration if any(calibration.values()) else None


def choose_operating_point(spec, y_true: np.ndarray, probs: np.ndarray, *, threshold: float | str = "auto",
                           precision: float | None = None, vote_cut: float | None,
                           curve_points: int | None = None) -> dict[str, Any]:
    """The merger operating point on validation, for the checkpoint's ``extra["merger"]``.

    Parameters
    ----------
    spec : ModelSpec
        Its calibration (if any) gives ``p_merger``.
    y_true, probs : numpy.ndarray, shape (N, K)
        Validation targets and the probabilities as the Predictor returns them.
    threshold : "auto" or float
        ``auto`` chooses it (F1-optimal, or the lowest meeting ``precision``); a
        number is kept and its rates measured.
    curve_points : int, optional
        Thin the stored precision-recall table to this many rows (default
        :data:`galaxy_ray.merger.operating.CURVE_POINTS`).

    Returns
    -------
    dict
        :meth:`OperatingPoint.to_dict` plus ``truth``, ``vote_cut``,
        ``calibration`` (the method) and ``curve``; or ``truth``, ``reason``,
        ``positives`` and ``negatives`` when validation holds no merger.

    Raises
    ------
    GalaxyRayError
        ``precision`` that no threshold reaches.
    """
    is_merger = true_mergers(spec, y_true, vote_cut)
    positives, negatives = int(is_merger.sum()), int((~is_merger).sum())
    out: dict[str, Any] = {"truth": truth_rule(spec, vote_cut), "vote_cut": vote_cut}
    if not positives:
        return dict(out, reason="the validation split holds no merger", positives=0, negatives=negatives)
    p_merger = merger_probability(spec, probs)
    curve = precision_recall_curve(is_merger, p_merger)
    if threshold == "auto":
        point = choose_from_curve(curve, positives, negatives, precision)
    else:
        point = point_at(curve, positives, negatives, float(threshold))
    calibrated = describe((spec.calibration or {}).get("merger"))
    out["calibration"] = (calibrated + ("; after temperature scaling" if spec.task_of.temperature else "")
                          if calibrated else "none")
    thinned = curve_to_dict(curve) if curve_points is None else curve_to_dict(curve, curve_points)
    return dict(point.to_dict(), **out, curve=thinned)


def _reliability_lists(score: np.ndarray, truth: np.ndarray, scored: bool = False) -> dict[str, Any]:
    """Reliability bins with Wilson intervals (JSON-ready); with ``scored``, also log loss and ECE with intervals."""
    r = reliability(score, truth, bins=10)

    def listed(key: str) -> list:
        return [float(v) if np.isfinite(v) else None for v in r[key]]

    out = {"mean_score": listed("mean_score"), "frequency": listed("frequency"),
           "frequency_95": [[lo, hi] for lo, hi in zip(listed("frequency_lo"), listed("frequency_hi"))],
           "count": [int(c) for c in r["count"]], "ece": r["ece"]}
    if scored:
        out.update(scores_with_intervals(score, truth))
    return out


#: Folds of the validation split over which calibration is cross-fitted to score it out of sample.
CALIBRATION_FOLDS = 5


def cross_fitted_merger_probability(spec, y_true: np.ndarray, raw: np.ndarray, vote_cut: float | None,
                                    folds: int = CALIBRATION_FOLDS, seed: int = 0) -> np.ndarray:
    """``p_merger`` of every validation galaxy from a calibration fitted on the other folds, shape (N,).

    A calibration scored on the galaxies it was fitted on looks perfect
    (isotonic regression reaches ECE 0 in sample); scoring each fold with the
    calibration of the others measures what it does for new galaxies
    (cross-fitting; e.g. Niculescu-Mizil & Caruana 2005, ICML, who calibrate
    on held-out folds).  Folds are a seeded permutation, so the figure is
    reproducible.  A fold whose other folds cannot be calibrated (no merger or
    only mergers) keeps the raw score.

    Parameters
    ----------
    spec : ModelSpec
    y_true, raw : numpy.ndarray, shape (N, K)
        Validation targets and the network's uncalibrated probabilities.
    folds : int
        Number of folds (at most N).
    """
    n = len(raw)
    fold = np.empty(n, dtype=int)
    fold[np.random.default_rng(seed).permutation(n)] = np.arange(n) % max(1, min(folds, n))
    uncalibrated = replace(spec, calibration=None)
    out = merger_probability(uncalibrated, raw)
    for k in np.unique(fold):
        held = fold == k
        calibration = fit_calibration(spec, y_true[~held], raw[~held], vote_cut)
        fold_spec = replace(spec, calibration=calibration)
        scale = probability_calibration(calibration)
        probs = scale(raw[held]) if scale is not None else raw[held]
        out[held] = merger_probability(fold_spec, probs)
    return out


def merger_reliability(spec, y_true: np.ndarray, raw: np.ndarray, probs: np.ndarray,
                       vote_cut: float | None) -> dict[str, Any]:
    """Reliability of the merger output: raw, calibrated out of sample (cross-fitted), and in sample.

    ``calibrated`` is the figure to quote: each validation galaxy scored by a
    calibration fitted on the other folds (:func:`cross_fitted_merger_probability`).
    ``calibrated_in_sample`` (the stored calibration on the galaxies it was
    fitted on) is kept to show how optimistic that is.  Every bin carries its
    95% Wilson interval (``frequency_95``); ``raw`` and ``calibrated`` also carry
    the log loss and ECE with 95% bootstrap intervals and the share of exact 0
    or 1 (:func:`galaxy_ray.merger.calibration.scores_with_intervals`).
    """
    is_merger = true_mergers(spec, y_true, vote_cut)
    uncalibrated = replace(spec, calibration=None)
    cross_fitted = cross_fitted_merger_probability(spec, y_true, raw, vote_cut)
    return {"raw": _reliability_lists(merger_probability(uncalibrated, raw), is_merger, scored=True),
            "calibrated": dict(_reliability_lists(cross_fitted, is_merger, scored=True),
                               scored=f"out of sample: {CALIBRATION_FOLDS}-fold cross-fitted on the validation split"),
            "calibrated_in_sample": _reliability_lists(merger_probability(spec, probs), is_merger)}


def classes_reliability(y_true: np.ndarray, raw: np.ndarray, calibrated: np.ndarray) -> dict[str, Any]:
    """Reliability of the top-class probability before and after temperature scaling."""
    correct = raw.argmax(axis=1) == np.asarray(y_true).argmax(axis=1)
    return {"raw": _reliability_lists(raw.max(axis=1), correct),
            "calibrated": _reliability_lists(calibrated.max(axis=1), correct)}


def operating_summary(merger: Mapping[str, Any]) -> str:
    """One line: threshold, precision and recall with intervals, truth."""
    if "threshold" not in merger:
        return f"no merger operating point ({merger.get('reason', 'not measured')})"
    if "precision_interval" not in merger:  # a fallback threshold, set where validation could not choose one
        return (f"mergers at p_merger >= {format_threshold(merger['threshold'])}, not chosen on validation "
                f"({merger.get('reason', 'not measured')})")
    pi, ri = merger["precision_interval"], merger["recall_interval"]
    return (f"mergers at p_merger >= {format_threshold(merger['threshold'])} ({merger['rule']}): precision "
            f"{merger['precision']:.2f} [{pi[0]:.2f}, {pi[1]:.2f}], recall {merger['recall']:.2f} "
            f"[{ri[0]:.2f}, {ri[1]:.2f}] on {merger['positives']} validation mergers")
