"""Evaluation metrics, each next to the baseline a skeptic would ask for.

``gz2``
    RMSE over all 37 cumulative vote fractions (the Kaggle Galaxy Challenge
    metric) and per answer, beside the mean-label baseline (predict the
    training mean for every galaxy).
``votes``
    RMSE of the expected conditional vote fractions against the volunteers' own
    (counts over each question's total), over the questions that got a vote,
    overall and per question, beside the mean-label baseline.
``classes``
    accuracy, balanced accuracy (mean per-class recall), per-class precision
    and recall, the confusion matrix, beside the majority-class baseline.
The three task metrics live with their tasks (:mod:`galaxy_ray.tasks`) and are re-exported here.

both
    merger precision and recall at the run's ``p_merger`` threshold, and the
    rows left out of the metrics (unreadable or undecodable), by reason.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from galaxy_ray.errors import error_reason
from galaxy_ray.tasks.classes import classes_metrics
from galaxy_ray.tasks.gz2 import gz2_metrics
from galaxy_ray.tasks.votes import votes_metrics

__all__ = ["classes_metrics", "gz2_metrics", "votes_metrics", "merger_metrics", "errors_by_reason", "error_summary"]


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) or np.isnan(x) else float(x)


def merger_metrics(true_merger: np.ndarray, p_merger: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision and recall of ``p_merger >= threshold`` against the true mergers."""
    true_merger = np.asarray(true_merger, dtype=bool)
    predicted = np.asarray(p_merger, dtype=np.float64) >= threshold
    tp = int((predicted & true_merger).sum())
    return {
        "threshold": float(threshold),
        "true_mergers": int(true_merger.sum()),
        "predicted_mergers": int(predicted.sum()),
        "precision": tp / int(predicted.sum()) if predicted.any() else None,
        "recall": tp / int(true_merger.sum()) if true_merger.any() else None,
    }


def errors_by_reason(errors: Sequence[Any]) -> dict[str, int]:
    """How many rows failed, by reason (:func:`galaxy_ray.errors.error_reason`), most frequent first."""
    counts = Counter(error_reason(str(e)) for e in errors if e is not None)
    return dict(counts.most_common())


def error_summary(report: Mapping[str, Any], first_error: str | None) -> str | None:
    """The line saying how many rows the metrics leave out and why (None when none is)."""
    n = int(report.get("error_rows") or 0)
    if not n:
        return None
    reasons = ", ".join(f"{r}: {k}" for r, k in (report.get("errors_by_reason") or {}).items())
    example = f"; e.g. {first_error}" if first_error else ""
    return f"{n} rows could not be read or decoded and are left out of these metrics ({reasons}){example}"
