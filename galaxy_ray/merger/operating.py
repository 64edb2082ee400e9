"""The merger flag's operating point: a threshold on ``p_merger`` and what it achieves on validation.

A fixed threshold of 0.5 on ``p_merger`` means nothing when nobody has
measured what it selects: at the rare base rates of real mergers a
classifier's default threshold can be only a few per cent pure (Bickley et
al. 2021).  Training chooses the threshold on validation galaxies whose truth
is known and stores, in the checkpoint's ``extra["merger"]``, the point with
its precision and recall and the validation precision-recall table itself
(thresholds with true and false positives).  From that table any caller
(``evaluate``, ``infer``, ``predict``) can re-derive the F1-optimal point, the
lowest threshold meeting a precision, or the rates at a given threshold,
without the validation data, and pass the rates on to the catalog, where
:mod:`galaxy_ray.merger.fractions` corrects merger fractions with them.

References
----------
Bickley, R. W. et al. 2021, MNRAS 504, 372: post-merger identification at
low base rates.
Davis, J. & Goadrich, M. 2006, ICML: precision-recall curves.
Wilson, E. B. 1927, JASA 22, 209: the score interval of a binomial proportion.
"""

from __future__ import annotations

import argparse
from decimal import ROUND_FLOOR, Decimal
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

import numpy as np

from galaxy_ray.errors import GalaxyRayError

__all__ = ["CURVE_POINTS", "OperatingPoint", "choose_from_curve", "choose_threshold", "curve_to_dict", "parse_threshold", "point_at",
           "precision_recall_curve", "format_threshold", "printable_threshold", "stored_operating_point", "wilson"]

#: Most points of the precision-recall table a checkpoint keeps (thinned by rank beyond that).
CURVE_POINTS = 4000


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold on ``p_merger`` and what it achieves on the validation split.

    Attributes
    ----------
    threshold : float
        Flag a galaxy when ``p_merger >= threshold``.
    rule : str
        ``"f1"`` (the F1-optimal point), ``"precision>=P"`` or ``"given"``.
    precision, recall, f1 : float
        On the validation galaxies (NaN when undefined).
    precision_interval, recall_interval : tuple of float
        95% Wilson intervals of precision and recall.
    false_positive_rate : float
        Fraction of validation non-mergers flagged.
    positives, negatives : int
        Validation mergers and non-mergers.
    true_positives, false_positives : int
        Validation mergers and non-mergers flagged (the rates' numerators).
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
    true_positives: int = 0
    false_positives: int = 0

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
        The classifier's scores (NaN rows are left out).

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
    return _with_rates(p[last_of_each], np.cumsum(y)[last_of_each], np.cumsum(~y)[last_of_each], int(y.sum()))


def _with_rates(threshold: np.ndarray, tp: np.ndarray, fp: np.ndarray, positives: int) -> dict[str, np.ndarray]:
    tp, fp = np.asarray(tp, dtype=np.int64), np.asarray(fp, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / positives if positives else np.full(len(tp), np.nan)
        f1 = 2 * precision * recall / (precision + recall)
    return {"threshold": np.asarray(threshold, dtype=np.float64), "tp": tp, "fp": fp, "precision": precision,
            "recall": recall, "f1": np.nan_to_num(f1, nan=0.0)}


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of ``k / n`` (``astropy.stats.binom_conf_interval``); NaN when ``n`` is 0."""
    from astropy.stats import binom_conf_interval  # here, not at the top: model actors import this module

    if n == 0:
        return (float("nan"), float("nan"))
    lo, hi = binom_conf_interval(k, n, confidence_level=0.95, interval="wilson")
    return (float(lo), float(hi))


def _point(curve: Mapping[str, np.ndarray], i: int | None, rule: str, threshold: float, positives: int,
           negatives: int) -> OperatingPoint:
    """The operating point at row ``i`` of ``curve`` (None: nothing flagged)."""
    tp = int(curve["tp"][i]) if i is not None else 0
    fp = int(curve["fp"][i]) if i is not None else 0
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / positives if positives else float("nan")
    f1 = 2 * tp / (tp + fp + positives) if tp + fp + positives else 0.0
    return OperatingPoint(
        threshold=float(threshold), rule=rule, precision=precision, recall=recall, f1=f1,
        precision_interval=wilson(tp, tp + fp), recall_interval=wilson(tp, positives),
        false_positive_rate=fp / negatives if negatives else float("nan"),
        positives=positives, negatives=negatives, true_positives=tp, false_positives=fp)


def printable_threshold(score: float, below: float) -> float:
    """A short decimal ``t`` in ``(below, score]`` with which ``p >= t`` selects exactly what ``p >= score`` does.

    A threshold equal to a calibrated score sits on a tie: isotonic
    calibration maps whole runs of galaxies to one value, and a threshold
    printed with fewer digits than it is stored with (0.4667 for 0.46666667)
    then selects another set.  Any ``t`` between the chosen score and the next
    lower validation score flags the same validation galaxies; this one has
    the fewest decimals (at least 4, rounded down from ``score``) such that
    ``float32(t) >= t``, so that comparing a float32 ``p_merger`` with ``t``
    in float32 (numpy, pandas, :meth:`galaxy_ray.merger.rule.MergerRule.flag`)
    or in float64 (DuckDB, astropy, SQL) gives the same answer, and
    ``p_merger >= t`` as printed gives ``is_merger`` exactly.

    Parameters
    ----------
    score : float
        The chosen threshold (a validation score, in [0, 1]).
    below : float
        The next lower validation score (``-inf`` when there is none).

    Returns
    -------
    float
        ``t``; ``score`` itself when no decimal of up to 9 places fits.
    """
    exact = Decimal(repr(float(score)))
    for places in range(4, 10):
        step = Decimal(1).scaleb(-places)
        floor = exact.quantize(step, rounding=ROUND_FLOOR)
        for candidate in (floor, floor - step):
            t = float(candidate)
            if below < t <= score and float(np.float32(t)) >= t:
                return t
    return float(score)


def format_threshold(threshold: float) -> str:
    """The threshold as galaxy-ray prints it: every digit it is stored with (``0.4666``, not ``0.467``).

    With :func:`printable_threshold`'s thresholds, ``p_merger >= <this text>``
    in any tool reproduces ``is_merger`` exactly.
    """
    return repr(float(threshold))


def choose_from_curve(curve: Mapping[str, np.ndarray], positives: int, negatives: int,
                      precision: float | None = None) -> OperatingPoint:
    """The F1-optimal row of a precision-recall table, or the lowest threshold meeting ``precision``.

    Raises
    ------
    GalaxyRayError
        No merger in the table, ``precision`` outside (0, 1], or no threshold reaching it.
    """
    curve = _with_rates(curve["threshold"], curve["tp"], curve["fp"], positives)
    if not positives or not len(curve["threshold"]):
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
    below = float(curve["threshold"][best + 1]) if best + 1 < len(curve["threshold"]) else float("-inf")
    threshold = printable_threshold(float(curve["threshold"][best]), below)
    return _point(curve, best, rule, threshold, positives, negatives)


def point_at(curve: Mapping[str, np.ndarray], positives: int, negatives: int, threshold: float) -> OperatingPoint:
    """What ``p_merger >= threshold`` achieved on validation, from its precision-recall table.

    Exact when the table is complete (at most :data:`CURVE_POINTS` distinct
    scores); otherwise the nearest stored threshold at or above ``threshold``.
    """
    thresholds = np.asarray(curve["threshold"], dtype=np.float64)
    at_or_above = np.flatnonzero(thresholds >= threshold)  # descending: the last is the lowest still flagged
    i = int(at_or_above[-1]) if len(at_or_above) else None
    return _point(curve, i, "given", threshold, positives, negatives)


def curve_to_dict(curve: Mapping[str, np.ndarray], max_points: int = CURVE_POINTS) -> dict[str, list]:
    """The table's ``threshold``, ``tp`` and ``fp`` as lists, thinned by rank to ``max_points`` rows.

    The F1-optimal row is always kept, so re-deriving it from the stored table
    gives the same point.
    """
    n = len(curve["threshold"])
    keep = np.arange(n)
    if n > max_points:
        keep = np.unique(np.r_[np.linspace(0, n - 1, max_points).round().astype(int), int(np.argmax(curve["f1"]))])
    return {"threshold": [float(curve["threshold"][i]) for i in keep], "tp": [int(curve["tp"][i]) for i in keep],
            "fp": [int(curve["fp"][i]) for i in keep]}


def stored_operating_point(extra: Mapping[str, Any], threshold: float | str = "auto",
                           precision: float | None = None) -> tuple[float, dict[str, Any] | None, str]:
    """The merger threshold a checkpoint's caller should use, and its validation rates.

    Parameters
    ----------
    extra : mapping
        The checkpoint's ``extra``; ``extra["merger"]`` holds the point chosen in
        training and the validation table (``curve``, ``positives``, ``negatives``,
        ``truth``, ``calibration``).
    threshold : "auto" or float
        ``auto``: the stored point (or, with ``precision``, the lowest threshold
        meeting it on the stored table).  A number overrides; its rates come from
        the table.
    precision : float, optional
        Target validation precision for ``auto``.

    Returns
    -------
    (threshold, validation, how)
        The threshold; a dict of the validation rates at it
        (:meth:`OperatingPoint.to_dict` plus ``truth``, ``vote_cut`` and ``calibration``), None
        when the checkpoint holds no validation table; and a phrase saying where
        the threshold came from.

    Raises
    ------
    GalaxyRayError
        A threshold outside [0, 1], or a ``precision`` no stored threshold meets.
    """
    merger = dict(extra.get("merger") or {})
    curve = merger.get("curve")
    if threshold != "auto":
        t = float(threshold)
        if not 0.0 <= t <= 1.0:
            raise GalaxyRayError(f"--merger-threshold {threshold}: must be 'auto' or a probability in [0, 1]")
        point = point_at(curve, merger["positives"], merger["negatives"], t) if curve else None
        how = "given"
    elif curve and merger.get("positives"):
        if precision is None and "threshold" in merger:
            t = float(merger["threshold"])
            point = replace(point_at(curve, merger["positives"], merger["negatives"], t),
                            rule=merger.get("rule", "f1"))
        else:
            point = choose_from_curve(curve, merger["positives"], merger["negatives"], precision)
            t = point.threshold
        how = f"validation ({'F1-optimal' if point.rule == 'f1' else point.rule})"
    else:
        t = float(extra.get("merger_threshold", 0.5))
        point, how = None, f"{t:g}: the checkpoint holds no validation operating point"
    if point is None:
        return t, None, how
    validation = dict(point.to_dict(), truth=merger.get("truth"), vote_cut=merger.get("vote_cut"),
                      calibration=merger.get("calibration"))
    return t, validation, how


def parse_threshold(text: str) -> float | str:
    """``--merger-threshold``: ``auto`` or a probability in [0, 1]."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: 'auto' or a number in [0, 1]") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be in [0, 1]")
    return value


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
    p = np.asarray(p_merger, dtype=np.float64)
    ok = np.isfinite(p)
    return choose_from_curve(precision_recall_curve(y[ok], p[ok]), int(y[ok].sum()), int((~y[ok]).sum()),
                             precision)
