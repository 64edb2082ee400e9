"""Catalog columns as Galaxy Zoo publishes them, what every probability column means, and the friendly view.

A GZ2 model predicts Kaggle's 37 **cumulative** vote fractions (each answer is the fraction of
all volunteers who reached and chose it).  GZ2 (Willett et al. 2013; Hart et al. 2016), GZ DECaLS
(Walmsley et al. 2022) and GZ DESI (Walmsley et al. 2023) publish **conditional** fractions
instead, ``{question}_{answer}_fraction`` (a question's answers sum to 1 among the volunteers who
reached it), with ``{question}_proportion_asked``, the product of the parent answers' fractions
up the tree.  The catalog carries both: the cumulative columns first (unchanged, so
``--kaggle-submission`` and existing readers stay the same), then these
(the task's :meth:`~galaxy_ray.tasks.Task.tree_column_names`, computed row by row in the model actors by
:meth:`~galaxy_ray.tasks.Task.tree_columns`; their descriptions are :mod:`galaxy_ray.tasks.tree_text`).

:func:`column_descriptions` says what each probability column is, for the catalog's provenance
(``column_descriptions``) and the FITS/VOTable exports: ``p_merger`` is a calibrated probability
of the merger truth, never a vote fraction.

The **friendly** view (:func:`friendly_expressions`) shows a question's ``_fraction`` columns only
where its ``_proportion_asked`` is at least 0.5 and NULL elsewhere, as GZ DESI's friendly table
does (Walmsley et al. 2023, MNRAS 526, 4768; Zoobot ``shared/load_predictions.py``): a bar
fraction is shown only where most volunteers would have been asked about a bar.

Nothing here imports torch.

References
----------
Willett K. W. et al. 2013, MNRAS 435, 2835 (Galaxy Zoo 2).
Hart R. E. et al. 2016, MNRAS 461, 3663 (GZ2 debiased fractions; the ``tNN_..._aNN_...`` names).
Walmsley M. et al. 2022, MNRAS 509, 3966 (GZ DECaLS).
Walmsley M. et al. 2023, MNRAS 526, 4768 (GZ DESI: fractions, proportion asked, friendly table).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from galaxy_ray import tasks
from galaxy_ray.merger.operating import format_threshold
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.tasks.tree_text import CUMULATIVE_MEANING, DIRICHLET_MEANING
from galaxy_ray.trees import SCHEMAS, Schema
from galaxy_ray.trees.fractions import FRIENDLY_THRESHOLD

__all__ = ["FRIENDLY_THRESHOLD", "CUMULATIVE_MEANING", "DIRICHLET_MEANING", "column_descriptions", "catalog_tree", "friendly_expressions"]


def _merger_descriptions(task: str, merger: str | None, calibrated: bool, truth: str | None,
                         threshold: float | None, threshold_text: str | None) -> dict[str, str]:
    """Descriptions of ``p_merger`` and ``is_merger``."""
    if merger is None:
        p = "no merger output: always null"
    elif calibrated:
        p = (f"calibrated probability that the galaxy is a merger by the truth {truth or 'of the training run'} "
             f"(a calibration map of output {merger} fitted on the training run's validation split; its provenance "
             "says which), not a vote fraction")
    else:
        p = tasks.get(task).merger_uncalibrated(merger)
    cut = threshold_text if threshold_text is not None else (format_threshold(threshold) if threshold is not None else "the threshold")
    flag = f"merger flag: p_merger >= {cut} (merger_threshold in this provenance)"
    return {C.P_MERGER: p, C.IS_MERGER: flag}


def column_descriptions(task: str, output_names: Sequence[str], merger: str | None = None, *,
                        calibration: Mapping | None = None, truth: str | None = None,
                        threshold: float | None = None, threshold_text: str | None = None,
                        tree: str | None = None) -> dict[str, str]:
    """What each probability column of a catalog is, for its provenance's ``column_descriptions``.

    Parameters
    ----------
    task : str
        ``gz2`` (cumulative outputs, then the tree's conditional and proportion-asked columns)
        or ``classes`` (``prob_<class>`` columns).
    output_names : sequence of str
        The model's outputs (Kaggle names, or class names).
    merger : str, optional
        The output read as the merger probability.
    calibration : mapping, optional
        The checkpoint's calibration (``ModelSpec.calibration``): ``merger`` set means ``p_merger``
        is calibrated, ``probabilities`` set means class probabilities are temperature-scaled.
    truth : str, optional
        What counted as a true merger on validation (:func:`galaxy_ray.merger.truth.truth_rule`).
    threshold : float, optional
        ``is_merger = p_merger >= threshold``.
    threshold_text : str, optional
        The threshold as printed (every digit it is stored with).
    tree : str, optional
        votes: the model's tree.

    Returns
    -------
    dict of str to str
        Column name -> one-line description: output columns, tree columns, ``p_merger``,
        ``is_merger``, ``morphology``.
    """
    calibration = calibration or {}
    out = tasks.get(task).output_descriptions(output_names, calibration, tree)
    out.update(_merger_descriptions(task, merger, bool(calibration.get("merger")), truth, threshold, threshold_text))
    return out


def catalog_tree(columns: Sequence[str]) -> Schema | None:
    """The tree whose ``_fraction`` and ``_proportion_asked`` columns are all among ``columns``, else None."""
    have = set(columns)
    for tree in SCHEMAS.values():
        if set(tree.fraction_columns) <= have and set(tree.proportion_asked_columns) <= have:
            return tree
    return None


def friendly_expressions(tree: Schema, columns: Sequence[str], quote,
                         threshold: float = FRIENDLY_THRESHOLD) -> dict[str, str]:
    """SQL expressions of the friendly view: each of ``columns`` that is a ``_fraction`` column or its interval, masked.

    ``CASE WHEN "{question}_proportion_asked" >= threshold THEN "{question}_{answer}_fraction" END``:
    NULL where fewer than ``threshold`` of the volunteers would have reached the question (or where
    the row has no prediction), the value elsewhere; the rule of
    :func:`galaxy_ray.trees.fractions.friendly_table` and of GZ DESI (Walmsley et al. 2023).

    Parameters
    ----------
    tree : Schema
        The catalog's tree (:func:`catalog_tree`).
    columns : sequence of str
        The columns the query reads; others are left out.
    quote : callable
        Quotes an SQL identifier.
    threshold : float
        The proportion asked below which a question's fractions are masked.

    Returns
    -------
    dict of str to str
        Fraction column -> expression; the expression reads that question's proportion-asked column.
    """
    wanted = set(columns)
    out = {}
    lower, upper = tree.interval_columns
    for q, asked in zip(tree.questions, tree.proportion_asked_columns):
        for a in q.answers:
            # an answer's interval goes with its fraction: a masked value has no interval to quote
            for column in (tree.fraction_columns[a.index], lower[a.index], upper[a.index]):
                if column in wanted:
                    out[column] = f"CASE WHEN {quote(asked)} >= {float(threshold)!r} THEN {quote(column)} END"
    return out
