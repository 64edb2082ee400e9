"""The vote-count target of a votes model: a tree's count columns as one ``vote_counts`` list per row.

A Galaxy Zoo vote table names each answer's count in a column of its own
(``smooth-or-featured-dr5_smooth``, ``t01_smooth_or_features_a01_smooth_count``, ...).
Sources carry those columns through as they are (a manifest's extra columns, a GZ2 catalog's
Hart et al. counts, packed shards of either); training and evaluation find the tree's columns
(:func:`galaxy_ray.trees.vote_columns`) and stack them, in the tree's answer order, into the
``vote_counts`` column, so that the rest of the pipeline handles one target column, as for
GZ2's ``votes``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from galaxy_ray.data.labels import column_names
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.trees import Schema, TreeMatch, get_schema, identify_tree, vote_columns

__all__ = ["find_vote_columns", "stack_counts", "attach_vote_counts"]


def find_vote_columns(columns: Sequence[str], tree: str | None, where: str) -> TreeMatch:
    """The vote-count columns of ``tree`` (or of the one tree whose counts the table has).

    Parameters
    ----------
    columns : sequence of str
        The source's columns.
    tree : str or None
        ``--schema``; None: the tree whose complete set of count columns is there.
    where : str
        The source, for messages.

    Raises
    ------
    GalaxyRayError
        One line: no tree's counts (with what to pass), another tree's, or some columns missing.
    """
    if tree is not None:
        return vote_columns(columns, get_schema(tree), where, kind="counts")
    found = identify_tree(columns)
    if found is None or found.kind != "counts":
        raise GalaxyRayError(f"{where}: no Galaxy Zoo vote-count columns (such as smooth-or-featured-dr5_smooth or "
                             "t01_smooth_or_features_a01_smooth_count); --task votes trains on vote counts: pass "
                             "--schema and a table that has them, or --task gz2 for vote fractions")
    return found


def stack_counts(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """``table`` with a ``vote_counts`` column: ``columns`` per row as list<float32>.

    A row whose counts are all missing gets a null list (unlabelled); a missing count among
    others is 0 (nobody gave that answer).  Negative counts are refused.

    Raises
    ------
    GalaxyRayError
        A negative vote count (naming its column).
    """
    n = table.num_rows
    values = np.empty((n, len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        values[:, j] = table.column(name).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    missing = np.isnan(values).all(axis=1)
    values = np.nan_to_num(values, nan=0.0)
    negative = (values < 0).any(axis=0)
    if negative.any():
        raise GalaxyRayError(f"vote count column {columns[int(np.argmax(negative))]!r} holds negative values")
    offsets = pa.array(np.arange(0, (n + 1) * len(columns), len(columns), dtype=np.int32))
    counts = pa.ListArray.from_arrays(offsets, pa.array(values.ravel(), type=pa.float32()),
                                      type=pa.list_(pa.float32()), mask=pa.array(missing))
    if C.VOTE_COUNTS in table.column_names:
        table = table.drop_columns([C.VOTE_COUNTS])
    return table.append_column(C.VOTE_COUNTS, counts)


def attach_vote_counts(ds, tree: str | None, where: str) -> tuple[object, Schema]:
    """A Ray Dataset with the ``vote_counts`` column, and the tree its counts follow.

    Parameters
    ----------
    ds : ray.data.Dataset
        The cutout table of a source.
    tree : str or None
        As for :func:`find_vote_columns`.
    where : str
        The source, for messages.

    Returns
    -------
    (ray.data.Dataset, Schema)
    """
    match = find_vote_columns(column_names(ds), tree, where)
    stacked = ds.map_batches(stack_counts, fn_kwargs={"columns": list(match.columns)}, batch_format="pyarrow",
                             batch_size=None, zero_copy_batch=True)
    return stacked, match.schema
