"""Catalog columns as Galaxy Zoo publishes them: conditional fractions, proportion asked, friendly view.

GZ2 (Willett et al. 2013; Hart et al. 2016), GZ DECaLS (Walmsley et al. 2022) and GZ DESI
(Walmsley et al. 2023) publish **conditional** vote fractions: among the volunteers who reached a
question, the fraction choosing each answer, ``{question}_{answer}_fraction``.  How many reached
it is the **proportion asked**, the product of the fractions of the answers leading to it up the
tree (1 for a question asked of every galaxy), ``{question}_proportion_asked``; Zoobot computes
it the same way from predicted fractions (``zoobot/shared/stats.py``, ``get_expected_votes_ml``)
and repeats it per answer as ``{answer}_proportion-asked`` (``zoobot/shared/load_predictions.py``).

The **friendly** view (GZ DESI's ``_friendly`` table, ``prediction_hdf5_to_summary_parquet`` in
``zoobot/shared/load_predictions.py``) keeps a question's fractions only where its proportion
asked is at least 0.5 and leaves them NaN elsewhere: a bar fraction is shown only where most
volunteers would have been asked about a bar.

Kaggle's cumulative fractions are ``conditional * proportion asked`` (:func:`to_cumulative`).
"""

from __future__ import annotations

import numpy as np

from galaxy_ray.trees.schema import Schema

__all__ = ["FRIENDLY_THRESHOLD", "observed_fractions", "proportion_asked", "to_cumulative", "to_conditional",
           "fraction_table", "friendly_table"]

#: A question's fractions are shown in the friendly view where its proportion asked is >= this
#: (GZ DESI / Zoobot ``load_predictions.py``: ``np.where(prob_of_asked_by_answer >= 0.5, ...)``).
FRIENDLY_THRESHOLD = 0.5


def _rows(values: np.ndarray, schema: Schema) -> np.ndarray:
    return schema.answer_rows(values, "fractions")


def observed_fractions(counts: np.ndarray, schema: Schema) -> np.ndarray:
    """The volunteers' conditional vote fractions from vote counts: each count over its question's total.

    Parameters
    ----------
    counts : array_like, shape (N, K)
        Vote counts in ``schema``'s answer order; NaN counts as 0.

    Returns
    -------
    numpy.ndarray, shape (N, K), float64
        Each answered question sums to 1; a question nobody answered has 0 fractions (as the
        published tables' ``_fraction`` columns for an unreached question, Walmsley et al. 2022).
    """
    n = np.nan_to_num(schema.answer_rows(counts, "vote counts"), nan=0.0).clip(min=0.0)
    out = np.zeros_like(n)
    for start, stop in schema.slices:
        total = n[:, start:stop].sum(axis=1, keepdims=True)
        np.divide(n[:, start:stop], total, out=out[:, start:stop], where=total > 0)
    return out


def proportion_asked(conditional: np.ndarray, schema: Schema) -> np.ndarray:
    """The fraction of volunteers who would reach each question.

    Parameters
    ----------
    conditional : array_like, shape (N, K)
        Conditional vote fractions in ``schema``'s answer order.

    Returns
    -------
    numpy.ndarray, shape (N, Q), float64
        ``asked[q] = asked[parent question] * conditional[parent answer]``, 1 for root questions.
    """
    cond = _rows(conditional, schema)
    owner = {a.index: qi for qi, q in enumerate(schema.questions) for a in q.answers}
    asked = np.ones((cond.shape[0], len(schema.questions)))
    for qi, q in enumerate(schema.questions):  # parent-first, so the parent's value is final
        if q.parent is not None:
            asked[:, qi] = asked[:, owner[q.parent]] * cond[:, q.parent]
    return asked


def _per_answer(per_question: np.ndarray, schema: Schema) -> np.ndarray:
    """(N, Q) -> (N, K): each answer takes its question's value."""
    return np.concatenate([np.repeat(per_question[:, [qi]], len(q.answers), axis=1)
                           for qi, q in enumerate(schema.questions)], axis=1)


def to_cumulative(conditional: np.ndarray, schema: Schema) -> np.ndarray:
    """Cumulative (Kaggle-style) fractions, ``conditional * proportion asked``, shape (N, K)."""
    cond = _rows(conditional, schema)
    return cond * _per_answer(proportion_asked(cond, schema), schema)


def to_conditional(cumulative: np.ndarray, schema: Schema) -> np.ndarray:
    """Conditional fractions from cumulative ones, shape (N, K).

    Each question's answers are divided by the cumulative value of its parent answer; where
    that is 0 (the question is never reached) they are 0.
    """
    cum = _rows(cumulative, schema)
    cond = cum.copy()
    for q in schema.questions:
        if q.parent is not None:
            parent = cum[:, q.parent : q.parent + 1]
            with np.errstate(divide="ignore", invalid="ignore"):
                cond[:, q.start : q.stop] = np.where(parent > 0, cum[:, q.start : q.stop] / parent, 0.0)
    return cond


def fraction_table(conditional: np.ndarray, schema: Schema, lower: np.ndarray | None = None,
                   upper: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The "advanced" columns: every fraction, every question's proportion asked, and intervals.

    Parameters
    ----------
    conditional : array_like, shape (N, K)
        Conditional fractions (for a vote-count model, :func:`~galaxy_ray.trees.dirichlet.expected_fractions`).
    lower, upper : array_like, shape (N, K), optional
        90% interval of each fraction (:func:`~galaxy_ray.trees.dirichlet.fraction_intervals`).

    Returns
    -------
    dict of str to numpy.ndarray (N,) float32
        ``{question}_{answer}_fraction`` (K), ``{question}_proportion_asked`` (Q), then with
        intervals ``{question}_{answer}_90pc-lower`` and ``-upper`` (K each), in that order.
    """
    cond = _rows(conditional, schema)
    out = {name: cond[:, k] for k, name in enumerate(schema.fraction_columns)}
    asked = proportion_asked(cond, schema)
    out.update({name: asked[:, q] for q, name in enumerate(schema.proportion_asked_columns)})
    if lower is not None and upper is not None:
        for names, values in zip(schema.interval_columns, (lower, upper)):
            values = _rows(values, schema)
            out.update({name: values[:, k] for k, name in enumerate(names)})
    return {k: v.astype(np.float32) for k, v in out.items()}


def friendly_table(conditional: np.ndarray, schema: Schema,
                   threshold: float = FRIENDLY_THRESHOLD) -> dict[str, np.ndarray]:
    """``{question}_{answer}_fraction`` with NaN where the question's proportion asked < ``threshold``.

    Returns
    -------
    dict of str to numpy.ndarray (N,) float32
        One column per answer, in answer order.
    """
    cond = _rows(conditional, schema)
    shown = _per_answer(proportion_asked(cond, schema), schema) >= threshold
    masked = np.where(shown, cond, np.nan)
    return {name: masked[:, k].astype(np.float32) for k, name in enumerate(schema.fraction_columns)}
