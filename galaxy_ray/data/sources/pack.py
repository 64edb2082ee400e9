"""``galaxy-ray pack``: stream any source into Parquet shards of the cutout table.

Resume design
-------------
* **Deterministic boundaries.**  Every source lists its cutouts on the driver
  in a fixed order (sorted file listings, table row order, HDF5 index order)
  as a small metadata table without pixels.  Shard ``k`` is rows
  ``[k * rows_per_shard, (k + 1) * rows_per_shard)`` of that list, so the same
  input always puts the same rows in ``part-<k>.parquet`` (``k`` zero-padded
  to five digits).
* **Atomic publication.**  A worker reads its shard's cutouts and publishes
  the Parquet file with :func:`galaxy_ray.io.storage.write_bytes_atomic`
  (temporary file and rename locally, one PUT on S3).  A shard file that
  exists is therefore complete.
* **Plan file.**  Before any shard, ``OUT/_pack.json`` records the source,
  format, row count and ``rows_per_shard``; at the end it is rewritten with
  ``"complete": true`` and the summary.  A rerun into the same OUT checks that
  the plan matches (else it stops with an error rather than mix two packings),
  removes temporaries left by a killed run, skips the shards that exist and
  writes only the missing ones.  No row is ever written twice.

Each shard carries its provenance (source, format, shard index, first row) in
the Parquet key-value metadata under ``galaxy_ray_pack``.

Only images
-----------
Shards are what people upload and share, and a manifest can name any file.
A manifest naming files outside its own folder is refused unless the user
allows it (:mod:`.containment`, ``--allow-outside-paths``), and only bytes
that are an image format galaxy-ray reads reach a shard (:func:`screened`):
any other file's row keeps its id and source, with a null ``image`` and the
reason in ``error``, a column every shard carries (null where all is well).

Model-sized pixels
------------------
By default a shard keeps each cutout's original encoded bytes.  With
``--image-size N [--crop-fraction F]`` it stores the cutout decoded and resized
to ``round(N / F)`` pixels as a lossless uint8 PNG: training, evaluation and
inference then skip decoding the full image and resizing it, every epoch.  The
centre crop is *not* applied, so training's rotations still fill the corners
with real sky.  ``{image_size, crop_fraction, stored_size}`` is recorded under
``pixels`` in ``_pack.json`` and in every shard's metadata; a model whose
preprocessing resizes to another side is refused
(:func:`galaxy_ray.data.packed.check_stored_pixels`).  A cutout that cannot
be decoded keeps its original bytes, so its error is reported where it is read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from galaxy_ray import runtime
from galaxy_ray.errors import GalaxyRayError, os_error_line
from galaxy_ray.io import layout, resume, storage
from galaxy_ray.progress import Progress
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.data.sources._common import Source
from galaxy_ray.data.sources.detect import FORMATS
from galaxy_ray.data.sources.read import add_source_options, open_source, source_options
from galaxy_ray.data.sources.shards import PACK_METADATA_KEY, PIXELS_KEY

_SHARD = "_shard"
#: Keys of the plan that must match for a rerun to resume.
_RESUME_KEYS = ("format", "rows", "rows_per_shard", "shards", PIXELS_KEY)


def pixels_record(image_size: int | None, crop_fraction: float = 1.0) -> dict | None:
    """``{image_size, crop_fraction, stored_size, version}`` of a model-sized pack, or None for original bytes.

    ``version`` is the preprocessing version that made the pixels
    (:attr:`galaxy_ray.data.transforms.PreprocessConfig.version`; packs without it are version 1).

    Raises
    ------
    GalaxyRayError
        An image size or crop fraction out of range (``PreprocessConfig``'s checks).
    """
    if image_size is None:
        if float(crop_fraction) != 1.0:
            raise GalaxyRayError(f"--crop-fraction {crop_fraction}: only with --image-size (the model's input side)")
        return None
    from galaxy_ray.data.transforms import PreprocessConfig  # torch: only for model-sized packs

    config = PreprocessConfig(int(image_size), float(crop_fraction))
    return {"image_size": config.image_size, "crop_fraction": float(config.crop_fraction),
            "stored_size": config.resize_to, "version": config.version}


def screened(table: pa.Table) -> tuple[pa.Table, int]:
    """``table`` without the bytes of any cutout that is not an image galaxy-ray reads, and how many (in workers).

    A manifest can name any file; only images (JPEG, PNG, TIFF, FITS, ``.npy``,
    plain or wrapped: :func:`galaxy_ray.data.decode.image_encoding`) reach a
    shard.  Any other row keeps its id and source, a null ``image`` and the
    reason in ``error``, which every shard carries (null where the cutout is fine).
    """
    from galaxy_ray.data.decode import NOT_AN_IMAGE, image_encoding

    n = table.num_rows
    images = table.column(C.IMAGE).to_pylist()
    names = table.column(C.SOURCE).to_pylist() if C.SOURCE in table.column_names else [None] * n
    errors = table.column(C.ERROR).to_pylist() if C.ERROR in table.column_names else [None] * n
    refused = 0
    for i, data in enumerate(images):
        if data is not None and image_encoding(data) is None:
            images[i] = None
            name = names[i] or table.column(C.OBJECT_ID)[i].as_py()
            errors[i] = f"{name}: {NOT_AN_IMAGE}; its bytes were not packed"
            refused += 1
    index = table.column_names.index(C.IMAGE)
    table = table.set_column(index, table.schema.field(index), pa.array(images, type=pa.binary()))
    error = pa.array(errors, type=pa.string())
    if C.ERROR in table.column_names:
        return table.set_column(table.column_names.index(C.ERROR), C.ERROR, error), refused
    return table.append_column(C.ERROR, error), refused


def model_sized(table: pa.Table, pixels: dict) -> pa.Table:
    """``table`` with each decodable cutout's ``image`` replaced by its model-sized PNG (runs in workers)."""
    from galaxy_ray.data.packed import model_sized_png
    from galaxy_ray.data.transforms import PreprocessConfig

    config = PreprocessConfig(int(pixels["image_size"]), float(pixels["crop_fraction"]), int(pixels.get("version", 1)))
    images = table.column(C.IMAGE).to_pylist()
    names = table.column(C.SOURCE).to_pylist() if C.SOURCE in table.column_names else [None] * len(images)
    out = []
    for data, name in zip(images, names):
        try:
            out.append(model_sized_png(data, "" if name is None else str(name), config))
        except Exception:  # noqa: BLE001  (kept as it was: the reading stage reports it as the row's error)
            out.append(data)
    index = table.column_names.index(C.IMAGE)
    return table.set_column(index, table.schema.field(index), pa.array(out, type=pa.binary()))


class _ShardWriter:
    """Reads the cutouts of whole shards and publishes each as one Parquet file (runs in workers)."""

    def __init__(self, source: Source, out: str, rows_per_shard: int, total: int, pixels: dict | None = None) -> None:
        self.source, self.out = source, out
        self.rows_per_shard, self.total = rows_per_shard, total
        self.pixels = pixels

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """One result row per shard published, or one row whose ``error`` says why writing failed.

        A failure to write (a full disk, no permission) or a :class:`GalaxyRayError`
        goes back to the driver as one line in ``error``, not as an exception: raised
        in this Ray task, it would reach the user as a Ray traceback of 46 lines.
        """
        try:
            return self._write(batch)
        except GalaxyRayError as exc:
            failed = str(exc)
        except OSError as exc:
            failed = os_error_line(exc)
        return pd.DataFrame({"shard": [-1], "rows": [0], "not_images": [0], "error": [failed]})

    def _write(self, batch: pd.DataFrame) -> pd.DataFrame:
        done = []
        for k, rows in batch.groupby(_SHARD, sort=False):
            k = int(k)
            expected = min(self.rows_per_shard, self.total - k * self.rows_per_shard)
            if len(rows) != expected:  # a shard's rows must arrive together
                raise RuntimeError(f"shard {k}: got {len(rows)} of its {expected} rows in one batch")
            table, refused = screened(self.source.read_rows(rows.drop(columns=[_SHARD])))
            if self.pixels:
                table = model_sized(table, self.pixels)
            provenance = {"source": self.source.uri, "format": self.source.format, "shard": k,
                          "first_row": k * self.rows_per_shard, "rows": table.num_rows, PIXELS_KEY: self.pixels}
            meta = dict(table.schema.metadata or {})
            meta[PACK_METADATA_KEY] = json.dumps(provenance).encode()
            table = table.replace_schema_metadata(meta)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            storage.write_bytes_atomic(storage.join(self.out, layout.part_name(k)), sink.getvalue().to_pybytes())
            done.append((k, table.num_rows, refused))
        return pd.DataFrame({"shard": [d[0] for d in done], "rows": [d[1] for d in done],
                             "not_images": [d[2] for d in done], "error": [None] * len(done)})


def _check_plan(out: str, plan: dict, existing: set[int]) -> None:
    path = storage.join(out, layout.PACK_PLAN)
    if storage.exists(path):
        old = json.loads(storage.read_bytes(path))
        diff = [k for k in _RESUME_KEYS if old.get(k) != plan[k]]
        if diff:
            raise GalaxyRayError(
                f"{out}: holds a pack of a different input ({', '.join(f'{k} {old.get(k)} != {plan[k]}' for k in diff)}); "
                "write to an empty OUT or delete it"
            )
    elif existing:
        raise GalaxyRayError(f"{out}: already holds part-*.parquet files not written by pack; choose an empty OUT")


def _start_plan(out: str, plan: dict) -> set[int]:
    """Check OUT against ``plan``, drop half-written files, record the plan; the shards already published."""
    state = resume.scan_output(out)
    _check_plan(out, plan, state.indices)
    resume.remove_temps(state)
    storage.makedirs(out)
    storage.write_bytes_atomic(storage.join(out, layout.PACK_PLAN), json.dumps(plan, indent=1).encode())
    return state.indices


def pack(
    source: str,
    out: str,
    rows_per_shard: int = 1000,
    format: str | None = None,
    *,
    votes: str = "fraction",
    id_column: str | None = None,
    filename_mapping: str | None = None,
    galaxy10: str | None = None,
    image_size: int | None = None,
    crop_fraction: float = 1.0,
    allow_outside_paths: bool = False,
    verbose: bool = True,
) -> dict:
    """Pack a source into ``OUT/part-00000.parquet`` ... of at most ``rows_per_shard`` cutouts.

    Parameters
    ----------
    source : str
        Any source path or ``s3://`` URI (see :data:`galaxy_ray.data.sources.FORMATS`).
    out : str
        Output directory or ``s3://`` prefix.
    rows_per_shard : int
        Cutouts per shard (the last shard holds the rest).
    format : str, optional
        Source format; detected from the source when None.
    votes, id_column, filename_mapping, galaxy10
        As for :func:`galaxy_ray.data.sources.read_source`.
    image_size : int, optional
        Store cutouts resized for a model of this input side (pixels), as lossless
        PNG of ``round(image_size / crop_fraction)`` pixels; None keeps the original bytes.
    crop_fraction : float
        The model's centre-crop fraction (with ``image_size``).
    allow_outside_paths : bool
        Let a manifest name files outside its own folder (refused by default:
        :mod:`galaxy_ray.data.sources.containment`).
    verbose : bool
        Print progress (:mod:`galaxy_ray.progress`) and the summary to stderr.

    Returns
    -------
    dict
        ``out``, ``format``, ``rows`` (in the whole pack), ``shards``, ``written`` (by this run),
        ``skipped`` (already complete), ``rows_per_shard``, ``pixels`` (None or the stored-pixel
        record), ``not_images`` (rows of this run whose file was not an image: no bytes packed), ``seconds``.

    Raises
    ------
    GalaxyRayError
        Bad options, an empty source, a manifest naming files outside its folder, or an OUT
        holding another packing.
    """
    if rows_per_shard < 1:
        raise GalaxyRayError(f"--rows-per-shard {rows_per_shard}: must be at least 1")
    start = time.time()
    pixels = pixels_record(image_size, crop_fraction)
    src, meta = _list_cutouts(source, format, votes=votes, id_column=id_column, filename_mapping=filename_mapping,
                              galaxy10=galaxy10, allow_outside_paths=allow_outside_paths)
    total = len(meta)
    n_shards = math.ceil(total / rows_per_shard)
    plan = {"source": str(source), "format": src.format, "rows": total, "rows_per_shard": rows_per_shard,
            "shards": n_shards, PIXELS_KEY: pixels, "complete": False}
    existing = _start_plan(out, plan)
    todo = [k for k in range(n_shards) if k not in existing]
    skipped = n_shards - len(todo)
    sized = f", stored at {pixels['stored_size']} px for --image-size {image_size}" if pixels else ""
    _say(verbose, f"pack: {total} cutouts from {source} ({src.format}) -> {n_shards} shards in {out}{sized}"
                  + (f"; {skipped} already complete" if skipped else ""))
    written, not_images = _write_shards(src, meta, todo, out, rows_per_shard, pixels, verbose) if todo else (0, 0)
    summary = {"out": str(out), "format": src.format, "rows": total, "shards": n_shards, "written": written,
               "skipped": skipped, "rows_per_shard": rows_per_shard, PIXELS_KEY: pixels,
               "not_images": not_images, "seconds": round(time.time() - start, 2)}
    storage.write_bytes_atomic(storage.join(out, layout.PACK_PLAN),
                               json.dumps({**plan, **summary, "complete": True}, indent=1).encode())
    _say(verbose, f"pack: done: {n_shards} shards ({written} written, {skipped} skipped), {total} rows, "
                  f"{summary['seconds']} s -> {out}")
    return summary


def _list_cutouts(source: str, format: str | None, **options) -> tuple[Source, pd.DataFrame]:
    """The opened source and its ordered metadata table (one row per cutout, no pixels).

    Raises
    ------
    GalaxyRayError
        The source holds no cutouts.
    """
    src = open_source(source, format, **options)
    meta = src.metadata().reset_index(drop=True)
    if len(meta) == 0:
        raise GalaxyRayError(f"{source}: no cutouts found in this {src.format} source")
    return src, meta


def _write_shards(src: Source, meta: pd.DataFrame, todo: list[int], out: str, rows_per_shard: int,
                  pixels: dict | None, verbose: bool) -> tuple[int, int]:
    """Write shards ``todo`` of ``meta`` through Ray Data, one task per shard; (shards written, rows not images)."""
    import ray.data

    meta[_SHARD] = meta.index // rows_per_shard
    chunks = [meta.iloc[k * rows_per_shard : (k + 1) * rows_per_shard] for k in todo]
    writer = _ShardWriter(src, out, rows_per_shard, len(meta), pixels)
    runtime.ensure_ray()
    results = ray.data.from_pandas(chunks).map_batches(writer, batch_format="pandas", batch_size=None)
    written = not_images = 0
    with Progress(len(todo), "pack", "shards", enabled=verbose) as progress:
        for row in results.iter_rows():
            if row["error"] is not None and row["error"] == row["error"]:  # not None nor NaN
                kept = f" ({written} of {len(todo)} shards written; a rerun keeps them)" if written else ""
                raise GalaxyRayError(f"{row['error']}{kept}")
            written += 1
            not_images += int(row["not_images"])
            progress.update(1)
    if not_images:
        _say(verbose, f"pack: {not_images} listed files are not images galaxy-ray reads: their rows hold the "
                      "reason in 'error' and no bytes")
    return written, not_images


def _say(verbose: bool, message: str) -> None:
    if verbose:
        runtime.say(message)


def pack_main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray pack SOURCE OUT [--rows-per-shard 1000] [--format F] [--image-size N [--crop-fraction F]]``."""
    parser = argparse.ArgumentParser(
        prog="galaxy-ray pack",
        description="Stream any source into Parquet shards of the cutout table (local or s3://). "
        "Rerunning after an interruption writes only the missing shards.",
    )
    parser.add_argument("source", help="source path or s3:// URI")
    parser.add_argument("out", help="output directory or s3:// prefix")
    parser.add_argument("--rows-per-shard", type=int, default=1000, help="cutouts per shard (default 1000)")
    parser.add_argument("--format", default=None, help=f"source format, one of: {', '.join(FORMATS)} (default: detect)")
    parser.add_argument("--votes", default="fraction", choices=("fraction", "debiased"),
                        help="GZ2 catalog values to convert to cumulative targets (default fraction)")
    parser.add_argument("--id-column", default=None, help="id column of a GZ2 catalog or manifest")
    parser.add_argument("--image-size", type=int, default=None,
                        help="store cutouts resized for a model of this input side, as lossless PNG of "
                             "round(N / crop-fraction) px (default: keep the original bytes)")
    parser.add_argument("--crop-fraction", type=float, default=1.0,
                        help="the model's centre-crop fraction, with --image-size (default 1.0)")
    parser.add_argument("--json", action="store_true", help="end with the summary as one JSON line (for scripts)")
    add_source_options(parser)
    runtime.add_verbose_argument(parser)
    args = parser.parse_args(None if argv is None else list(argv))
    runtime.set_verbosity(args.verbose)
    summary = pack(args.source, args.out, args.rows_per_shard, args.format, votes=args.votes,
                   id_column=args.id_column, image_size=args.image_size, crop_fraction=args.crop_fraction,
                   **source_options(args))
    if args.json:
        print(json.dumps(summary), file=sys.stdout)
    return 0
