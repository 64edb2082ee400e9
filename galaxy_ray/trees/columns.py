"""A model's Galaxy Zoo tree columns, row by row: conditional fractions, proportions asked, intervals.

A GZ2 model predicts Kaggle's 37 **cumulative** vote fractions; the catalog
also carries the **conditional** ``{question}_{answer}_fraction`` columns and
``{question}_proportion_asked`` that GZ2 (Hart et al. 2016), GZ DECaLS and GZ
DESI (Walmsley et al. 2022, 2023) publish (:func:`cumulative_column_names`).  A
votes model predicts the conditional fractions themselves, and gets the
proportions asked and the 90% intervals of its Dirichlet concentrations
(:func:`vote_column_names`).  Which a model gets is its task's choice
(:meth:`galaxy_ray.tasks.base.Task.tree_columns`).

These functions run in the model actors for every batch, so this module
imports only numpy and the trees (not the catalog package, whose imports
cost an actor's start-up about half a second); what each column means is
:mod:`galaxy_ray.catalog.galaxy_zoo`.

References
----------
Hart R. E. et al. 2016, MNRAS 461, 3663.
Walmsley M. et al. 2022, MNRAS 509, 3966; 2023, MNRAS 526, 4768.
"""

from __future__ import annotations

import numpy as np

from galaxy_ray.trees.dirichlet import fraction_intervals
from galaxy_ray.trees.fractions import fraction_table, to_conditional
from galaxy_ray.trees.schema import Schema

__all__ = ["cumulative_column_names", "cumulative_columns", "vote_column_names", "vote_columns"]


def cumulative_column_names(schema: Schema) -> list[str]:
    """The columns after a cumulative model's outputs: ``{question}_{answer}_fraction`` (K), then
    ``{question}_proportion_asked`` (Q)."""
    return [*schema.fraction_columns, *schema.proportion_asked_columns]


def vote_column_names(schema: Schema) -> list[str]:
    """The columns after a votes model's outputs (which are the ``_fraction`` columns):
    ``{question}_proportion_asked`` (Q), then the 90% intervals ``..._90pc-lower`` (K) and ``-upper`` (K)."""
    lower, upper = schema.interval_columns
    return [*schema.proportion_asked_columns, *lower, *upper]


def cumulative_columns(schema: Schema, outputs: np.ndarray) -> dict[str, np.ndarray]:
    """The :func:`cumulative_column_names` columns from cumulative vote fractions (N, K).

    Each question's fractions are its cumulative values divided by its parent answer's
    (computed in float64), so they sum to 1 wherever the parent is above 0; a question
    whose parent answer is exactly 0 (never reached) gets 0 fractions and proportion asked 0.

    Returns
    -------
    dict of str to numpy.ndarray (N,) float32
    """
    return fraction_table(to_conditional(outputs, schema), schema)


def vote_columns(schema: Schema, outputs: np.ndarray, concentrations: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The :func:`vote_column_names` columns from expected conditional fractions (N, K).

    ``concentrations`` (N, K), the Dirichlet concentrations behind ``outputs``, give the
    intervals (:func:`galaxy_ray.trees.dirichlet.fraction_intervals`); without them, none.
    """
    lower = upper = None
    if concentrations is not None:
        lower, upper = fraction_intervals(concentrations, schema)
    table = fraction_table(outputs, schema, lower, upper)
    return {name: table[name] for name in vote_column_names(schema) if name in table}
