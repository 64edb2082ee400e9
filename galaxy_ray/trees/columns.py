"""A model's Galaxy Zoo tree columns, row by row: conditional fractions, proportions asked, intervals.

A GZ2 model predicts Kaggle's 37 **cumulative** vote fractions; the catalog
also carries the **conditional** ``{question}_{answer}_fraction`` columns and
``{question}_proportion_asked`` that GZ2 (Hart et al. 2016), GZ DECaLS and GZ
DESI (Walmsley et al. 2022, 2023) publish.  A votes model predicts the
conditional fractions themselves, and gets the proportions asked and the 90%
intervals of its Dirichlet concentrations.

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
from galaxy_ray.trees.gz2 import GZ2
from galaxy_ray.trees.registry import get_schema
from galaxy_ray.trees.schema import Schema

__all__ = ["CUMULATIVE_TASKS", "tree_of_task", "tree_column_names", "tree_columns"]

#: The tree of each task whose outputs are cumulative vote fractions.
CUMULATIVE_TASKS: dict[str, Schema] = {"gz2": GZ2}


def tree_of_task(task: str, tree: str | None = None) -> Schema | None:
    """The Galaxy Zoo tree a task predicts: GZ2 for ``gz2``, ``tree`` for ``votes``, else None."""
    if task == "votes":
        return get_schema(tree) if tree is not None else None
    return CUMULATIVE_TASKS.get(task)


def tree_column_names(task: str, tree: str | None = None) -> list[str]:
    """The columns after the outputs.

    gz2: ``{question}_{answer}_fraction`` (K) then ``{question}_proportion_asked`` (Q).  votes (whose
    outputs are the ``_fraction`` columns): ``{question}_proportion_asked`` (Q), then the 90%
    intervals ``{question}_{answer}_90pc-lower`` (K) and ``-upper`` (K).  Empty for ``classes``.
    """
    schema = tree_of_task(task, tree)
    if schema is None:
        return []
    if task == "votes":
        lower, upper = schema.interval_columns
        return [*schema.proportion_asked_columns, *lower, *upper]
    return [*schema.fraction_columns, *schema.proportion_asked_columns]


def tree_columns(task: str, outputs: np.ndarray, tree: str | None = None,
                 concentrations: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The tree columns of :func:`tree_column_names` from a model's outputs.

    Parameters
    ----------
    task : str
        The model's task; a task without a tree gives no columns.
    outputs : array_like, shape (N, K)
        gz2: the cumulative vote fractions (Kaggle order); votes: the expected conditional fractions.
    tree : str, optional
        votes: the model's tree.
    concentrations : array_like, shape (N, K), optional
        votes: the Dirichlet concentrations behind ``outputs``, for the intervals
        (:func:`galaxy_ray.trees.dirichlet.fraction_intervals`); without them, none.

    Returns
    -------
    dict of str to numpy.ndarray (N,) float32
        :func:`tree_column_names` order.  gz2: each question's fractions are its cumulative values
        divided by its parent answer's (computed in float64), so they sum to 1 wherever the
        parent is above 0; a question whose parent answer is exactly 0 (never reached) gets 0
        fractions and proportion asked 0.

    References
    ----------
    Hart et al. 2016, MNRAS 461, 3663; Walmsley et al. 2023, MNRAS 526, 4768.
    """
    schema = tree_of_task(task, tree)
    if schema is None:
        return {}
    if task != "votes":
        return fraction_table(to_conditional(outputs, schema), schema)
    lower = upper = None
    if concentrations is not None:
        lower, upper = fraction_intervals(concentrations, schema)
    table = fraction_table(outputs, schema, lower, upper)
    return {name: table[name] for name in tree_column_names(task, tree) if name in table}
