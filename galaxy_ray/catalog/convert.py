"""Converting a galaxy-ray catalog to HATS: ``galaxy-ray hats CATALOG OUT``.

The conversion is hats-import's (the LSDB project's importer): it maps every
row to a HEALPix pixel, chooses partitions of at most ``--partition-rows``
rows, splits and reduces the rows into ``Norder=k/Dir=m/Npix=n.parquet``
files, writes ``hats.properties``, ``partition_info.csv``, ``_metadata``,
``_common_metadata`` and the sky map, then a margin cache (the rows within
``--margin`` arcsec outside each partition, so that cross-matches near
partition edges are complete) and a ``collection.properties`` tying them
together.  The work runs on Dask: a local cluster of ``--workers`` processes,
or an existing Dask cluster (``--dask-scheduler``).

Our provenance travels in the Parquet metadata (``galaxy_ray`` key) of every
partition file and of ``_common_metadata``; its scalar entries are also
``galaxy_ray_*`` keys of the properties files.  Rows without a position
cannot be placed on the sky and are left out (counted in the properties).

Success is judged by what was written: the command succeeds when the
collection at OUT is complete (``hats.io.validation.is_valid_collection``,
strict) and holds every row with a position, even if Dask then fails to shut
down in time (a warning); a collection that is not complete is an error,
whatever Dask said.  hats-import's scratch files and Dask's spill space live
in galaxy-ray's own folder, :func:`work_dir` (``<OUT>.galaxy-ray-hats-tmp``
beside a local OUT), which every run empties first, so a killed run's 100 MB
are removed by the next one.  A local collection is written inside that
folder and moved to OUT only once complete, so OUT never holds half of one.

hats-import, hats and Dask are imported inside the functions: the rest of the
catalog package (``galaxy-ray query``) must stay light.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from typing import Sequence

import astropy.units as u
import pyarrow.compute as pc
import pyarrow.parquet as pq

from galaxy_ray.catalog.angles import ANGLE_HELP, parse_angle
from galaxy_ray.catalog.hats import COLLECTION_PROPERTIES, hats_parts, hats_upath
from galaxy_ray.catalog.scan import open_catalog
from galaxy_ray.catalog.write import METADATA_KEY
from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray import runtime
from galaxy_ray.io import storage
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.cli import help_text

__all__ = ["DEFAULT_MARGIN_ARCSEC", "DEFAULT_PARTITION_ROWS", "SHUTDOWN_TIMEOUT", "WORK_SUFFIX", "default_hats_path",
           "work_dir", "to_hats", "hats_main"]

#: Margin cache width, arcsec: cross-matches with radii up to this are complete at partition edges.
DEFAULT_MARGIN_ARCSEC = 10.0
#: Most rows in one partition (hats-import's ``pixel_threshold``).
DEFAULT_PARTITION_ROWS = 1_000_000
#: Rows per Parquet row group inside a partition (what a cone search inside a partition skips).
DEFAULT_ROW_GROUP_ROWS = 10_000
#: Longest provenance value copied into the properties files (longer ones stay in the Parquet metadata).
_MAX_PROPERTY_CHARS = 200
#: Seconds Dask's client and local cluster get to shut down after the work; past that, a warning, not a failure.
SHUTDOWN_TIMEOUT = 60.0
#: Suffix of galaxy-ray's own scratch folder beside a local OUT (hats-import's and Dask's temporary files).
WORK_SUFFIX = ".galaxy-ray-hats-tmp"


def default_hats_path(catalog_dir: str) -> str:
    """Where ``infer --hats`` puts the HATS collection of a catalog: ``<catalog>_hats`` beside it."""
    return str(catalog_dir).rstrip("/") + "_hats"


def _split_out(out: str) -> tuple[str, str]:
    """(parent, name) of an output URI; the name must suit hats-import ([A-Za-z0-9._-])."""
    text = str(out).rstrip("/")
    parent, _, name = text.rpartition("/")
    if not storage.is_remote(text):
        full = storage.strip_scheme(text)
        parent, name = os.path.dirname(full), os.path.basename(full)
    if not name or not all(ch.isalnum() or ch in "._-" for ch in name):
        raise GalaxyRayError(f"{out}: the last part of OUT names the HATS catalog; use letters, digits, '.', '_', '-'")
    if storage.is_remote(text) and parent in ("s3:/", "s3:"):
        raise GalaxyRayError(f"{out}: give a prefix inside the bucket, e.g. s3://BUCKET/{name}/hats")
    return parent, name


def _properties(provenance: dict, source: str, without_position: int) -> dict:
    """``galaxy_ray_*`` properties: the provenance's short scalar entries, the source, the rows left out."""
    props = {"obs_title": f"galaxy-ray morphology catalog ({provenance.get('task', 'unknown task')})"}
    for key, value in sorted(provenance.items()):
        if isinstance(value, (str, int, float, bool)):
            text = str(value)
            if len(text) <= _MAX_PROPERTY_CHARS and "\n" not in text:
                props[f"galaxy_ray_{key}"] = text
    props["galaxy_ray_source_catalog"] = str(source)
    props["galaxy_ray_rows_without_position"] = str(without_position)
    props["galaxy_ray_provenance"] = f"Parquet key-value metadata '{METADATA_KEY}' of dataset/_common_metadata"
    return props


def _rows_without_position(cat) -> tuple[int, int]:
    """(rows, rows without a position) of a plain catalog, from its footers' ``_healpix_29`` null counts."""
    rows = missing = 0
    col = cat.schema.get_field_index(C.HEALPIX)
    for uri in cat.files:
        meta = cat.footer(uri)
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            rows += group.num_rows
            st = group.column(col).statistics
            missing += st.null_count if st is not None and st.has_null_count else 0
    return rows, missing


def _schema_file(cat, tmp: str) -> str:
    """A Parquet schema file of the catalog's columns carrying the whole provenance (for every partition)."""
    meta = {METADATA_KEY.encode(): json.dumps(cat.provenance, sort_keys=True, default=str).encode()}
    path = os.path.join(tmp, "galaxy_ray_schema.parquet")
    buf = io.BytesIO()
    pq.write_metadata(cat.schema.with_metadata(meta), buf)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return path


def _positioned_reader():
    """A hats-import Parquet reader that drops rows without ``_healpix_29`` (they have no place on the sky)."""
    from hats_import.catalog.file_readers.parquet import ParquetPyarrowReader

    class PositionedParquetReader(ParquetPyarrowReader):
        def read(self, input_file, read_columns=None):
            for table in super().read(input_file, read_columns):
                yield table.filter(pc.is_valid(table[C.HEALPIX]))

    return PositionedParquetReader(iterate_by_row_groups=True)


def _dask_client(workers: int, scheduler: str | None, tmp: str):
    """A Dask client: the cluster at ``scheduler``, else a local cluster of ``workers`` single-threaded workers."""
    from dask.distributed import Client

    if scheduler:
        return Client(scheduler)
    # a local cluster's nanny logs "Worker process still alive after 4.0 seconds, killing" at every shutdown
    # of a loaded machine: the run is judged by what it wrote, so its own warnings stay off the console
    import logging

    silence = logging.WARNING if runtime.is_verbose() else logging.ERROR
    # one worker runs in this process (threads): no start-up cost on small catalogs
    return Client(n_workers=workers, threads_per_worker=1, processes=workers > 1, dashboard_address=None,
                  local_directory=tmp, silence_logs=silence)


def _collection_args(cat, parent: str, name: str, tmp: str, props: dict, options: dict):
    """hats-import's arguments for a collection ``parent/name``: the catalog from ``cat``'s files and its margin cache."""
    from hats_import.collection.arguments import CollectionArguments

    common = dict(output_path=hats_upath(parent) if storage.is_remote(parent) else parent, output_artifact_name=name,
                  addl_hats_properties=props, tmp_dir=tmp, dask_tmp=tmp, resume=False,
                  progress_bar=options["progress"], simple_progress_bar=True,
                  row_group_kwargs={"num_rows": int(options["row_group_rows"])})
    catalog_props = dict(props, hats_col_healpix=C.HEALPIX, hats_col_healpix_order=C.HEALPIX_ORDER)
    return (CollectionArguments(**common)
            .catalog(input_file_list=[hats_upath(f) for f in cat.files], file_reader=_positioned_reader(),
                     use_healpix_29=True, ra_column=C.RA, dec_column=C.DEC,
                     pixel_threshold=int(options["partition_rows"]), highest_healpix_order=int(options["highest_order"]),
                     use_schema_file=_schema_file(cat, tmp), addl_hats_properties=catalog_props)
            .add_margin(margin_threshold=float(options["margin_arcsec"]), is_default=True))


def _describe(exc: BaseException) -> str:
    """``TimeoutError: timed out after 60 s`` (or the type alone when the message is empty)."""
    text = one_line(exc)
    return text if text == type(exc).__name__ else f"{type(exc).__name__}: {text}"


def _close_dask(client, timeout: float, own_cluster: bool) -> list[str]:
    """Close the Dask client (and the local cluster it started); what failed, one line each."""
    problems = []
    closers = [("client", client.close)] + ([("local cluster", client.cluster.close)]
                                            if own_cluster and client.cluster is not None else [])
    for what, close in closers:
        try:
            close(timeout=timeout)
        except (OSError, RuntimeError) as exc:  # a shutdown past its timeout raises TimeoutError, an OSError
            problems.append(f"Dask {what} shutdown: {_describe(exc)}")
    return problems


def _run_import(cat, target: str, props: dict, options: dict, scratch: str) -> str | None:
    """Run hats-import's collection pipeline into ``target`` on Dask; what went wrong (one line), or None.

    Raises
    ------
    GalaxyRayError
        hats-import refuses its arguments (nothing ran).
    """
    from hats_import.pipeline import pipeline_with_client

    parent, name = _split_out(target)
    try:
        args = _collection_args(cat, parent, name, scratch, props, options)
    except (ValueError, OSError, RuntimeError) as exc:
        raise GalaxyRayError(f"hats-import: {one_line(exc)}") from None
    scheduler = options["dask_scheduler"]
    client = _dask_client(max(1, int(options["workers"])), scheduler, scratch)
    problems = []
    try:
        pipeline_with_client(args, client)
    except (ValueError, OSError, RuntimeError) as exc:
        problems.append(f"hats-import: {_describe(exc)}")
    finally:
        problems += _close_dask(client, float(options["shutdown_timeout"]), own_cluster=not scheduler)
    return "; ".join(problems) or None


def work_dir(out: str) -> str:
    """galaxy-ray's scratch folder for writing the HATS collection ``out`` (always local).

    ``<OUT>.galaxy-ray-hats-tmp`` beside a local OUT (the same file system, so
    the finished collection moves into place in one rename); for an ``s3://``
    OUT, ``galaxy-ray-hats-tmp-<first 12 hex of SHA-256(OUT)>`` in the system
    temporary folder.  The same OUT always gets the same folder, so a rerun
    finds what a killed run left.
    """
    text = str(out).rstrip("/")
    if storage.is_remote(text):
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        return os.path.join(tempfile.gettempdir(), f"galaxy-ray-hats-tmp-{digest}")
    return storage.strip_scheme(text) + WORK_SUFFIX


def _fresh_work_dir(out: str) -> str:
    """:func:`work_dir` of ``out``, emptied of what an interrupted run left, and created."""
    work = work_dir(out)
    if os.path.exists(work):
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(work) for f in files)
        shutil.rmtree(work)
        runtime.say(f"galaxy-ray: removed {work} ({size / 1e6:.1f} MB) left by an interrupted hats run")
    os.makedirs(os.path.join(work, "scratch"))
    return work


def _incomplete(uri: str, expected_rows: int) -> str | None:
    """None when ``uri`` holds a complete HATS collection with ``expected_rows`` rows; else what is wrong."""
    from hats.io.validation import is_valid_collection

    try:
        with warnings.catch_warnings():
            # hats says listing a margin cache's files "may be slow": it is what the check is for
            warnings.filterwarnings("ignore", "Computing partitions from catalog parquet files", UserWarning)
            if not is_valid_collection(hats_upath(uri), strict=True):
                return "hats does not read it as a complete collection"
        written = hats_parts(uri)
    except (GalaxyRayError, OSError, ValueError) as exc:
        return one_line(exc)
    if written.total_rows != expected_rows:
        return f"it holds {written.total_rows} rows, not the {expected_rows} with a position"
    return None


def _publish(target: str, out: str, replace: bool) -> None:
    """Move the finished local collection ``target`` to ``out`` (replacing one there when ``replace``)."""
    if target == out:
        return
    final = storage.strip_scheme(out)
    if replace and os.path.exists(final):
        shutil.rmtree(final)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    os.replace(target, final)


def _check_out(out: str, replace: bool) -> None:
    """Refuse an OUT that holds a collection (unless ``replace``) or anything else that is not empty."""
    holds = storage.exists(storage.join(str(out), COLLECTION_PROPERTIES))
    if holds and replace:
        if storage.is_remote(out):
            fs, path = storage.fsspec_filesystem(str(out))
            fs.rm(path, recursive=True)
        return
    if holds:
        raise GalaxyRayError(f"{out}: already holds a HATS collection; delete it or choose another OUT")
    if not storage.is_remote(out) and os.path.isdir(storage.strip_scheme(out)) and os.listdir(storage.strip_scheme(out)):
        raise GalaxyRayError(f"{out}: exists and is not a HATS collection galaxy-ray wrote; delete it or choose "
                             "another OUT")


def to_hats(catalog_dir: str, out: str, *, margin_arcsec: float = DEFAULT_MARGIN_ARCSEC,
            partition_rows: int = DEFAULT_PARTITION_ROWS, row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
            highest_order: int = 10, workers: int = 1, dask_scheduler: str | None = None,
            progress: bool = False, replace: bool = False, shutdown_timeout: float = SHUTDOWN_TIMEOUT) -> dict:
    """Write a HATS collection (catalog, margin cache, properties) of a plain galaxy-ray catalog.

    Parameters
    ----------
    catalog_dir : str
        A catalog ``galaxy-ray infer`` wrote (local or ``s3://``).
    out : str
        The collection to write (local or ``s3://``); its last part names it.
    margin_arcsec : float
        Width of the margin cache, arcsec.
    partition_rows : int
        Most rows in one partition; denser sky gets smaller (higher-order) pixels.
    row_group_rows : int
        Rows per Parquet row group inside a partition.
    highest_order : int
        Finest HEALPix order a partition may have (hats-import's mapping order).
    workers : int
        Local Dask workers (processes when more than one); ignored with ``dask_scheduler``.
    dask_scheduler : str, optional
        Address of a running Dask scheduler to do the work on.
    progress : bool
        Print hats-import's progress bars (stderr).
    replace : bool
        Replace a collection already at ``out`` (``infer --hats`` after a
        rerun that added rows); otherwise such an ``out`` is refused.
    shutdown_timeout : float
        Seconds Dask gets to shut down after the work; a shutdown past it
        leaves a complete collection in place, with a warning.

    Returns
    -------
    dict
        ``out``, ``rows``, ``rows_without_position``, ``partitions``, ``margin_arcsec``, ``seconds``
        and ``warnings`` (what went wrong after the collection was complete; also printed).

    Raises
    ------
    GalaxyRayError
        ``catalog_dir`` is not a plain galaxy-ray catalog, ``out`` already
        holds a collection or something else, hats-import refuses its
        arguments, or the collection written is not complete (with hats-import's
        or Dask's message, one line).
    """
    start = time.perf_counter()
    cat = open_catalog(catalog_dir)
    if cat.layout != "plain":
        raise GalaxyRayError(f"{catalog_dir}: already a HATS catalog; open it with lsdb.open_catalog")
    cat.verify()  # hats-import reads every file's rows: check them against _catalog.json first
    _check_out(str(out), replace)
    rows, missing = _rows_without_position(cat)
    if rows == missing:
        raise GalaxyRayError(f"{catalog_dir}: no row has a position (ra, dec); HATS partitions by position")
    props = _properties(cat.provenance, cat.uri, missing)
    options = dict(margin_arcsec=margin_arcsec, partition_rows=partition_rows, row_group_rows=row_group_rows,
                   highest_order=highest_order, progress=progress, workers=workers, dask_scheduler=dask_scheduler,
                   shutdown_timeout=shutdown_timeout)
    work = _fresh_work_dir(str(out))
    target = str(out) if storage.is_remote(out) else os.path.join(work, _split_out(out)[1])
    problem = _run_import(cat, target, props, options, os.path.join(work, "scratch"))
    wrong = _incomplete(target, rows - missing)
    if wrong:
        shutil.rmtree(work, ignore_errors=True)
        raise GalaxyRayError(f"{out}: the HATS collection is not complete ({problem or wrong}); rerun the "
                             "command, it starts again")
    _publish(target, str(out), replace)
    shutil.rmtree(work, ignore_errors=True)
    written = hats_parts(str(out))
    late = [f"{out} is complete ({written.total_rows} rows, checked with hats); {problem}"] if problem else []
    for line in late:
        runtime.say(f"galaxy-ray: warning: {line}")
    return {"out": str(out), "rows": written.total_rows, "rows_without_position": missing,
            "partitions": len(written.files), "margin_arcsec": float(margin_arcsec),
            "seconds": round(time.perf_counter() - start, 3), "warnings": late}


def hats_main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray hats``: write the HATS collection (catalog + margin cache) of a catalog, for LSDB."""
    p = argparse.ArgumentParser(prog="galaxy-ray hats", description=help_text(hats_main.__doc__))
    p.add_argument("catalog", help="catalog directory or s3:// prefix written by galaxy-ray infer")
    p.add_argument("out", help="HATS collection to write (local or s3://); its last part names it")
    p.add_argument("--margin", default=f"{DEFAULT_MARGIN_ARCSEC:g}arcsec",
                   help=f"margin cache width, {ANGLE_HELP} (default {DEFAULT_MARGIN_ARCSEC:g}arcsec)")
    p.add_argument("--partition-rows", type=int, default=DEFAULT_PARTITION_ROWS,
                   help=f"most rows per partition (default {DEFAULT_PARTITION_ROWS:,})")
    p.add_argument("--row-group-rows", type=int, default=DEFAULT_ROW_GROUP_ROWS,
                   help=f"rows per Parquet row group (default {DEFAULT_ROW_GROUP_ROWS:,})")
    p.add_argument("--highest-order", type=int, default=10, help="finest HEALPix order of a partition (default 10)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="local Dask worker processes (default: CPUs, at most 4)")
    p.add_argument("--dask-scheduler", metavar="ADDRESS", help="run on this Dask cluster instead (tcp://HOST:8786)")
    args = p.parse_args(argv)
    args.margin = float(parse_angle(args.margin, "--margin").to_value(u.arcsec))
    if args.margin <= 0 or args.partition_rows < 1 or args.row_group_rows < 1:
        raise GalaxyRayError("--margin, --partition-rows and --row-group-rows must be positive")
    got = to_hats(args.catalog, args.out, margin_arcsec=args.margin, partition_rows=args.partition_rows,
                  row_group_rows=args.row_group_rows, highest_order=args.highest_order, workers=args.workers,
                  dask_scheduler=args.dask_scheduler, progress=sys.stderr.isatty())
    left_out = f"; {got['rows_without_position']} row(s) without a position left out" \
        if got["rows_without_position"] else ""
    print(f"wrote {got['out']}: {got['rows']} rows in {got['partitions']} partitions, margin cache "
          f"{got['margin_arcsec']:g} arcsec, in {got['seconds']:.1f} s{left_out}")
    return 0
