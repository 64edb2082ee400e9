"""Units of work: which input rows go into which output file, known before anything runs.

* packed shards (the fast path): a run of consecutive shard files (sorted by
  name) adding up to about ``rows_per_file`` rows, counted from the Parquet
  footers; the file is ``part-<first>-<last>.parquet`` after the shard
  indices.  Completed units are not even read on a rerun.
* any other format: the source lists its cutouts on the driver in a fixed
  order (``Source.metadata()``: ids, positions and file locations, no pixels;
  the order ``galaxy-ray pack`` uses too), and consecutive runs of
  ``rows_per_file`` rows of that list are the units, written as
  ``part-r<first row>-<last row>.parquet``.  Only the rows of unfinished units
  are read.

The file names encode the plan, so files of a different plan (another
``--rows-per-file``) in the same output are recognised and stop the run
instead of duplicating rows.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.infer import run_key
from galaxy_ray.io import layout, storage

__all__ = ["DEFAULT_ROWS_PER_FILE", "UNIT_COLUMN", "Unit", "Plan", "plan_shard_units", "plan_row_units",
           "make_plan"]

#: Default rows per output file (one row group: the catalog's row-group limit).
DEFAULT_ROWS_PER_FILE = 100_000
#: The metadata column of file-per-object sources naming each row's cutout file (``sources._common.PATH``).
_CUTOUT_PATH = "_path"
#: Column that tags every row in flight with the index of its unit (never written to the catalog).
UNIT_COLUMN = "_unit"


@dataclass(frozen=True)
class Unit:
    """One output file and the input it covers.

    Attributes
    ----------
    index : int
        Position in the plan.
    name : str
        Output file name, e.g. ``part-00000-00003.parquet``.
    rows : int
        Number of input rows (= catalog rows) in the unit.
    shards : tuple of str
        Input shard URIs (packed shards only).
    row_range : tuple of int
        First and last row of the source's metadata order, inclusive (other formats).
    """

    index: int
    name: str
    rows: int
    shards: tuple[str, ...] = ()
    row_range: tuple[int, int] | None = None


@dataclass
class Plan:
    """How the input splits into output files."""

    kind: str  # "shards" or "rows"
    units: list[Unit]
    #: shard plans: unit index of every shard file, by base name
    shard_unit: dict[str, int] = field(default_factory=dict)
    #: shard plans: the columns of the first shard (from its footer)
    columns: list[str] = field(default_factory=list)
    #: row plans: the source (a galaxy_ray.data.sources.Source) and its metadata table
    source: Any = None
    metadata: Any = None
    #: what the plan knows of the input, hashed (galaxy_ray.infer.run_key): another input, another fingerprint
    fingerprint: str = ""
    #: every input file's name, size and modification time (or ETag), hashed: a file rewritten in place changes it
    input_files: str = ""
    #: the files the plan reads (shards, or cutouts and the table naming them)
    inputs: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(u.rows for u in self.units)

    def foreign(self, names: Iterable[str]) -> list[str]:
        """The names among ``names`` (catalog files found in the output) that this plan does not write."""
        return sorted(set(names) - {u.name for u in self.units})


def _group(counts: Sequence[int], rows_per_file: int) -> list[tuple[int, int]]:
    """Split consecutive items into runs (first, last) of about ``rows_per_file`` rows.

    A run closes as soon as it holds ``rows_per_file`` rows or more, so it never
    exceeds ``rows_per_file`` by more than one item.  Every item belongs to a
    run (empty ones too, so the runs tile the input), but no run is empty.
    """
    _check_rows_per_file(rows_per_file)
    runs, first, total = [], 0, 0
    for i, n in enumerate(counts):
        total += n
        if total >= rows_per_file:
            runs.append((first, i))
            first, total = i + 1, 0
    if first < len(counts):
        if total > 0:
            runs.append((first, len(counts) - 1))
        elif runs:  # trailing empty items join the last run
            runs[-1] = (runs[-1][0], len(counts) - 1)
    return runs


def _check_rows_per_file(rows_per_file: int) -> None:
    if rows_per_file < 1:
        raise GalaxyRayError(f"--rows-per-file {rows_per_file}: must be at least 1")


def plan_shard_units(shards: Sequence[str], rows: Sequence[int], rows_per_file: int) -> Plan:
    """Group consecutive packed shards into units of about ``rows_per_file`` rows.

    Parameters
    ----------
    shards : sequence of str
        Shard URIs in name order (their position is their index).
    rows : sequence of int
        Rows in each shard (from the Parquet footers).
    rows_per_file : int
        Target rows per output file.

    Raises
    ------
    GalaxyRayError
        ``rows_per_file`` is below 1.
    """
    units = []
    for first, last in _group(rows, rows_per_file):
        units.append(Unit(
            index=len(units),
            name=f"{layout.PART_PREFIX}{first:05d}-{last:05d}{layout.PART_SUFFIX}",
            rows=int(sum(rows[first : last + 1])),
            shards=tuple(shards[first : last + 1]),
        ))
    shard_unit = {os.path.basename(s): u.index for u in units for s in u.shards}
    return Plan("shards", units, shard_unit=shard_unit)


def plan_row_units(total_rows: int, rows_per_file: int) -> Plan:
    """Cut ``total_rows`` rows (in the source's fixed order) into units of ``rows_per_file``.

    Raises
    ------
    GalaxyRayError
        ``rows_per_file`` is below 1.
    """
    _check_rows_per_file(rows_per_file)
    units = []
    for first in range(0, total_rows, rows_per_file):
        last = min(first + rows_per_file, total_rows) - 1
        units.append(Unit(index=len(units), name=f"{layout.PART_PREFIX}r{first:09d}-{last:09d}{layout.PART_SUFFIX}",
                          rows=last - first + 1, row_range=(first, last)))
    return Plan("rows", units)


def _shard_footers(shards: Sequence[str]) -> list[pq.FileMetaData]:
    """Parquet footers of the shards (in parallel: each is an S3 round trip)."""

    def footer(uri: str) -> pq.FileMetaData:
        fs, path = storage.pyarrow_filesystem(uri)
        try:
            with fs.open_input_file(path) as f:
                return pq.ParquetFile(f).metadata
        except (OSError, pa.ArrowInvalid) as exc:
            raise GalaxyRayError(f"{uri}: not a readable Parquet shard ({exc}); repack the source") from None

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(footer, shards))


def make_plan(source, rows_per_file: int) -> Plan:
    """The unit plan of an opened source: from shard footers, or from the source's metadata table.

    Parameters
    ----------
    source : galaxy_ray.data.sources.Source
        The source, opened once by the caller (its files are listed already).
    rows_per_file : int
        Target rows per output file.

    Raises
    ------
    GalaxyRayError
        ``rows_per_file`` is below 1, or a shard is not readable Parquet.
    """
    if source.format == "shards":
        shards = [f for f in source.files if not os.path.basename(f).startswith((".", "_"))]
        footers = _shard_footers(shards)
        plan = plan_shard_units(shards, [f.num_rows for f in footers], rows_per_file)
        plan.columns = footers[0].schema.to_arrow_schema().names if footers else []
        plan.fingerprint = run_key.shard_fingerprint(shards, footers)
        plan.inputs = list(shards)
        plan.input_files = run_key.files_fingerprint(shards)
        return plan
    meta = source.metadata()  # ids, positions, file locations: no pixels
    plan = plan_row_units(len(meta), rows_per_file)
    plan.source, plan.metadata = source, meta
    plan.fingerprint = run_key.metadata_fingerprint(meta)
    plan.inputs = input_files(source, meta)
    plan.input_files = run_key.files_fingerprint(plan.inputs)
    return plan


def input_files(source, meta) -> list[str]:
    """The files a non-shard source reads: each row's cutout (``_path``) and the table or file naming them.

    Parameters
    ----------
    source : galaxy_ray.data.sources.Source
        The opened source (its listing is on the driver).
    meta : pandas.DataFrame
        Its metadata table.
    """
    files = [str(p) for p in meta[_CUTOUT_PATH] if isinstance(p, str) and p] if _CUTOUT_PATH in meta.columns else []
    files += [getattr(source, a) for a in ("table_uri", "solutions") if isinstance(getattr(source, a, None), str)]
    listing = getattr(source, "listing", None)
    if listing is not None:
        # one file given (a FITS table, an HDF5 file), or the one file of a folder's listing the source reads
        files += list(listing.files) if not listing.is_dir else [f for f in listing.files if f == source.uri]
    return sorted(set(files))
