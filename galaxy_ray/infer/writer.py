"""The driver's side of the catalog: rows per unit in, one published Parquet file per unit out.

Every row in flight is tagged with its unit.  The driver consumes the stream
of catalog rows (small: a few hundred bytes a row), keeps only the units still
in flight, and publishes a unit's file atomically
(``storage.write_bytes_atomic``: temp file + rename locally, a single PUT on
S3) as soon as its last row arrives, sorted by ``_healpix_29``.  A rerun skips
units whose file exists, so after a crash or kill every object ends up in
exactly one file.

Why not ``Dataset.write_parquet``: it writes one file per block under names
that change from run to run, so a rerun cannot tell which inputs are done,
and it cannot sort a file or hold a file back until its unit is complete.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from galaxy_ray import catalog
from galaxy_ray.errors import GalaxyRayError, error_reason
from galaxy_ray.infer.plan import UNIT_COLUMN, Unit
from galaxy_ray.io import storage
from galaxy_ray.progress import Progress
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["UnitWriter", "catalog_totals"]


class UnitWriter:
    """Collect catalog rows per unit and publish each unit's file when complete.

    Only units with rows in flight are held in memory.

    Parameters
    ----------
    out : str
        Catalog directory, path or ``s3://``.
    pending : sequence of Unit
        The units this run writes.
    provenance : dict
        Recorded in every file's footer.
    log : callable
        Receives a line per published file.
    progress : bool or Progress
        True shows rows written of the pending units' total, rows/s, time left
        and errors so far (:class:`galaxy_ray.progress.Progress`: a bar in a
        terminal, a line every 10 s or 5 % in a log); a :class:`Progress` is used as given.
    """

    def __init__(self, out: str, pending: Sequence[Unit], provenance: dict, log: Callable[[str], None] = print,
                 progress: bool | Progress = False):
        self.out = out
        self.units = {u.index: u for u in pending}
        self.parts: dict[int, list[pa.Table]] = {}
        self.seen: dict[int, int] = {}
        self.provenance = provenance
        self.log = log
        self.done = 0
        self.rows = 0
        self.error_rows = 0
        self.errors_by_reason: Counter[str] = Counter()
        #: SHA-256 (hex) of each file this run published, by name (``_catalog.json``'s ``files_sha256``)
        self.sha256: dict[str, str] = {}
        #: When the first rows arrived (``time.perf_counter``) and how many: the end of start-up.
        self.first_rows_at: float | None = None
        self.first_rows = 0
        self.total_rows = sum(int(u.rows) for u in pending)
        if isinstance(progress, Progress):
            self.progress = progress
        else:
            self.progress = Progress(self.total_rows, "infer", "rows", errors=True, enabled=bool(progress))

    def add(self, table: pa.Table) -> None:
        """Take a batch of catalog rows tagged with their unit.

        Raises
        ------
        GalaxyRayError
            A unit got more rows than its input holds (the source changed during the run).
        """
        if table.num_rows == 0:
            return
        if self.first_rows_at is None:
            self.first_rows_at, self.first_rows = time.perf_counter(), table.num_rows
        self.progress.update(table.num_rows, errors=table.num_rows - table.column(C.ERROR).null_count)
        units = table.column(UNIT_COLUMN).to_numpy()
        for index in np.unique(units):
            index = int(index)
            part = table.filter(pa.array(units == index))
            self.parts.setdefault(index, []).append(part)
            self.seen[index] = self.seen.get(index, 0) + part.num_rows
            expected = self.units[index].rows
            if self.seen[index] > expected:
                raise GalaxyRayError(
                    f"{self.units[index].name}: got {self.seen[index]} rows for {expected} inputs; "
                    "the source changed while the job ran? rerun it"
                )
            if self.seen[index] == expected:
                self._publish(index)

    def _publish(self, index: int) -> None:
        unit = self.units[index]
        # write_catalog_file sorts the rows by _healpix_29
        table = pa.concat_tables(self.parts.pop(index)).drop_columns([UNIT_COLUMN])
        errors = table.num_rows - table.column(C.ERROR).null_count
        reasons = Counter(error_reason(e) for e in table.column(C.ERROR).drop_null().to_pylist())
        # classified rows a cone search or HATS cannot place: counted, so no position is lost unsaid
        unplaced = pc.sum(pc.and_(pc.is_null(table.column(C.ERROR)), pc.is_null(table.column(C.RA)))).as_py() or 0
        provenance = dict(self.provenance, rows=table.num_rows, error_rows=errors, file=unit.name,
                          errors_by_reason=dict(reasons), rows_without_position=int(unplaced))
        if unit.shards:
            provenance["input_shards"] = [os.path.basename(s) for s in unit.shards]
        if unit.row_range:
            provenance["input_rows"] = list(unit.row_range)
        self.sha256[unit.name] = catalog.write_catalog_file(table, storage.join(self.out, unit.name), provenance)
        self.done += 1
        self.rows += table.num_rows
        self.error_rows += errors
        self.errors_by_reason += reasons
        self.progress.write(f"published {unit.name}: {table.num_rows} rows, {errors} errors "
                            f"({self.done}/{len(self.units)} files this run)", self.log)
        if self.done == len(self.units):
            self.progress.close()

    def close(self) -> None:
        """End the progress display (also done when the last unit is published)."""
        self.progress.close()

    def unfinished(self) -> list[str]:
        """Units that did not receive all their rows."""
        return [f"{self.units[i].name} ({self.seen.get(i, 0)}/{u.rows} rows)"
                for i, u in self.units.items() if self.seen.get(i, 0) < u.rows]


def catalog_totals(out: str, names: Sequence[str]) -> dict[str, Any]:
    """Totals of the published files ``names`` in ``out``, from their footers.

    Returns
    -------
    dict
        ``rows``, ``error_rows``, ``errors_by_reason`` (most common first) and
        ``rows_without_position`` (rows without an error but without RA/Dec).
    """

    def read(name: str) -> dict:
        return catalog.read_provenance(storage.join(out, name)) or {}

    with ThreadPoolExecutor(max_workers=16) as pool:
        footers = list(pool.map(read, names))
    reasons: Counter[str] = Counter()
    for prov in footers:
        reasons.update(prov.get("errors_by_reason", {}))
    return {"rows": sum(int(p.get("rows", 0)) for p in footers),
            "error_rows": sum(int(p.get("error_rows", 0)) for p in footers),
            "errors_by_reason": dict(reasons.most_common()),
            "rows_without_position": sum(int(p.get("rows_without_position", 0)) for p in footers)}
