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
both
    merger precision and recall at the run's ``p_merger`` threshold, and the
    rows left out of the metrics (unreadable or undecodable), by reason.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from galaxy_ray import schema
from galaxy_ray.errors import error_reason

__all__ = ["classes_metrics", "gz2_metrics", "votes_metrics", "merger_metrics", "errors_by_reason", "error_summary"]


def gz2_metrics(y_true: np.ndarray, y_pred: np.ndarray, train_mean: Sequence[float] | None = None) -> dict[str, Any]:
    """RMSE overall and per answer, and the same for the mean-label baseline.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (N, 37)
        Cumulative vote fractions in Kaggle order.
    train_mean : sequence of 37 floats, optional
        The training-set mean; the baseline predicts it for every galaxy.
        Without it the evaluated set's own mean is used (flattering the baseline).
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    mean = np.asarray(train_mean if train_mean is not None else y_true.mean(axis=0), dtype=np.float64)
    err = (y_pred - y_true) ** 2
    base = (mean[None, :] - y_true) ** 2
    per_answer = {
        name: {"column": col, "rmse": float(np.sqrt(err[:, i].mean())), "baseline_rmse": float(np.sqrt(base[:, i].mean()))}
        for i, (name, col) in enumerate(zip(schema.GZ2_KAGGLE_COLUMNS, schema.GZ2_ANSWER_COLUMNS))
    }
    rmse, baseline = float(np.sqrt(err.mean())), float(np.sqrt(base.mean()))
    return {
        "rows": int(len(y_true)),
        "rmse": rmse,
        "baseline_rmse": baseline,
        "baseline": "training mean" if train_mean is not None else "evaluated set mean",
        "rmse_over_baseline": rmse / baseline if baseline > 0 else float("nan"),
        "per_answer": per_answer,
    }


def votes_metrics(counts: np.ndarray, y_pred: np.ndarray, tree, train_mean: Sequence[float] | None = None) -> dict[str, Any]:
    """Conditional-fraction RMSE of a votes model, overall and per question, beside the mean baseline.

    Parameters
    ----------
    counts : array_like, shape (N, K)
        The volunteers' vote counts in the tree's answer order.
    y_pred : array_like, shape (N, K)
        Expected conditional vote fractions (each question sums to 1).
    tree : galaxy_ray.trees.Schema
    train_mean : sequence of K floats, optional
        The training set's mean observed fractions (the baseline); the evaluated set's otherwise.

    Returns
    -------
    dict
        ``rmse`` and ``baseline_rmse`` over every (galaxy, answer) whose question got at least one
        vote, and ``per_question``: ``rows`` (galaxies with a vote on it), ``rmse``, ``baseline_rmse``.

    Notes
    -----
    The observed fraction of a question answered by n volunteers carries binomial noise of
    about sqrt(f (1 - f) / n), so even a perfect model has an RMSE above 0 here
    (``jobs/vote_noise_floor.py`` measures that floor on real GZ2 votes).
    """
    from galaxy_ray.trees.dirichlet import question_totals
    from galaxy_ray.trees.fractions import observed_fractions

    counts = tree.answer_rows(counts, "vote counts")
    y_pred = tree.answer_rows(y_pred, "fractions")
    observed = observed_fractions(counts, tree)
    answered = question_totals(np.nan_to_num(counts), tree) > 0
    if train_mean is not None:
        mean = np.asarray(train_mean, dtype=np.float64)
    else:
        mean = (observed * answered).sum(axis=0) / np.maximum(answered.sum(axis=0), 1)
    err, base = (y_pred - observed) ** 2, (mean[None, :] - observed) ** 2

    def rmse(values: np.ndarray, mask: np.ndarray) -> float:
        return float(np.sqrt(values[mask].mean())) if mask.any() else float("nan")

    per_question = {q.key: {"rows": int(answered[:, q.start].sum()),
                            "rmse": rmse(err[:, q.start:q.stop], answered[:, q.start:q.stop]),
                            "baseline_rmse": rmse(base[:, q.start:q.stop], answered[:, q.start:q.stop])}
                    for q in tree.questions}
    overall, baseline = rmse(err, answered), rmse(base, answered)
    return {"rows": int(len(counts)), "tree": tree.name, "rmse": overall, "baseline_rmse": baseline,
            "baseline": "training mean" if train_mean is not None else "evaluated set mean",
            "rmse_over_baseline": overall / baseline if baseline > 0 else float("nan"),
            "per_question": per_question}


def classes_metrics(true_index: np.ndarray, probs: np.ndarray, names: Sequence[str],
                    class_counts: Sequence[int] | None = None) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class precision/recall and the confusion matrix.

    ``confusion[i][j]`` counts galaxies of true class i predicted as j.
    """
    true_index = np.asarray(true_index, dtype=np.int64)
    pred = np.asarray(probs).argmax(axis=1)
    k = len(names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (true_index, pred), 1)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    diag = np.diag(confusion)
    recall = np.where(support > 0, diag / np.maximum(support, 1), np.nan)
    precision = np.where(predicted > 0, diag / np.maximum(predicted, 1), np.nan)
    present = support > 0
    majority = int(np.argmax(class_counts)) if class_counts is not None else int(np.argmax(support))
    return {
        "rows": int(len(true_index)),
        "accuracy": float((pred == true_index).mean()) if len(pred) else float("nan"),
        "balanced_accuracy": float(np.nanmean(recall[present])) if present.any() else float("nan"),
        "baseline_accuracy": float((true_index == majority).mean()) if len(pred) else float("nan"),
        "baseline": f"majority class ({names[majority]})",
        "chance_accuracy": 1.0 / k,
        "per_class": {
            name: {"precision": _num(precision[i]), "recall": _num(recall[i]), "support": int(support[i])}
            for i, name in enumerate(names)
        },
        "class_names": list(names),
        "confusion_matrix": confusion.tolist(),
    }


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
