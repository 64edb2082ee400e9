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

import logging
from typing import Sequence

import numpy as np
import pyarrow as pa

from galaxy_ray import runtime
from galaxy_ray.data.labels import column_names
from galaxy_ray.data.vote_checks import CountScan, column_values, scan_counts
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.trees import Schema, TreeMatch, get_schema, match_trees, vote_columns

__all__ = ["find_vote_columns", "candidate_trees", "choose_tree", "stack_counts", "attach_vote_counts"]


def find_vote_columns(columns: Sequence[str], tree: str | None, where: str) -> TreeMatch:
    """The vote-count columns of ``tree`` (or of the one tree whose counts the table has), from names alone.

    Parameters
    ----------
    columns : sequence of str
        The source's columns.
    tree : str or None
        ``--schema``; None: the tree whose complete set of count columns is there (the first of
        :func:`candidate_trees`; :func:`attach_vote_counts` decides between several by their votes).
    where : str
        The source, for messages.

    Raises
    ------
    GalaxyRayError
        One line: no tree's counts (with what to pass), another tree's, or some columns missing.
    """
    if tree is not None:
        return vote_columns(columns, get_schema(tree), where, kind="counts")
    return candidate_trees(columns, None, where)[0]


def candidate_trees(columns: Sequence[str], tree: str | None, where: str) -> list[TreeMatch]:
    """Every complete set of vote-count columns in a table, one match per distinct set of columns.

    With ``tree`` the first is that tree's (:func:`galaxy_ray.trees.vote_columns`); the others are
    further trees whose counts the table also holds (a GZ DESI table with DR5 and DR8 columns).
    Column sets that fit several trees (DR5 and DR8 in release naming, the same tree) appear once,
    as the first tree listed.

    Raises
    ------
    GalaxyRayError
        As :func:`find_vote_columns`.
    """
    complete = [m for m in match_trees(columns, kinds=("counts",)) if m.complete]
    own = [vote_columns(columns, get_schema(tree), where, kind="counts")] if tree is not None else []
    distinct: list[TreeMatch] = list(own)
    for match in sorted(complete, key=lambda m: -len(m.columns)):
        if all(set(match.columns) != set(d.columns) for d in distinct):
            distinct.append(match)
    if not distinct:
        raise GalaxyRayError(f"{where}: no Galaxy Zoo vote-count columns (such as smooth-or-featured-dr5_smooth or "
                             "t01_smooth_or_features_a01_smooth_count); --task votes trains on vote counts: pass "
                             "--schema and a table that has them, or --task gz2 for vote fractions")
    return distinct


def _alike(match: TreeMatch) -> list[str]:
    """The --schema names whose count columns are exactly ``match``'s (DR5 and DR8 in release naming)."""
    return [m.schema.name for m in match_trees(match.columns, kinds=("counts",))
            if m.complete and set(m.columns) == set(match.columns)]


def _votes_in(scan: CountScan) -> str:
    return f"votes in {scan.rows_with_votes} of {scan.rows} rows"


def choose_tree(matches: Sequence[TreeMatch], scans: Sequence[CountScan], tree: str | None,
                where: str) -> tuple[TreeMatch, CountScan, str]:
    """The tree to learn, its scan, and the one line that says which and why (and how to pick another).

    Parameters
    ----------
    matches, scans
        :func:`candidate_trees` and one :class:`~galaxy_ray.data.vote_checks.CountScan` per match.
    tree : str or None
        ``--schema``.

    Raises
    ------
    GalaxyRayError
        Several trees' counts, more than one of them with votes, and no ``--schema``: which rows a
        model learns from depends on the choice, so the user makes it.
    """
    first = matches[0]
    e_g = f"{len(first.columns)} count columns such as {first.columns[0]!r}"
    if tree is not None:
        line = (f"vote counts: {first.schema.title} ({first.schema.name}), the tree asked for (--schema or the "
                f"checkpoint), {e_g}; {_votes_in(scans[0])}")
        others = [f"{m.schema.name}'s ({s.rows_with_votes} rows with votes): pass --schema {m.schema.name} for them"
                  for m, s in zip(matches[1:], scans[1:])]
        return first, scans[0], line + ("; not used: the table's counts of " + "; ".join(others) if others else "")
    if len(matches) == 1:
        alike = _alike(first)
        line = f"vote counts: {first.schema.title} ({first.schema.name}), the tree whose {e_g} the table has"
        if len(alike) > 1:
            line += (f" (these names fit {' and '.join(alike)} alike, the same tree; pass --schema "
                     f"{alike[-1]} to record it as that)")
        return first, scans[0], f"{line}; {_votes_in(scans[0])}"
    voted = [i for i, s in enumerate(scans) if s.rows_with_votes]
    listing = ", ".join(f"{m.schema.title} counts ({s.rows_with_votes} rows with votes, e.g. {m.columns[0]!r})"
                        for m, s in zip(matches, scans))
    choices = " or ".join(f"--schema {m.schema.name}" for m in matches)
    if len(voted) > 1:
        raise GalaxyRayError(f"{where}: holds {listing}; a votes model learns one tree: pass {choices} "
                             "(rows without that tree's votes then add nothing)")
    pick = voted[0] if voted else 0
    match, scan = matches[pick], scans[pick]
    rest = " or ".join(f"--schema {m.schema.name}" for i, m in enumerate(matches) if i != pick)
    return match, scan, (f"vote counts: holds {listing}; using {match.schema.name}, the only one with votes "
                         f"({_votes_in(scan)}); pass {rest} for the other")


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
        values[:, j] = column_values(table.column(name))[0]  # text was refused on the driver
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

    One streamed pass over the count columns (only those) comes first, on the driver: it picks the
    tree when the table holds several (:func:`choose_tree`, which says so in one line) and refuses
    counts that cannot be counts (:meth:`~galaxy_ray.data.vote_checks.CountScan.refuse_unusable`),
    so that neither reaches a Ray task's traceback nor a trained model.

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

    Raises
    ------
    GalaxyRayError
        No usable tree's counts, several with votes and no ``--schema``, or unusable counts.
    """
    matches = candidate_trees(column_names(ds), tree, where)
    wanted = list(dict.fromkeys(c for m in matches for c in m.columns))
    data_logger = logging.getLogger("ray.data")  # its execution plans would bury the answer
    level = data_logger.level
    data_logger.setLevel(logging.WARNING)
    try:
        batches = ds.select_columns(wanted).iter_batches(batch_format="pyarrow", batch_size=None)
        scans = scan_counts(batches, [m.columns for m in matches])
    finally:
        data_logger.setLevel(level)
    match, scan, line = choose_tree(matches, scans, tree, where)
    scan.refuse_unusable(where, match.schema.title)
    runtime.say(f"galaxy-ray: {line}")
    stacked = ds.map_batches(stack_counts, fn_kwargs={"columns": list(match.columns)}, batch_format="pyarrow",
                             batch_size=None, zero_copy_batch=True)
    return stacked, match.schema
