"""What a vote table's count columns hold, checked on the driver before anything trains on them.

A Galaxy Zoo vote count is a whole, non-negative number of volunteers.  Tables that reach
``--task votes`` with something else in those columns train without complaint and publish a model
of nothing: a broken join leaves every count 0 or missing ("best val_loss 0.0000; RMSE nan"),
fractions pasted into the count columns are all <= 1, a text cell ("n/a") or a negative count is
a typo.  :func:`scan_counts` reads the count columns once (one streamed pass over those columns
only) and :meth:`CountScan.refuse_unusable` says in one line which column holds what and what to
do.  The pass runs on the driver, so the message never arrives inside a Ray task's traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from galaxy_ray.errors import GalaxyRayError

__all__ = ["ColumnScan", "CountScan", "scan_counts", "column_values"]

#: How far from a whole number a stored count may be (float32 storage of 37 is 37.0 exactly; 1e-3 is generous).
INTEGER_TOLERANCE = 1e-3


@dataclass
class ColumnScan:
    """What one count column holds over the whole table (the first offending value of each kind kept)."""

    name: str
    values: int = 0
    text: Any = None
    negative: float | None = None
    non_finite: float | None = None
    non_integer: float | None = None
    maximum: float = float("-inf")

    def add(self, values: np.ndarray, text: Any) -> None:
        """Fold in one batch: ``values`` float64 (NaN = missing), ``text`` a cell that is not a number, or None."""
        if text is not None and self.text is None:
            self.text = text
        present = values[~np.isnan(values)]
        self.values += int(present.size)
        if not present.size:
            return
        finite = present[np.isfinite(present)]
        if self.non_finite is None and finite.size < present.size:
            self.non_finite = float(present[~np.isfinite(present)][0])
        if not finite.size:
            return
        self.maximum = max(self.maximum, float(finite.max()))
        if self.negative is None and (finite < 0).any():
            self.negative = float(finite[finite < 0][0])
        off = np.abs(finite - np.round(finite)) > INTEGER_TOLERANCE
        if self.non_integer is None and off.any():
            self.non_integer = float(finite[off][0])


@dataclass
class CountScan:
    """The count columns of one tree over a whole table."""

    columns: tuple[str, ...]
    rows: int = 0
    rows_with_votes: int = 0
    per_column: dict[str, ColumnScan] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.per_column = {c: ColumnScan(c) for c in self.columns}

    def add(self, batch: dict[str, tuple[np.ndarray, Any]]) -> None:
        """Fold in one batch: each column's (float64 values, a text cell or None)."""
        stacked = np.stack([batch[c][0] for c in self.columns], axis=1) if self.columns else np.zeros((0, 0))
        self.rows += len(stacked)
        with np.errstate(invalid="ignore"):
            self.rows_with_votes += int((np.nan_to_num(stacked, nan=0.0, posinf=0.0, neginf=0.0) > 0).any(axis=1).sum())
        for c in self.columns:
            self.per_column[c].add(*batch[c])

    def _first(self, attr: str) -> ColumnScan | None:
        return next((s for s in self.per_column.values() if getattr(s, attr) is not None), None)

    def _named(self, attr: str) -> str:
        """``column 'x' holds`` or ``columns 'x' and 3 more hold``: the columns with a value of kind ``attr``."""
        bad = [s.name for s in self.per_column.values() if getattr(s, attr) is not None]
        if len(bad) == 1:
            return f"column {bad[0]!r} holds"
        return f"columns {bad[0]!r} and {len(bad) - 1} more hold"

    def refuse_unusable(self, where: str, title: str) -> None:
        """Raise one line when these columns cannot be vote counts; return when they can.

        Raises
        ------
        GalaxyRayError
            Text, negative, infinite or non-integer counts (naming the first column and value),
            counts that are all 0 or missing, or counts that are never above 1 (fractions).
        """
        fix = "fix those cells (a count is a whole number of volunteers, blank where unknown)"
        if (s := self._first("text")) is not None:
            raise GalaxyRayError(f"{where}: vote count {self._named('text')} text (e.g. {s.text!r}); "
                                 f"{fix}")
        if (s := self._first("negative")) is not None:
            raise GalaxyRayError(f"{where}: vote count {self._named('negative')} negative values "
                                 f"(e.g. {s.negative:g}); {fix}")
        if (s := self._first("non_finite")) is not None:
            raise GalaxyRayError(f"{where}: vote count {self._named('non_finite')} {s.non_finite:g}; "
                                 f"{fix}")
        top = max((s.maximum for s in self.per_column.values()), default=float("-inf"))
        if (s := self._first("non_integer")) is not None:
            what = ("every count is <= 1: these look like vote fractions, not counts; --task votes needs the "
                    "counts (for GZ2 fractions use --task gz2)") if top <= 1 else fix
            raise GalaxyRayError(f"{where}: vote count {self._named('non_integer')} non-integer values "
                                 f"(e.g. {s.non_integer:g}); {what}")
        if not self.rows_with_votes:
            seen = sum(s.values for s in self.per_column.values())
            state = "is 0" if seen else "is missing"
            raise GalaxyRayError(f"{where}: every {title} vote count {state} in all {self.rows} rows "
                                 f"({len(self.columns)} columns, e.g. {self.columns[0]!r}); nothing to learn from: "
                                 "check the join or the columns that filled them")
        if top <= 1:
            raise GalaxyRayError(f"{where}: no {title} vote count is above 1 in {self.rows} rows (e.g. column "
                                 f"{self.columns[0]!r}): these look like 0/1 flags or fractions, not the number of "
                                 "volunteers per answer; give the vote counts")


def column_values(values: pa.Array | pa.ChunkedArray | Sequence[Any]) -> tuple[np.ndarray, Any]:
    """A count column as float64 (NaN where missing) and its first cell that is not a number (or None).

    Numbers stored as text (a CSV column Arrow read as strings) are numbers; an empty cell is missing;
    true/false is not a count.
    """
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        typ = values.type
        if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ) or pa.types.is_null(typ):
            return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64), None
        values = values.to_pylist()
    series = pd.Series(list(values), dtype=object)
    if len(series) and series.map(lambda v: isinstance(v, (bool, np.bool_))).any():
        return np.full(len(series), np.nan), next(v for v in series if isinstance(v, (bool, np.bool_)))
    blank = series.map(lambda v: v is None or (isinstance(v, str) and not v.strip()) or (
        not isinstance(v, str) and pd.isna(v)))
    numbers = pd.to_numeric(series.where(~blank, None), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(numbers) & ~blank.to_numpy(dtype=bool)
    return numbers, (series[bad].iloc[0] if bad.any() else None)


def scan_counts(batches: Iterable[pa.Table], trees: Sequence[Sequence[str]]) -> list[CountScan]:
    """One :class:`CountScan` per column set in ``trees``, from a stream of Arrow batches holding them all."""
    scans = [CountScan(tuple(columns)) for columns in trees]
    for batch in batches:
        names = {c for s in scans for c in s.columns}
        converted = {c: column_values(batch.column(c)) for c in names}
        for scan in scans:
            scan.add(converted)
    return scans
