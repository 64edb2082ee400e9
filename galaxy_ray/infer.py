"""Catalog-scale inference: stream a survey through a model into a Parquet catalog.

The pipeline is one streaming Ray Dataset::

    read + prepare, one CPU task per shard (or slice of rows): decode and
         preprocess (``preprocess.preprocess_batch``, the code training
         uses), fused by Ray Data into the read task
      -> predict: a pool of model actors (``ActorPoolStrategy``; one GPU each
         when the cluster has GPUs), the model loaded once per actor
      -> catalog rows (no pixels) -> the driver's writer -> Parquet files

Ray Data's streaming executor runs both stages at once with a bounded queue
of decoded batches between them (:func:`object_store_budget`), so decoding
overlaps the model and memory does not grow with the input.  Reading and
decoding are one task so that encoded cutouts never wait in the object store:
as separate stages the reader's output took the budget's shared pool and
stalled the decoder for tens of seconds at a time.  Pixels leave the prepare
stage as uint8 on GPU clusters (a quarter of the object-store traffic of
float32; normalised again in the actor) and as float32 on CPU, where the
model, not the traffic, is the bottleneck and the catalog then matches an
in-process run of the same checkpoint exactly.

Units of work and resuming
--------------------------
Each output file covers one deterministic *unit* of the input, known before
anything runs:

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

Every row is tagged with its unit.  The driver consumes the stream of catalog
rows (small: a few hundred bytes a row), keeps only the units still in flight,
and publishes a unit's file atomically (``storage.write_bytes_atomic``: temp
file + rename locally, a single PUT on S3) as soon as its last row arrives,
sorted by ``_healpix_29``.  A rerun of the same command skips units whose file
exists, so after a crash or kill every object ends up in exactly one file.
The file names encode the plan; files from a different plan (another
``--rows-per-file``) in the same output stop the run instead of duplicating
rows.

Why not ``Dataset.write_parquet``: it writes one file per block under names
that change from run to run, so a rerun cannot tell which inputs are done,
and it cannot sort a file or hold a file back until its unit is complete.
The driver-side writer costs little: catalog rows are ~200 bytes, and only
units with rows in flight (a few, as the shards are read in order) are held.

A cutout that cannot be decoded becomes a row with its ``object_id``, the
reason in ``error`` and null predictions; the count of such rows is printed
and recorded in the provenance (Parquet key-value metadata and
``_catalog.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa

from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C

__all__ = [
    "DEFAULT_ROWS_PER_FILE",
    "Unit",
    "Plan",
    "plan_shard_units",
    "plan_row_units",
    "run_inference",
    "predict_files",
    "main",
    "predict_main",
]

#: Default rows per output file (one row group: the catalog's row-group limit).
DEFAULT_ROWS_PER_FILE = 100_000
_UNIT = "_unit"
_PART_GLOB_PREFIX = "part-"


# ---------------------------------------------------------------------------
# Units of work
# ---------------------------------------------------------------------------


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
    #: row plans: the source (a galaxy_ray.data.sources.Source) and its metadata table
    source: Any = None
    metadata: Any = None

    @property
    def rows(self) -> int:
        return sum(u.rows for u in self.units)


def _group(counts: Sequence[int], rows_per_file: int) -> list[tuple[int, int]]:
    """Split consecutive items into runs (first, last) of about ``rows_per_file`` rows.

    A run closes as soon as it holds ``rows_per_file`` rows or more, so it never
    exceeds ``rows_per_file`` by more than one item.  Every item belongs to a
    run (empty ones too, so the runs tile the input), but no run is empty.
    """
    if rows_per_file < 1:
        raise GalaxyRayError(f"--rows-per-file {rows_per_file}: must be at least 1")
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
    """
    units = []
    for first, last in _group(rows, rows_per_file):
        units.append(Unit(
            index=len(units),
            name=f"part-{first:05d}-{last:05d}.parquet",
            rows=int(sum(rows[first : last + 1])),
            shards=tuple(shards[first : last + 1]),
        ))
    shard_unit = {os.path.basename(s): u.index for u in units for s in u.shards}
    return Plan("shards", units, shard_unit=shard_unit)


def plan_row_units(total_rows: int, rows_per_file: int) -> Plan:
    """Cut ``total_rows`` rows (in the source's fixed order) into units of ``rows_per_file``."""
    if rows_per_file < 1:
        raise GalaxyRayError(f"--rows-per-file {rows_per_file}: must be at least 1")
    units = []
    for first in range(0, total_rows, rows_per_file):
        last = min(first + rows_per_file, total_rows) - 1
        units.append(Unit(index=len(units), name=f"part-r{first:09d}-{last:09d}.parquet",
                          rows=last - first + 1, row_range=(first, last)))
    return Plan("rows", units)


def _shard_rows(shards: Sequence[str]) -> list[int]:
    """Row counts of Parquet files from their footers (in parallel: S3 round trips)."""
    import pyarrow.parquet as pq

    def count(uri: str) -> int:
        fs, path = storage.pyarrow_filesystem(uri)
        try:
            with fs.open_input_file(path) as f:
                return pq.ParquetFile(f).metadata.num_rows
        except (OSError, pa.ArrowInvalid) as exc:
            raise GalaxyRayError(f"{uri}: not a readable Parquet shard ({exc}); repack the source") from None

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(count, shards))


def make_plan(source: str, fmt: str, rows_per_file: int) -> Plan:
    """The unit plan of a source: from shard footers, or from the source's metadata table."""
    from galaxy_ray.data import sources

    src = sources.open_source(source, fmt)
    if fmt == "shards":
        shards = [f for f in src.files if not os.path.basename(f).startswith((".", "_"))]
        return plan_shard_units(shards, _shard_rows(shards), rows_per_file)
    meta = src.metadata()  # ids, positions, file locations: no pixels
    plan = plan_row_units(len(meta), rows_per_file)
    plan.source, plan.metadata = src, meta
    return plan


# ---------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------


def _published(out: str) -> set[str]:
    """Names of the catalog part files already in ``out``."""
    if not storage.exists(out):
        return set()
    names = {os.path.basename(f) for f in storage.list_files(out, (".parquet",))}
    return {n for n in names if n.startswith(_PART_GLOB_PREFIX)}


def _remove_stale_temp_files(out: str) -> int:
    """Delete temp files a killed run left behind (local outputs only)."""
    if storage.is_remote(out) or not storage.exists(out):
        return 0
    removed = 0
    for f in storage.list_files(out):
        name = os.path.basename(f)
        if name.startswith(_PART_GLOB_PREFIX) and ".parquet.tmp-" in name:
            os.remove(f)
            removed += 1
    return removed


def _check_plan_matches(out: str, plan: Plan, published: set[str]) -> None:
    names = {u.name for u in plan.units}
    foreign = sorted(published - names)
    if foreign:
        raise GalaxyRayError(
            f"{out}: holds {len(foreign)} catalog file(s) from a different split of the input "
            f"(e.g. {foreign[0]}; another --rows-per-file or source?); rerun with the same options, "
            "or write to a new --out"
        )


# ---------------------------------------------------------------------------
# Stage 1: decode + preprocess (CPU tasks)
# ---------------------------------------------------------------------------


def _as_float(values: np.ndarray) -> np.ndarray:
    """Nullable float column as float64 with NaN for null."""
    if values.dtype == object:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return values.astype(np.float64, copy=False)


def _pixels_to_uint8(pixels: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Normalised float pixels (N, 3, S, S) back to uint8 [0, 255] for cheap transfer."""
    x = pixels * std[None, :, None, None] + mean[None, :, None, None]
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _norm_stats() -> tuple[np.ndarray, np.ndarray]:
    from galaxy_ray.data.preprocess import IMAGENET_MEAN, IMAGENET_STD

    return np.asarray(IMAGENET_MEAN, dtype=np.float32), np.asarray(IMAGENET_STD, dtype=np.float32)


def prepare_batch(
    batch: dict[str, np.ndarray],
    *,
    preprocess_config: dict,
    shard_unit: dict[str, int] | None = None,
    transfer: str = "float32",
) -> dict[str, np.ndarray]:
    """Decode and preprocess a batch of cutout rows for the model stage.

    Rows carry their unit in ``_unit``, or (packed shards) the ``path`` of
    their shard, which ``shard_unit`` maps to a unit.

    Returns
    -------
    dict of numpy arrays
        ``object_id``, ``ra``, ``dec``, ``_unit``, ``pixels`` ((N, 3, S, S)
        float32, or uint8 with ``transfer="uint8"``) and ``error``.
    """
    from galaxy_ray.data.preprocess import preprocess_batch

    ids = batch[C.OBJECT_ID]
    n = len(ids)
    if _UNIT in batch:
        units = np.asarray(batch[_UNIT], dtype=np.int32)
    else:
        units = np.array([shard_unit[os.path.basename(p)] for p in batch["path"]], dtype=np.int32)
    rows = {C.OBJECT_ID: ids, C.IMAGE: batch.get(C.IMAGE, np.full(n, None, dtype=object)),
            C.SOURCE: batch.get(C.SOURCE, ids)}
    if C.ERROR in batch:  # a reader's own per-row error is kept
        rows[C.ERROR] = batch[C.ERROR]
    prepared = preprocess_batch(rows, preprocess_config, augment=False)
    pixels = np.asarray(prepared["pixels"], dtype=np.float32)
    if transfer == "uint8":
        pixels = _pixels_to_uint8(pixels, *_norm_stats())
    nan = np.full(n, np.nan)
    return {
        C.OBJECT_ID: np.asarray(ids, dtype=object),
        C.RA: _as_float(batch[C.RA]) if C.RA in batch else nan,
        C.DEC: _as_float(batch[C.DEC]) if C.DEC in batch else nan,
        _UNIT: units,
        "pixels": pixels,
        # "" for no error: a column of only None would not keep its string type between stages
        C.ERROR: np.array(["" if e is None else str(e) for e in prepared[C.ERROR]], dtype=object),
    }


def prepare_blocks(
    batch: dict[str, np.ndarray], *, batch_size: int, niceness: int | None = None, **kwargs
) -> Iterator[dict[str, np.ndarray]]:
    """:func:`prepare_batch` over a whole block (a shard, or a slice of rows), ``batch_size`` rows at a time.

    The decode stage takes whole blocks so that Ray Data fuses it into the
    read task: encoded cutouts then go from the reader to the decoder without
    a trip through the object store, where they would compete with decoded
    pixels for the pipeline's budget (see :func:`object_store_budget`).

    ``niceness`` (CPU clusters) lowers the worker process's scheduling
    priority to at least that value, so decoding runs in the model's idle
    moments instead of preempting its threads; see :func:`_yield_cpu`.
    """
    if niceness is not None:
        _yield_cpu(niceness)
    n = len(batch[C.OBJECT_ID])
    for start in range(0, n, batch_size):
        yield prepare_batch({k: v[start : start + batch_size] for k, v in batch.items()}, **kwargs)


def _yield_cpu(niceness: int) -> None:
    """Raise this process's nice value to ``niceness`` (never lower it).

    Ray starts its workers at nice 15, the model actors and the decode tasks
    alike.  On a CPU node the model's intra-op threads then share the cores
    with decoding on equal terms, and each preempted thread stalls a whole
    parallel region.  Decoding is about a tenth of the work and the object
    store buffers its output, so it can run at a lower priority and fill the
    gaps.  On 2 cores this raised the rate after start-up by 5-10 % (issue 4).
    Raising a nice value needs no privilege; Ray's workers belong to one job,
    so only this job's later tasks on the same worker inherit it.
    """
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) < niceness:
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except (AttributeError, OSError):  # not POSIX, or not permitted: decode at Ray's priority
        pass


# ---------------------------------------------------------------------------
# Stage 2: the model (actors)
# ---------------------------------------------------------------------------


class Predictor:
    """Model actor: loads the checkpoint once and turns pixels into catalog rows.

    Parameters
    ----------
    checkpoint : str
        Checkpoint path or ``s3://`` URI (``model.save_checkpoint`` format).
    merger_threshold : float
        ``is_merger`` is ``p_merger >= merger_threshold``.
    tta : bool
        Average over the 8 dihedral transforms of each cutout.
    device : str
        ``"cuda"`` or ``"cpu"``; on CUDA the model runs in bf16 autocast with
        channels-last memory, on CPU in float32.
    threads : int or None
        Torch intra-op threads on CPU.
    """

    def __init__(
        self,
        checkpoint: str,
        merger_threshold: float = 0.5,
        tta: bool = False,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        import torch

        from galaxy_ray import model as model_mod

        if device == "cuda" and not torch.cuda.is_available():
            device = "cpu"
        if device == "cpu" and threads:
            torch.set_num_threads(int(threads))
        self.torch = torch
        self.device = torch.device(device)
        self.model, self.spec = model_mod.load_checkpoint(checkpoint)
        self.model.eval().to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.columns = list(model_mod.output_columns(self.spec))
        self.threshold = float(merger_threshold)
        self.tta = bool(tta)
        mean, std = _norm_stats()
        self.mean = torch.as_tensor(mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.as_tensor(std, device=self.device).view(1, 3, 1, 1)

    def _forward(self, x):
        torch = self.torch
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.model.predict(x.contiguous(memory_format=torch.channels_last)).float()
        return self.model.predict(x).float()

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities (N, K) for pixels (N, 3, S, S), float32 normalised or uint8."""
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(pixels))
            if self.device.type == "cuda":
                x = x.pin_memory().to(self.device, non_blocking=True)
            if x.dtype == torch.uint8:
                x = (x.float() / 255.0 - self.mean) / self.std
            if self.tta:
                from galaxy_ray.model import dihedral_predict

                probs = dihedral_predict(self._forward, x)
            else:
                probs = self._forward(x)
            return probs.cpu().numpy().astype(np.float32)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        ok = np.array([_no_error(e) for e in batch[C.ERROR]], dtype=bool)
        probs = np.zeros((len(ok), len(self.columns)), dtype=np.float32)
        if ok.any():
            probs[ok] = self.probabilities(batch["pixels"][ok])
        return catalog_rows(self.spec, self.columns, batch, probs, ok, self.threshold)


def _no_error(value) -> bool:
    """True for the no-error markers: None, "" (between stages) and NaN."""
    return value is None or value == "" or (isinstance(value, float) and np.isnan(value))


def _preprocess_config(spec):
    from galaxy_ray.data.preprocess import PreprocessConfig

    cfg = spec.preprocess
    return cfg if isinstance(cfg, PreprocessConfig) else PreprocessConfig.from_dict(cfg)


def catalog_rows(spec, columns: Sequence[str], batch: dict, probs: np.ndarray, ok: np.ndarray, threshold: float) -> pa.Table:
    """Catalog rows (plus the ``_unit`` tag when present) as an Arrow table.

    Rows where ``ok`` is False keep their ``object_id``, position and ``error``
    with null predictions.
    """
    from galaxy_ray import catalog, model as model_mod

    null = ~ok
    ra, dec = _as_float(np.asarray(batch[C.RA])), _as_float(np.asarray(batch[C.DEC]))
    p_merger = np.asarray(model_mod.merger_probability(spec, probs), dtype=np.float32)
    morph = np.asarray(model_mod.morphology(spec, probs), dtype=object)
    arrays: dict[str, pa.Array] = {
        C.OBJECT_ID: pa.array(np.asarray(batch[C.OBJECT_ID], dtype=object), type=pa.string()),
        C.RA: pa.array(ra, type=pa.float64(), from_pandas=True),
        C.DEC: pa.array(dec, type=pa.float64(), from_pandas=True),
        C.HEALPIX: catalog.healpix29(ra, dec),
    }
    for j, name in enumerate(columns):
        arrays[name] = pa.array(probs[:, j], type=pa.float32(), mask=null)
    arrays[C.MORPHOLOGY] = pa.array(morph, type=pa.string(), mask=null)
    arrays[C.P_MERGER] = pa.array(p_merger, type=pa.float32(), mask=null)
    arrays[C.IS_MERGER] = pa.array(p_merger >= threshold, type=pa.bool_(), mask=null)
    arrays[C.ERROR] = pa.array([None if _no_error(e) else str(e) for e in batch[C.ERROR]], type=pa.string())
    if _UNIT in batch:
        arrays[_UNIT] = pa.array(np.asarray(batch[_UNIT], dtype=np.int32), type=pa.int32())
    return pa.table(arrays)


# ---------------------------------------------------------------------------
# Stage 3: the writer (driver)
# ---------------------------------------------------------------------------


class UnitWriter:
    """Collect catalog rows per unit and publish each unit's file when complete.

    Only units with rows in flight are held in memory.
    """

    def __init__(self, out: str, pending: Sequence[Unit], provenance: dict, log=print) -> None:
        self.out = out
        self.units = {u.index: u for u in pending}
        self.parts: dict[int, list[pa.Table]] = {}
        self.seen: dict[int, int] = {}
        self.provenance = provenance
        self.log = log
        self.done = 0
        self.rows = 0
        self.error_rows = 0
        #: When the first rows arrived (``time.perf_counter``) and how many: the end of start-up.
        self.first_rows_at: float | None = None
        self.first_rows = 0

    def add(self, table: pa.Table) -> None:
        """Take a batch of catalog rows tagged with ``_unit``."""
        if table.num_rows == 0:
            return
        if self.first_rows_at is None:
            self.first_rows_at, self.first_rows = time.perf_counter(), table.num_rows
        units = table.column(_UNIT).to_numpy()
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
        from galaxy_ray import catalog

        unit = self.units[index]
        # write_catalog_file sorts the rows by _healpix_29
        table = pa.concat_tables(self.parts.pop(index)).drop_columns([_UNIT])
        errors = table.num_rows - table.column(C.ERROR).null_count
        provenance = dict(self.provenance, rows=table.num_rows, error_rows=errors, file=unit.name)
        if unit.shards:
            provenance["input_shards"] = [os.path.basename(s) for s in unit.shards]
        if unit.row_range:
            provenance["input_rows"] = list(unit.row_range)
        catalog.write_catalog_file(table, storage.join(self.out, unit.name), provenance)
        self.done += 1
        self.rows += table.num_rows
        self.error_rows += errors
        self.log(f"published {unit.name}: {table.num_rows} rows, {errors} errors "
                 f"({self.done}/{len(self.units)} files this run)")

    def unfinished(self) -> list[str]:
        """Units that did not receive all their rows."""
        return [f"{self.units[i].name} ({self.seen.get(i, 0)}/{u.rows} rows)"
                for i, u in self.units.items() if self.seen.get(i, 0) < u.rows]


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def _ensure_ray():
    """Connect to ``RAY_ADDRESS`` when set (``ray job submit``), else start a local Ray."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", log_to_driver=True)
    return ray


def checkpoint_file(uri: str) -> str:
    """The checkpoint file itself: ``uri``, or the ``model.pt`` in a run directory."""
    if storage.isdir(uri):
        uri = storage.join(uri, "model.pt")
    if not storage.exists(uri):
        raise GalaxyRayError(f"{uri}: no such checkpoint; give the model.pt that `galaxy-ray train` wrote")
    return uri


def file_sha256(uri: str) -> str:
    """Hex SHA-256 of a file (local or ``s3://``)."""
    digest = hashlib.sha256()
    with storage.open_input(uri) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the predictions."""
    from importlib import metadata

    versions = {}
    for name in ("galaxy-ray", "torch", "torchvision", "ray", "numpy", "pyarrow", "astropy", "pillow", "cdshealpix"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    versions["python"] = sys.version.split()[0]
    return versions


def base_provenance(checkpoint: str, spec, source: str, fmt: str, threshold: float, tta: bool) -> dict:
    """Provenance shared by every file of a run."""
    from galaxy_ray import model as model_mod
    from galaxy_ray.schema import GZ2_KAGGLE_COLUMNS

    prov = {
        "task": spec.task,
        "arch": spec.arch,
        "output_columns": list(model_mod.output_columns(spec)),
        "output_names": list(spec.output_names),
        "merger": spec.merger,
        "merger_threshold": float(threshold),
        "tta": bool(tta),
        "preprocess": dict(spec.preprocess) if isinstance(spec.preprocess, dict) else spec.preprocess.to_dict(),
        "checkpoint": checkpoint,
        "checkpoint_sha256": file_sha256(checkpoint),
        "source": source,
        "source_format": fmt,
        "versions": package_versions(),
    }
    if spec.task == "gz2":
        prov["kaggle_columns"] = list(GZ2_KAGGLE_COLUMNS)
        prov["column_meaning"] = "cumulative GZ2 vote fractions (Kaggle Class1.1 ... Class11.6 order)"
    else:
        prov["column_meaning"] = "class probabilities (softmax)"
    return prov


def _totals(out: str, names: Sequence[str]) -> tuple[int, int]:
    """Rows and error rows of all published files, from their footers."""
    from galaxy_ray import catalog

    def read(name: str) -> tuple[int, int]:
        prov = catalog.read_provenance(storage.join(out, name)) or {}
        return int(prov.get("rows", 0)), int(prov.get("error_rows", 0))

    with ThreadPoolExecutor(max_workers=16) as pool:
        counts = list(pool.map(read, names))
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def _resources(ray, use_gpu) -> tuple[bool, float]:
    res = ray.cluster_resources()
    gpus = float(res.get("GPU", 0))
    if use_gpu == "auto":
        use = gpus > 0
    else:
        use = bool(use_gpu) and use_gpu not in ("no", "false", "0")
        if use and gpus == 0:
            raise GalaxyRayError("--gpu yes: the Ray cluster has no GPUs; use --gpu auto or no")
    return use, float(res.get("CPU", 1))


def _actor_pool(num_actors, use_gpu: bool, gpus: float, cpus: float):
    """(min, max) actors: one per GPU, or on CPU from one up to one per 4 CPUs."""
    if num_actors is None:
        if use_gpu:
            return max(1, int(gpus)), max(1, int(gpus))
        return 1, max(1, int(cpus) // 4)
    if isinstance(num_actors, (tuple, list)):
        return int(num_actors[0]), int(num_actors[1])
    return int(num_actors), int(num_actors)


def run_inference(
    checkpoint: str,
    source: str,
    out: str,
    *,
    format: str | None = None,
    batch_size: int = 64,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    tta: bool = False,
    merger_threshold: float = 0.5,
    num_actors: int | tuple[int, int] | None = None,
    use_gpu: bool | str = "auto",
    decode_tasks: int | None = None,
    transfer: str = "auto",
    log=print,
) -> dict[str, Any]:
    """Stream ``source`` through the model in ``checkpoint`` into a catalog under ``out``.

    Parameters
    ----------
    checkpoint : str
        Model checkpoint (``model.save_checkpoint`` format), path or ``s3://``.
    source : str
        Input, any format ``galaxy_ray.data.sources`` reads; packed shards are the fast path.
    out : str
        Catalog directory, path or ``s3://`` prefix.
    format : str, optional
        Source format; detected when omitted.
    batch_size : int
        Images per forward pass.
    rows_per_file : int
        Target rows per output file (a unit of resumable work).
    tta : bool
        Average predictions over the 8 rotations and flips of each cutout.
    merger_threshold : float
        ``is_merger = p_merger >= merger_threshold``.
    num_actors : int or (int, int), optional
        Size of the model actor pool (fixed, or min and max); default one per
        GPU, or one per 4 CPUs on CPU clusters.
    use_gpu : "auto", bool
        One GPU per actor; "auto" uses GPUs when the cluster has them.
    decode_tasks : int, optional
        Cap on concurrent decode/preprocess tasks (default: Ray Data decides).
    transfer : "auto", "float32", "uint8"
        Pixel type between the decode and model stages; "auto" is uint8 on GPU.
    log : callable
        Receives progress lines.

    Returns
    -------
    dict
        The run's provenance: rows and error rows in the catalog, rows and
        files written by this run, units skipped, seconds.
    """
    t0 = time.perf_counter()
    from galaxy_ray import catalog, model as model_mod
    from galaxy_ray.data import sources

    if batch_size < 1:
        raise GalaxyRayError(f"--batch-size {batch_size}: must be at least 1")
    if not 0.0 <= merger_threshold <= 1.0:
        raise GalaxyRayError(f"--merger-threshold {merger_threshold}: must be a probability in [0, 1]")
    checkpoint = checkpoint_file(checkpoint)
    fmt = format or sources.detect_format(source)
    _, spec = model_mod.load_checkpoint(checkpoint)  # fail early on a bad checkpoint
    provenance = base_provenance(checkpoint, spec, source, fmt, merger_threshold, tta)

    ray = _ensure_ray()
    use_gpu, cpus = _resources(ray, use_gpu)
    gpus = float(ray.cluster_resources().get("GPU", 0))
    storage.makedirs(out)
    stale = _remove_stale_temp_files(out)
    if stale:
        log(f"removed {stale} temp file(s) left by an interrupted run")

    plan = make_plan(source, fmt, rows_per_file)
    published = _published(out)
    _check_plan_matches(out, plan, published)
    pending = [u for u in plan.units if u.name not in published]
    log(f"{source} ({fmt}): {plan.rows} rows in {len(plan.units)} output file(s); "
        f"{len(plan.units) - len(pending)} already written, {len(pending)} to do")

    writer = UnitWriter(out, pending, provenance, log=log)
    if pending:
        transfer = ("uint8" if use_gpu else "float32") if transfer == "auto" else transfer
        ds = _build_pipeline(
            checkpoint, plan, pending, spec,
            batch_size=batch_size, tta=tta, merger_threshold=merger_threshold,
            actors=_actor_pool(num_actors, use_gpu, gpus, cpus), use_gpu=use_gpu, cpus=cpus,
            decode_tasks=decode_tasks, transfer=transfer,
        )
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
            writer.add(table)
        streamed_until = time.perf_counter()
        missing = writer.unfinished()
        if missing:
            raise GalaxyRayError(
                f"{out}: {len(missing)} file(s) got fewer rows than their input holds "
                f"(e.g. {missing[0]}); rerun the same command to finish them"
            )

    names = sorted(u.name for u in plan.units)
    rows, error_rows = _totals(out, names)
    timing = _throughput(t0, writer, streamed_until if pending else None)
    summary = dict(
        provenance,
        rows=rows,
        error_rows=error_rows,
        files=len(names),
        rows_this_run=writer.rows,
        error_rows_this_run=writer.error_rows,
        files_this_run=writer.done,
        files_skipped=len(plan.units) - len(pending),
        seconds=round(time.perf_counter() - t0, 3),
        **timing,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    catalog.write_catalog_summary(out, summary)
    pace = (f"; first rows after {timing['startup_seconds']:.1f} s, then {timing['rows_per_second_after_startup']:.1f} "
            "rows/s" if timing.get("rows_per_second_after_startup") else "")
    log(f"catalog {out}: {rows} rows in {len(names)} file(s), {error_rows} row(s) with errors "
        f"({writer.rows} rows written this run in {summary['seconds']:.1f} s{pace})")
    return summary


def _throughput(t0: float, writer: UnitWriter, streamed_until: float | None) -> dict[str, float]:
    """Start-up time (until the first catalog rows reach the driver) and the rate after it.

    Start-up (planning, starting the actors, importing torch and loading the
    model in each) is paid once per job; the rate after it is what a survey of
    millions of cutouts runs at.
    """
    if streamed_until is None or writer.first_rows_at is None:
        return {}
    timing = {"startup_seconds": round(writer.first_rows_at - t0, 3)}
    after = streamed_until - writer.first_rows_at
    later_rows = sum(writer.seen.values()) - writer.first_rows
    if later_rows > 0 and after > 0:
        timing["rows_per_second_after_startup"] = round(later_rows / after, 2)
    return timing


def _build_pipeline(checkpoint, plan, pending, spec, *, batch_size, tta, merger_threshold,
                    actors, use_gpu, cpus, decode_tasks, transfer):
    import ray.data

    # Half a CPU per decode task on CPU clusters: decoding is light next to the model, and
    # resources that differ from the actors' keep Ray Data from fusing decoding into the model
    # actor (which would decode and predict in turn instead of at once).
    decode_cpus = 1 if use_gpu else 0.5
    compute = ray.data.TaskPoolStrategy(size=decode_tasks) if decode_tasks else None
    if plan.kind == "shards":
        ds = _read_shards([s for u in pending for s in u.shards], num_cpus=decode_cpus, tasks=decode_tasks)
    else:
        ds = _read_rows(plan, pending, num_cpus=decode_cpus, compute=compute)
    pre = spec.preprocess if isinstance(spec.preprocess, dict) else spec.preprocess.to_dict()
    ds = ds.map_batches(
        prepare_blocks,
        batch_size=None,  # whole blocks, so that Ray Data fuses this stage into the read
        batch_format="numpy",
        zero_copy_batch=True,
        fn_kwargs=dict(batch_size=batch_size, preprocess_config=pre, shard_unit=plan.shard_unit, transfer=transfer,
                       niceness=None if use_gpu else 19),  # on GPU clusters decoding is what feeds the model
        compute=compute,
        num_cpus=decode_cpus,
    )
    lo, hi = actors
    if use_gpu:
        resources = dict(num_gpus=1, num_cpus=1)
        ctor = dict(device="cuda")
    else:
        # CPU actors: a CPU slot for scheduling; torch threads share the node's cores
        threads = max(1, int(cpus) // max(1, hi))
        resources = dict(num_cpus=1)
        ctor = dict(device="cpu", threads=threads)
    ds = ds.map_batches(
        Predictor,
        batch_size=batch_size,
        batch_format="numpy",
        zero_copy_batch=True,
        fn_constructor_kwargs=dict(checkpoint=checkpoint, merger_threshold=merger_threshold, tta=tta, **ctor),
        compute=ray.data.ActorPoolStrategy(min_size=lo, max_size=hi),
        **resources,
    )
    # Blocks of about one batch (not Ray's default 128 MiB) keep each decode worker from buffering
    # many batches before it hands them on.
    side = int(pre["image_size"])
    batch_bytes = batch_size * 3 * side * side * (1 if transfer == "uint8" else 4)
    ctx = ds.context
    ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(
        object_store_memory=object_store_budget(batch_bytes, hi, ray.cluster_resources().get("object_store_memory")))
    ctx.target_max_block_size = max(8 << 20, 2 * batch_bytes)
    return ds


def object_store_budget(batch_bytes: int, actors: int, store_bytes: float | None = None) -> int:
    """Object-store bytes the pipeline may hold: flat in the input size, and never so small that it stalls.

    Decoding outruns the model, so without a cap decoded pixels pile up to
    Ray Data's default budget (half the store, GBs), and memory grows with the
    input.  Too small a cap stalls instead: Ray Data's allocator reserves
    half the budget, split between the operators, and half of each share for
    that operator's outputs; when a decode task's next output does not fit in
    what is left of its share, the executor stops reading it.  With reading
    and decoding as separate operators (a twelfth of the budget each), 128 MiB
    and 12 MiB float32 batches (ResNet-18 at 128 px on 2 cores), runs stalled
    for tens of seconds, at 13-44 images/s; with 384 MiB they ran at 50-53
    (issue 4).  So the budget is room for 24 decoded batches (two per output
    share even with three operators) plus 4 queued per model actor, at least
    256 MiB, and at most half the object store.

    Parameters
    ----------
    batch_bytes : int
        Bytes of one decoded batch as it travels to the model actors.
    actors : int
        Most model actors the pool grows to.
    store_bytes : float, optional
        The cluster's object store size; the budget stays within half of it.
    """
    budget = max(256 << 20, (24 + 4 * max(1, actors)) * batch_bytes)
    if store_bytes:
        budget = min(budget, int(store_bytes) // 2)
    return budget


def _read_tagged(meta, source) -> pa.Table:
    """Cutout rows of a metadata slice, tagged with their unit (runs in a worker)."""
    table = source.read_rows(meta.drop(columns=[_UNIT]).reset_index(drop=True))
    return table.append_column(_UNIT, pa.array(meta[_UNIT].to_numpy(np.int32), type=pa.int32()))


def _read_rows(plan: Plan, pending: Sequence[Unit], rows_per_block: int = 64, num_cpus: float = 1, compute=None):
    """The cutout rows of the pending units of a row plan, in small blocks."""
    import ray.data

    chunks = []
    for unit in pending:
        first, last = unit.row_range
        meta = plan.metadata.iloc[first : last + 1].copy()
        meta[_UNIT] = unit.index
        chunks += [meta.iloc[i : i + rows_per_block] for i in range(0, len(meta), rows_per_block)]
    return ray.data.from_pandas(chunks).map_batches(
        _read_tagged, batch_format="pandas", batch_size=None, fn_kwargs=dict(source=plan.source), num_cpus=num_cpus,
        compute=compute,
    )


def _read_shards(shards: Sequence[str], num_cpus: float = 1, tasks: int | None = None):
    """Read packed shards with only the columns inference needs, tagged with their path.

    One block per shard, read with ``num_cpus`` per task: with the decode
    stage's resources (and its cap of ``tasks`` at once) and whole-block
    batches, Ray Data fuses the two into one task per shard (it does not fuse
    a read that splits its output blocks).
    """
    import pyarrow.parquet as pq

    from galaxy_ray.data.sources import read_parquet

    fs, first = storage.pyarrow_filesystem(shards[0])
    names = set(pq.read_schema(first, filesystem=fs).names)
    if C.OBJECT_ID not in names or C.IMAGE not in names:
        raise GalaxyRayError(f"{shards[0]}: not a cutout shard (needs object_id and image columns); "
                             "pack the source with `galaxy-ray pack`")
    columns = [c for c in (C.OBJECT_ID, C.RA, C.DEC, C.IMAGE, C.SOURCE) if c in names]
    return read_parquet(
        [storage.strip_scheme(s) for s in shards], fs, include_paths=True, columns=columns,
        override_num_blocks=len(shards), num_cpus=num_cpus, **({"concurrency": tasks} if tasks else {}),
    )


# ---------------------------------------------------------------------------
# Small-scale: predict a few files without Ray
# ---------------------------------------------------------------------------


def predict_files(checkpoint: str, images: Sequence[str], *, tta: bool = False,
                  merger_threshold: float = 0.5, top: int = 3) -> list[dict]:
    """Classify a few image files in this process (no Ray).

    Returns
    -------
    list of dict
        Per image: ``image``, ``morphology``, ``p_merger``, ``is_merger``,
        ``top`` (list of (column, value)), or ``error``.
    """
    data = []
    for uri in images:
        try:
            data.append(storage.read_bytes(uri))
        except (FileNotFoundError, OSError):
            data.append(None)  # decoding reports the missing file per image
    predictor = Predictor(checkpoint, merger_threshold=merger_threshold, tta=tta, device="cpu")
    encoded = np.empty(len(data), dtype=object)
    encoded[:] = data
    batch = {
        C.OBJECT_ID: np.array([os.path.basename(u) for u in images], dtype=object),
        C.IMAGE: encoded,
        C.SOURCE: np.array(list(images), dtype=object),
        C.RA: np.full(len(images), np.nan),
        C.DEC: np.full(len(images), np.nan),
    }
    from galaxy_ray.data.preprocess import preprocess_batch

    prepared = preprocess_batch(dict(batch), _preprocess_config(predictor.spec), augment=False)
    batch.update(pixels=np.asarray(prepared["pixels"], dtype=np.float32),
                 error=np.asarray(prepared[C.ERROR], dtype=object))
    rows = predictor(batch).to_pylist()
    results = []
    for uri, row in zip(images, rows):
        if row[C.ERROR] is not None:
            results.append({"image": uri, "error": row[C.ERROR]})
            continue
        values = sorted(((c, row[c]) for c in predictor.columns), key=lambda cv: -cv[1])
        results.append({
            "image": uri, "morphology": row[C.MORPHOLOGY], "p_merger": row[C.P_MERGER],
            "is_merger": row[C.IS_MERGER], "top": values[:top],
        })
    return results


def predict_main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray predict CHECKPOINT IMAGE...``."""
    p = argparse.ArgumentParser(prog="galaxy-ray predict",
                                description="Classify a few image files with a checkpoint, no cluster.")
    p.add_argument("checkpoint", help="model checkpoint (model.pt), path or s3://")
    p.add_argument("images", nargs="+", help="JPEG / PNG / FITS / .npy cutouts")
    p.add_argument("--top", type=int, default=3, help="how many probabilities or vote fractions to show")
    p.add_argument("--tta", action="store_true", help="average over the 8 rotations and flips")
    p.add_argument("--merger-threshold", type=float, default=0.5)
    p.add_argument("--json", action="store_true", help="one JSON object per image instead of text")
    args = p.parse_args(argv)
    results = predict_files(checkpoint_file(args.checkpoint), args.images, tta=args.tta,
                            merger_threshold=args.merger_threshold, top=args.top)
    failed = 0
    for r in results:
        if args.json:
            print(json.dumps(r))
        elif "error" in r:
            reason = r["error"].removeprefix(f"{r['image']}: ")  # decode errors already name the file
            print(f"{r['image']}: error: {reason}")
        else:
            top = ", ".join(f"{c} {v:.3f}" for c, v in r["top"])
            print(f"{r['image']}: {r['morphology']}  p_merger {r['p_merger']:.3f}"
                  f"{' (merger)' if r['is_merger'] else ''}  top: {top}")
        failed += "error" in r
    return 1 if failed else 0


# ---------------------------------------------------------------------------
# galaxy-ray infer
# ---------------------------------------------------------------------------


def _actors_arg(text: str):
    try:
        parts = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give N or MIN,MAX") from None
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2 and 1 <= parts[0] <= parts[1]:
        return tuple(parts)
    raise argparse.ArgumentTypeError(f"{text!r}: give N or MIN,MAX with 1 <= MIN <= MAX")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="galaxy-ray infer",
        description="Stream a source through a model into a Parquet morphology catalog. "
                    "Rerunning the same command resumes an interrupted run.",
    )
    p.add_argument("--checkpoint", required=True, help="model checkpoint (model.pt), path or s3://")
    p.add_argument("--source", required=True, help="cutouts: packed shards (fast) or any source format")
    p.add_argument("--out", required=True, help="catalog directory, path or s3://")
    p.add_argument("--format", default=None, help="source format (default: detected)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--rows-per-file", type=int, default=DEFAULT_ROWS_PER_FILE,
                   help="target rows per output file (the unit a rerun skips)")
    p.add_argument("--tta", action="store_true", help="average over the 8 rotations and flips")
    p.add_argument("--merger-threshold", type=float, default=0.5, help="is_merger = p_merger >= this")
    p.add_argument("--num-actors", type=_actors_arg, default=None,
                   help="model actors: N or MIN,MAX (default one per GPU, or one per 4 CPUs)")
    p.add_argument("--gpu", choices=("auto", "yes", "no"), default="auto", help="one GPU per model actor")
    p.add_argument("--decode-tasks", type=int, default=None, help="cap on concurrent decode tasks")
    p.add_argument("--transfer", choices=("auto", "float32", "uint8"), default="auto",
                   help="pixel type between decode and model (auto: uint8 on GPU)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray infer`` and ``jobs/infer.py``."""
    args = build_parser().parse_args(argv)
    summary = run_inference(
        args.checkpoint, args.source, args.out, format=args.format, batch_size=args.batch_size,
        rows_per_file=args.rows_per_file, tta=args.tta, merger_threshold=args.merger_threshold,
        num_actors=args.num_actors, use_gpu={"auto": "auto", "yes": True, "no": False}[args.gpu],
        decode_tasks=args.decode_tasks, transfer=args.transfer, log=lambda s: print(s, flush=True),
    )
    print(f"rows with errors: {summary['error_rows']}", flush=True)
    return 0
