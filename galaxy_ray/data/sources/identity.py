"""Which rows of a source are the same object or the same cutout.

Two faults look alike in a catalog and differ in what they break:

* **Duplicate ids** -- one ``object_id`` on several rows.  Training must refuse
  them (the split assigns by id, and a catalog keyed by id would hold two
  answers for one object); inference warns and records the count.
* **Identical cutouts** -- different ids whose cutout bytes are the same (one
  galaxy listed twice under two ids, a survey's placeholder image).  Training
  keeps each group on one side of the train/validation split, so validation
  never scores an image the model was trained on.

The caller hashes the bytes it already reads (pack and infer hold each row's
``image``): :func:`cutout_digest` per row, or :func:`digest_column` for a
block of the cutout table, then :func:`find_identity` over ids and digests.
Nothing here reads a file.  Identical means byte-identical: the same pixels
encoded twice (JPEG at two qualities) are not found.

Examples
--------
>>> ids = ["a", "b", "b", "c"]
>>> digests = [cutout_digest(x) for x in (b"1", b"2", b"3", b"1")]
>>> report = find_identity(ids, digests)
>>> report.duplicate_ids, report.identical_groups
({'b': 2}, [['a', 'c']])
>>> split_keys(ids, digests)
['a', 'b', 'b', 'a']
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd
import pyarrow as pa

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C

#: Ids shown in a message about duplicates.
SHOWN = 5
#: Column a caller may add to a table with each row's :func:`cutout_digest`.
DIGEST = "image_digest"


def cutout_digest(data: bytes | None) -> str | None:
    """Hex BLAKE2b-128 digest of a cutout's bytes; None for a row without an image."""
    if data is None:
        return None
    return hashlib.blake2b(bytes(data), digest_size=16).hexdigest()


def digest_column(images: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`cutout_digest` of every value of a cutout table's ``image`` column (nulls stay null)."""
    return pa.array([cutout_digest(v) for v in images.to_pylist()], type=pa.string())


@dataclass(frozen=True)
class IdentityReport:
    """What :func:`find_identity` found.

    Attributes
    ----------
    duplicate_ids : dict of str to int
        Each id on more than one row, with its row count, in first-seen order.
    identical_groups : list of list of str
        Groups of two or more distinct ids whose cutouts are byte-identical; each
        group sorted, groups ordered by their first id.
    """

    duplicate_ids: dict[str, int] = field(default_factory=dict)
    identical_groups: list[list[str]] = field(default_factory=list)

    @property
    def duplicate_rows(self) -> int:
        """Rows beyond the first of each duplicated id (what a deduplication would drop)."""
        return sum(n - 1 for n in self.duplicate_ids.values())

    @property
    def identical_ids(self) -> int:
        """Ids that share their cutout with another id."""
        return sum(len(g) for g in self.identical_groups)

    def summary(self) -> str:
        """One line for a log: counts and a few examples."""
        dup = ", ".join(f"{k} x{n}" for k, n in list(self.duplicate_ids.items())[:SHOWN])
        same = "; ".join(" = ".join(g[:3]) for g in self.identical_groups[:3])
        return (f"{len(self.duplicate_ids)} ids on several rows" + (f" ({dup})" if dup else "")
                + f", {len(self.identical_groups)} groups of identical cutouts" + (f" ({same})" if same else ""))


def duplicate_ids(ids: Sequence[object]) -> dict[str, int]:
    """Ids that appear on more than one row, with their counts (first-seen order)."""
    counts = Counter(str(i) for i in ids)
    return {k: n for k, n in counts.items() if n > 1}


def _groups(ids: Sequence[object], digests: Sequence[str | None]) -> dict[str, list[str]]:
    """Digest -> sorted distinct ids holding it (rows without a digest left out)."""
    if len(ids) != len(digests):
        raise ValueError(f"{len(ids)} ids but {len(digests)} digests")
    by_digest: dict[str, set[str]] = defaultdict(set)
    for i, d in zip(ids, digests):
        if d is not None:
            by_digest[d].add(str(i))
    return {d: sorted(s) for d, s in by_digest.items()}


def find_identity(ids: Sequence[object], digests: Sequence[str | None] | None = None) -> IdentityReport:
    """Duplicate ids and groups of identical cutouts among a source's rows.

    Parameters
    ----------
    ids : sequence, length N
        Each row's ``object_id`` (compared as strings).
    digests : sequence of str or None, length N, optional
        Each row's :func:`cutout_digest` (None: no image); without them only ids are checked.

    Returns
    -------
    IdentityReport
    """
    groups = [] if digests is None else [g for g in _groups(ids, digests).values() if len(g) > 1]
    return IdentityReport(duplicate_ids(ids), sorted(groups))


def table_identity(table: pd.DataFrame | pa.Table) -> IdentityReport:
    """:func:`find_identity` of a table with ``object_id`` and, if any, :data:`DIGEST` or ``image``.

    Parameters
    ----------
    table : pandas.DataFrame or pyarrow.Table
        A source's metadata (``Source.metadata()``: ids only, no pixels read), or
        cutout-table rows; a :data:`DIGEST` column is used as it is, else an
        ``image`` column is hashed.
    """
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    ids = table[C.OBJECT_ID].to_pylist()
    if DIGEST in table.column_names:
        digests = table[DIGEST].to_pylist()
    elif C.IMAGE in table.column_names:
        digests = digest_column(table[C.IMAGE]).to_pylist()
    else:
        digests = None
    return find_identity(ids, digests)


def split_keys(ids: Sequence[object], digests: Sequence[str | None]) -> list[str]:
    """The key each row should be split by, so identical cutouts fall on one side.

    A row whose cutout is shared with other ids gets the smallest of those ids;
    every other row keeps its own id.  Passing these keys to
    :class:`galaxy_ray.data.split.Split` instead of the ids keeps each group of
    identical cutouts in one split, whatever order the rows come in.
    """
    smallest = {d: g[0] for d, g in _groups(ids, digests).items()}
    return [str(i) if d is None else smallest[d] for i, d in zip(ids, digests)]


def refuse_duplicate_ids(ids: Sequence[object], where: str) -> None:
    """Raise when an id is on several rows (training: the split and the catalog are keyed by id).

    Raises
    ------
    GalaxyRayError
        One line naming ``where``, how many ids repeat and the first few of them.
    """
    dup = duplicate_ids(ids)
    if dup:
        shown = ", ".join(f"{k} ({n} rows)" for k, n in list(dup.items())[:SHOWN])
        raise GalaxyRayError(
            f"{where}: {len(dup)} object_id{'s are' if len(dup) > 1 else ' is'} on several rows ({shown}"
            f"{' ...' if len(dup) > SHOWN else ''}); give each cutout its own id or drop the repeats"
        )


#: Largest integer every float64 holds exactly (2**53): above it, ids stored as floats lose digits.
EXACT_FLOAT_ID = 2**53
#: How a CSV writes a float id: a decimal point or an exponent (``5.877229817410355e+17``).
_FLOAT_TEXT = r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$"


def _float_id_error(column: str, where: str, example: object, why: str) -> GalaxyRayError:
    return GalaxyRayError(
        f"{where}: id column '{column}' holds {why} (e.g. {example}), so ids have lost digits and two objects "
        f"can share one; write '{column}' as int64 or as strings (pandas turns an int column with a missing "
        f"value into float64: read it with dtype={{'{column}': str}} or 'Int64')"
    )


def exact_float_ids(values: pd.Series, column: str, where: str) -> pd.Series:
    """Ids that a table stores as floats, as exact integers, or a refusal.

    Parameters
    ----------
    values : pandas.Series of float
        An id column of float type (what pandas makes of an int column with a missing value).
    column, where
        The column and the table, for the message.

    Returns
    -------
    pandas.Series of str
        Each id as its integer digits (``1.0`` -> ``"1"``); NaN stays missing.

    Raises
    ------
    GalaxyRayError
        A value that is not an integer, or above 2**53 in size (float64 cannot
        hold every such integer, so distinct ids may have become one).
    """
    arr = values.to_numpy(dtype="float64", na_value=float("nan"))
    finite = arr[~pd.isna(arr)]
    big = finite[abs(finite) > EXACT_FLOAT_ID]
    if big.size:
        raise _float_id_error(column, where, repr(float(big[0])), "float values above 2**53")
    fractional = finite[finite != finite.round()]
    if fractional.size:
        raise _float_id_error(column, where, repr(float(fractional[0])), "float values that are not integers")
    return values.astype("Int64").astype("string").astype(object).where(values.notna(), None)


def refuse_float_text_ids(values: pd.Series, column: str, where: str) -> None:
    """Refuse ids read as text that a CSV writer printed from floats above 2**53 (``5.877229817410355e+17``).

    Parameters
    ----------
    values : pandas.Series of str
        An id column read as text.
    column, where
        The column and the table, for the message.

    Raises
    ------
    GalaxyRayError
        An id written as a float (a decimal point or an exponent) whose value exceeds 2**53.
    """
    text = values.dropna().astype(str).str.strip()
    floaty = text[text.str.contains(r"[.eE]", regex=True) & text.str.match(_FLOAT_TEXT)]
    if floaty.empty:
        return
    big = floaty[pd.to_numeric(floaty, errors="coerce").abs() > EXACT_FLOAT_ID]
    if not big.empty:
        raise _float_id_error(column, where, big.iloc[0], "floats above 2**53 written as text")
