"""The merger flag's operating point, chosen on the validation split.

A fixed threshold of 0.5 on ``p_merger`` means nothing when nobody has
measured what it selects: at the rare base rates of real mergers a
classifier's default threshold can be only a few per cent pure (Bickley et
al. 2021).  Here the threshold is chosen on validation galaxies whose truth
is known, and stored with the precision and recall it reaches there, so a
catalog says how pure and how complete its flag is.

References
----------
Bickley, R. W. et al. 2021, MNRAS 504, 372: post-merger identification at
low base rates.
Davis, J. & Goadrich, M. 2006, ICML: precision-recall curves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from astropy.stats import binom_conf_interval

from galaxy_ray.errors import GalaxyRayError

__all__ = ["OperatingPoint", "choose_threshold", "precision_recall_curve"]


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold on ``p_merger`` and what it achieves on the validation split.

    Attributes
    ----------
    threshold : float
        Flag a galaxy when ``p_merger >= threshold``.
    rule : str
        ``"f1"`` (the F1-optimal point) or ``"precision>=P"``.
    precision, recall, f1 : float
        On the validation galaxies (NaN when undefined).
    precision_interval, recall_interval : tuple of float
        95% Wilson intervals of precision and recall.
    false_positive_rate : float
        Fraction of validation non-mergers flagged.
    positives, negatives : int
        Validation mergers and non-mergers.
    """

    threshold: float
    rule: str
    precision: float
    recall: float
    f1: float
    precision_interval: tuple[float, float]
    recall_interval: tuple[float, float]
    false_positive_rate: float
    positives: int
    negatives: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["precision_interval"] = list(self.precision_interval)
        d["recall_interval"] = list(self.recall_interval)
        return d


def precision_recall_curve(is_merger: np.ndarray, p_merger: np.ndarray) -> dict[str, np.ndarray]:
    """Precision and recall of ``p_merger >= t`` at every distinct score ``t``.

    Parameters
    ----------
    is_merger : array of bool, shape (N,)
        The truth on validation.
    p_merger : array of float, shape (N,)
        The classifier's scores.

    Returns
    -------
    dict of arrays, each shape (T,)
        ``threshold`` (distinct scores, descending), ``tp``, ``fp``,
        ``precision``, ``recall``, ``f1``.
    """
    y = np.asarray(is_merger, dtype=bool)
    p = np.asarray(p_merger, dtype=np.float64)
    keep = np.isfinite(p)
    y, p = y[keep], p[keep]
    order = np.argsort(-p, kind="stable")
    y, p = y[order], p[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(p) != 0), len(p) - 1] if len(p) else np.array([], int)
    tp = np.cumsum(y)[last_of_each]
    fp = np.cumsum(~y)[last_of_each]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / y.sum() if y.sum() else np.full(len(tp), np.nan)
        f1 = 2 * precision * recall / (precision + recall)
    return {"threshold": p[last_of_each], "tp": tp, "fp": fp, "precision": precision, "recall": recall,
            "f1": np.nan_to_num(f1, nan=0.0)}


def choose_threshold(is_merger: np.ndarray, p_merger: np.ndarray, precision: float | None = None) -> OperatingPoint:
    """The F1-optimal threshold, or the lowest one whose validation precision reaches ``precision``.

    Parameters
    ----------
    is_merger, p_merger : arrays, shape (N,)
        Validation truth and scores.
    precision : float, optional
        Target purity in (0, 1].  The lowest threshold meeting it keeps the
        most mergers (highest recall) at that purity.

    Returns
    -------
    OperatingPoint

    Raises
    ------
    GalaxyRayError
        No validation merger (nothing to choose from), or no threshold reaches
        ``precision``.
    """
    y = np.asarray(is_merger, dtype=bool)
    curve = precision_recall_curve(y, p_merger)
    if not y.any() or not len(curve["threshold"]):
        raise GalaxyRayError("--merger-threshold auto: the validation split holds no merger; "
                             "give a number, or more labelled mergers")
    if precision is None:
        best, rule = int(np.argmax(curve["f1"])), "f1"
    else:
        if not 0 < precision <= 1:
            raise GalaxyRayError(f"--merger-precision {precision}: must be in (0, 1]")
        meets = np.flatnonzero(curve["precision"] >= precision)
        if not len(meets):
            raise GalaxyRayError(
                f"--merger-precision {precision}: no threshold reaches it on validation (best "
                f"{np.nanmax(curve['precision']):.2f}); ask for less, or use --merger-threshold auto")
        best, rule = int(meets[-1]), f"precision>={precision:g}"  # thresholds descend: last = lowest
    tp, fp = int(curve["tp"][best]), int(curve["fp"][best])
    positives, negatives = int(y.sum()), int((~y).sum())
    return OperatingPoint(
        threshold=float(curve["threshold"][best]), rule=rule,
        precision=float(curve["precision"][best]), recall=float(curve["recall"][best]),
        f1=float(curve["f1"][best]),
        precision_interval=_wilson(tp, tp + fp), recall_interval=_wilson(tp, positives),
        false_positive_rate=fp / negatives if negatives else float("nan"),
        positives=positives, negatives=negatives,
    )


def _wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    lo, hi = binom_conf_interval(k, n, confidence_level=0.95, interval="wilson")
    return (float(lo), float(hi))
