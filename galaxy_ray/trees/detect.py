"""Which Galaxy Zoo tree a vote table's columns belong to, and its columns in answer order.

A table is recognised by exact column names: each :class:`~galaxy_ray.trees.schema.Schema`
lists, per naming convention, its vote-count columns (``count_forms``) and published fraction
columns (``fraction_forms``).  A table whose columns are a whole set of another tree is named
in a one-line :class:`~galaxy_ray.errors.GalaxyRayError`, so a GZ DESI table given as GZ2 says
so instead of "no labels".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.trees.registry import SCHEMAS
from galaxy_ray.trees.schema import Schema

__all__ = ["TreeMatch", "match_trees", "identify_tree", "vote_columns"]

KINDS = ("counts", "fractions")


@dataclass(frozen=True)
class TreeMatch:
    """How a table's columns fit one tree in one naming convention.

    Attributes
    ----------
    schema : Schema
    kind : str
        ``"counts"`` (vote counts) or ``"fractions"`` (published fractions).
    form : str
        The naming convention, a key of ``schema.count_forms`` / ``schema.fraction_forms``.
    columns : tuple of str
        The convention's column of each answer, in the schema's answer order.
    missing : tuple of str
        Those of ``columns`` the table lacks.
    """

    schema: Schema
    kind: str
    form: str
    columns: tuple[str, ...]
    missing: tuple[str, ...] = ()

    @property
    def found(self) -> int:
        """How many of ``columns`` the table has."""
        return len(self.columns) - len(self.missing)

    @property
    def complete(self) -> bool:
        """True when the table has every column of this convention."""
        return not self.missing


def _forms(schema: Schema, kind: str) -> dict[str, tuple[str, ...]]:
    return dict(schema.count_forms if kind == "counts" else schema.fraction_forms)


def match_trees(columns: Iterable[str], schemas: Sequence[Schema] | None = None,
                kinds: Sequence[str] = KINDS) -> list[TreeMatch]:
    """Every (tree, kind, naming) with at least one column in ``columns``, best first.

    Parameters
    ----------
    columns : iterable of str
        A table's column names.
    schemas : sequence of Schema, optional
        Trees to try (default: all of :data:`~galaxy_ray.trees.registry.SCHEMAS`).
    kinds : sequence of str
        ``"counts"`` and/or ``"fractions"``.

    Returns
    -------
    list of TreeMatch
        Ordered by the share of the convention's columns present (complete ones first), counts
        before fractions at equal share.
    """
    have = set(columns)
    found = []
    for schema in schemas or SCHEMAS.values():
        for kind in kinds:
            for form, names in _forms(schema, kind).items():
                missing = tuple(name for name in names if name not in have)
                if len(missing) < len(names):
                    found.append(TreeMatch(schema, kind, form, names, missing))
    return sorted(found, key=lambda m: (-m.found / len(m.columns), KINDS.index(m.kind)))


def identify_tree(columns: Iterable[str]) -> TreeMatch | None:
    """The complete match of a table's columns with the most answers, or None.

    GZ DECaLS DR5 and DR8 in Galaxy Zoo's release naming (no campaign suffix) match equally;
    the first listed, DR5, is returned (the trees are identical).  A table holding two trees'
    distinct count columns (GZ DESI rows with ``-dr5_`` and ``-dr8_`` counts) also gets the first
    listed here, from names alone; training decides between them by which hold votes and says so
    (:func:`galaxy_ray.data.vote_counts.choose_tree`).
    """
    complete = [m for m in match_trees(columns) if m.complete]
    return max(complete, key=lambda m: (len(m.columns), m.kind == "counts"), default=None)


def vote_columns(columns: Iterable[str], schema: Schema, where: str = "vote table",
                 kind: str = "counts") -> TreeMatch:
    """The columns of ``schema``'s ``kind`` in a table, in answer order.

    Parameters
    ----------
    columns : iterable of str
        The table's column names.
    schema : Schema
        The tree asked for (``--schema``).
    where : str
        The file, for messages.
    kind : str
        ``"counts"`` or ``"fractions"``.

    Returns
    -------
    TreeMatch
        A complete match of ``schema`` (galaxy-datasets naming preferred to release naming).

    Raises
    ------
    GalaxyRayError
        One line: the table is another tree's (named, with the ``--schema`` to pass), it lacks some
        of ``schema``'s columns (the first missing named), or it has none of them.
    """
    columns = list(columns)
    matches = match_trees(columns, kinds=(kind,))
    own = [m for m in matches if m.schema.name == schema.name]
    if own and own[0].complete:
        return own[0]
    others = [m for m in matches if m.schema.name != schema.name and m.complete]
    if others:
        other = others[0]  # trees with the very same columns (DR5 and DR8 in release naming) are all named
        alike = [m.schema for m in others if m.columns == other.columns and m.form == other.form]
        raise GalaxyRayError(
            f"{where}: a {' or '.join(s.title for s in alike)} table ({other.found} {other.kind} columns in "
            f"{other.form} naming, e.g. {other.columns[0]!r}), not {schema.title}; "
            f"pass --schema {' or '.join(s.name for s in alike)}")
    if own:
        best = own[0]
        raise GalaxyRayError(
            f"{where}: {len(best.missing)} of the {len(best.columns)} {schema.title} {kind} columns "
            f"({best.form} naming) are missing, first {best.missing[0]!r}; add them or pass the right --schema")
    example = next(iter(_forms(schema, kind).values()))[0]
    raise GalaxyRayError(f"{where}: no {schema.title} {kind} columns (such as {example!r}) among its "
                         f"{len(columns)} columns; is it a Galaxy Zoo vote table?")
