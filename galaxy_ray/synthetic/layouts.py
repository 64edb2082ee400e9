"""The synthetic survey in each input format: file names, per-object files, CSV tables, HDF5.

Names and columns are the readers' own (``galaxy_ray.data.sources``), so what
``galaxy-ray synth`` writes is what ``galaxy-ray pack`` / ``read_source`` read
(docs/contracts.md, "Source layouts").  Per-object files (and shards) are
written by the rendering workers; the tables listing them, and the one
Galaxy10 HDF5 file, by the parent process.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from galaxy_ray import schema
from galaxy_ray.data.sources import FORMATS as SOURCE_FORMATS
from galaxy_ray.data.sources import fits, galaxy10_h5, gz2_catalog, kaggle, manifest
from galaxy_ray.io import layout, storage
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.synthetic.encode import cutout_table, encode_fits, encode_jpeg, encode_png
from galaxy_ray.synthetic.galaxy import OBJECT_ID_PREFIX, SyntheticGalaxy
from galaxy_ray.synthetic.votes import debiased

#: The synthetic survey writes every format the readers know.
FORMATS: tuple[str, ...] = SOURCE_FORMATS

#: Galaxy10 HDF5 per-row datasets besides the images: (dataset, metadata key, dtype), as in the release.
H5_COLUMNS = ((galaxy10_h5.LABELS, "galaxy10", "uint8"), (galaxy10_h5.RA, "ra", "float64"),
              (galaxy10_h5.DEC, "dec", "float64"), (galaxy10_h5.REDSHIFT, "redshift", "float32"),
              (galaxy10_h5.PIXEL_SCALE, "pixel_scale", "float32"))
#: SDSS DR7 objids of the main survey are 18-digit integers starting 587.
DR7_OBJID_PREFIX = "587"
DR7_OBJID_BASE = int(DR7_OBJID_PREFIX) * 10**15

_JPG = kaggle.IMAGE_SUFFIXES[0]
_GZ2_JPG = ".jpg"  # the gz2-catalog reader looks for <IMAGE_DIR>/<id>.jpg
_FITS = fits.SUFFIXES[0]
#: Files of each layout that a smaller rerun into the same directory must delete.
_STALE_PATTERNS = {
    "shards": [f"{layout.PART_PREFIX}*{layout.PART_SUFFIX}"],
    "fits": [f"{OBJECT_ID_PREFIX}*{_FITS}"],
    "image-folder": [f"{OBJECT_ID_PREFIX}*.png"],
    "manifest": [f"{manifest.IMAGE_DIR}/{OBJECT_ID_PREFIX}*.png"],
    "kaggle-gz2": [f"{kaggle.TRAINING_IMAGES}/*{_JPG}"],
    "gz2-catalog": [f"{gz2_catalog.IMAGE_DIR}/{DR7_OBJID_PREFIX}*{_GZ2_JPG}"],
    "galaxy10-h5": [],
}


def kaggle_id(index: int) -> int:
    """The Kaggle ``GalaxyID`` of galaxy ``index`` (six digits, like the challenge's)."""
    return 100000 + index


def dr7_objid(seed: int, index: int) -> int:
    """An SDSS DR7-like objid for galaxy ``index`` of survey ``seed``, unique per (seed, index)."""
    return DR7_OBJID_BASE + (seed % 10**7) * 10**9 + index


def metadata(galaxy: SyntheticGalaxy) -> dict[str, Any]:
    """What the tables and the HDF5 file need of a galaxy (no pixels): sent back by the workers."""
    return {"object_id": galaxy.object_id, "ra": galaxy.ra, "dec": galaxy.dec, "galaxy10": galaxy.galaxy10,
            "label": galaxy.label, "votes": galaxy.votes, "redshift": galaxy.redshift,
            "pixel_scale": galaxy.pixel_scale, "index": galaxy.index, "seed": galaxy.seed}


def object_path(fmt: str, meta: dict[str, Any]) -> str | None:
    """A galaxy's own file, relative to the survey directory (``/``-separated); None when it has none."""
    if fmt == "fits":
        return f"{meta['object_id']}{_FITS}"
    if fmt == "image-folder":
        return f"{meta['object_id']}.png"
    if fmt == "manifest":
        return f"{manifest.IMAGE_DIR}/{meta['object_id']}.png"
    if fmt == "kaggle-gz2":
        return f"{kaggle.TRAINING_IMAGES}/{kaggle_id(meta['index'])}{_JPG}"
    if fmt == "gz2-catalog":
        return f"{gz2_catalog.IMAGE_DIR}/{dr7_objid(meta['seed'], meta['index'])}{_GZ2_JPG}"
    return None


def _encode(fmt: str, galaxy: SyntheticGalaxy) -> bytes:
    if fmt == "fits":
        return encode_fits(galaxy)
    if fmt in ("manifest", "image-folder"):
        return encode_png(galaxy.rgb)
    return encode_jpeg(galaxy.rgb)


def write_objects(out: str, fmt: str, galaxies: Sequence[SyntheticGalaxy], shard: int = 0) -> list[str]:
    """Write the per-object files of ``galaxies``, or their one Parquet shard (``shards``).

    Parameters
    ----------
    out : str
        Survey directory, local or ``s3://``.
    fmt : str
        One of :data:`FORMATS`; ``galaxy10-h5`` writes nothing here (see :class:`H5Writer`).
    galaxies : sequence of SyntheticGalaxy
        One job's range of galaxies.
    shard : int
        The shard number (``shards`` only).

    Returns
    -------
    list of str
        URIs written, each atomically.
    """
    if fmt == "shards":
        buf = io.BytesIO()
        pq.write_table(cutout_table(galaxies), buf, compression="zstd")
        uri = storage.join(out, layout.part_name(shard))
        storage.write_bytes_atomic(uri, buf.getvalue())
        return [uri]
    written = []
    for galaxy in galaxies:
        rel = object_path(fmt, metadata(galaxy))
        if rel is not None:
            written.append(storage.join(out, rel))
            storage.write_bytes_atomic(written[-1], _encode(fmt, galaxy))
    return written


def _votes_frame(meta: list[dict[str, Any]]) -> pd.DataFrame:
    votes = np.stack([m["votes"] for m in meta]).astype(np.float32)
    return pd.DataFrame(votes, columns=list(schema.GZ2_KAGGLE_COLUMNS))


def _kaggle_table(meta: list[dict[str, Any]]) -> tuple[str, pd.DataFrame]:
    ids = pd.DataFrame({kaggle.ID: [kaggle_id(m["index"]) for m in meta]})
    return kaggle.SOLUTIONS, pd.concat([ids, _votes_frame(meta)], axis=1)


def _gz2_table(meta: list[dict[str, Any]]) -> tuple[str, pd.DataFrame]:
    """Hart et al. (2016) columns: conditional ``..._fraction`` and ``..._debiased`` per answer."""
    conditional = schema.cumulative_to_conditional(np.stack([m["votes"] for m in meta]).astype(np.float64))
    redshift = np.array([m["redshift"] for m in meta])
    values = {"fraction": conditional, "debiased": debiased(conditional, redshift)}  # gz2_catalog.VOTE_KINDS
    columns: dict[str, Any] = {
        gz2_catalog.ID_COLUMN: np.array([dr7_objid(m["seed"], m["index"]) for m in meta], dtype=np.int64),
        C.RA: [m["ra"] for m in meta], C.DEC: [m["dec"] for m in meta],
        gz2_catalog.IMAGE_COLUMN: [object_path("gz2-catalog", m) for m in meta],
    }
    for j, stem in enumerate(schema.GZ2_HART_COLUMNS):
        for kind in gz2_catalog.VOTE_KINDS:
            columns[f"{stem}_{kind}"] = values[kind][:, j]
    return gz2_catalog.CATALOG_NAME, pd.DataFrame(columns)


def _manifest_table(meta: list[dict[str, Any]]) -> tuple[str, pd.DataFrame]:
    listing = pd.DataFrame({
        C.OBJECT_ID: [m["object_id"] for m in meta], C.RA: [m["ra"] for m in meta], C.DEC: [m["dec"] for m in meta],
        manifest.PATH_COLUMN: [object_path("manifest", m) for m in meta], C.LABEL: [m["label"] for m in meta],
    })
    return manifest.MANIFEST_CSV, pd.concat([listing, _votes_frame(meta)], axis=1)


_TABLES = {"kaggle-gz2": _kaggle_table, "gz2-catalog": _gz2_table, "manifest": _manifest_table}


def write_tables(out: str, fmt: str, meta: list[dict[str, Any]], counts: pd.DataFrame | None = None) -> list[str]:
    """Write the CSV table that lists the per-object files (``kaggle-gz2``, ``gz2-catalog``, ``manifest``).

    Parameters
    ----------
    out : str
        Survey directory, local or ``s3://``.
    fmt : str
        One of :data:`FORMATS`; the others have no table.
    meta : list of dict
        :func:`metadata` of every galaxy, in index order.
    counts : pandas.DataFrame, optional
        ``manifest`` only: vote-count columns (one row per galaxy, index order) to add to the
        manifest, as a Galaxy Zoo vote table with a ``path`` column is (``synth --tree``).

    Returns
    -------
    list of str
        The table's URI, or nothing.
    """
    if fmt not in _TABLES:
        return []
    name, frame = _TABLES[fmt](meta)
    if counts is not None:
        frame = pd.concat([frame, counts.reset_index(drop=True)], axis=1)
    uri = storage.join(out, name)
    storage.write_bytes_atomic(uri, frame.to_csv(index=False).encode())
    return [uri]


class H5Writer:
    """The Galaxy10 DECaLS HDF5 layout, filled chunk by chunk.

    HDF5 needs a seekable local file: it is written to a temporary file beside
    the output (or in the temp directory for ``s3://``) and moved or uploaded
    by :meth:`close`.
    """

    def __init__(self, out: str, n: int, size: int):
        import h5py

        self.uri = storage.join(out, galaxy10_h5.FILE_NAME)
        storage.makedirs(out)
        directory = None if storage.is_remote(out) else storage.strip_scheme(out)
        fd, self.tmp = tempfile.mkstemp(suffix=".h5.tmp", dir=directory)
        os.close(fd)
        self.file = h5py.File(self.tmp, "w")
        self.images = self.file.create_dataset(galaxy10_h5.IMAGES, (n, size, size, 3), dtype="uint8",
                                               chunks=(1, size, size, 3))
        self.columns = {name: self.file.create_dataset(name, (n,), dtype=dtype) for name, _, dtype in H5_COLUMNS}
        self.row = 0

    def add(self, result: dict[str, Any]) -> None:
        """Append one job's rows: ``result["rgb"]`` (k, S, S, 3) and ``result["meta"]`` (k dicts)."""
        rows = slice(self.row, self.row + len(result["meta"]))
        self.images[rows] = result["rgb"]
        for name, key, _ in H5_COLUMNS:
            self.columns[name][rows] = [m[key] for m in result["meta"]]
        self.row = rows.stop

    def close(self) -> str:
        """Finish the file and put it in place; returns its URI."""
        self.file.close()
        if storage.is_remote(self.uri):
            fs, path = storage.fsspec_filesystem(self.uri)
            try:
                fs.put_file(self.tmp, path)
            finally:
                os.unlink(self.tmp)
        else:
            os.replace(self.tmp, storage.strip_scheme(self.uri))
        return self.uri

    def abort(self) -> None:
        """Drop the temporary file (rendering failed)."""
        try:
            self.file.close()
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


def remove_stale(out: str, fmt: str, written: set[str]) -> int:
    """Delete files of this layout left by an earlier, larger run into the same directory.

    Returns
    -------
    int
        How many files were deleted.
    """
    fs, root = storage.fsspec_filesystem(out)
    keep = {storage.strip_scheme(w) for w in written}
    removed = 0
    for pattern in _STALE_PATTERNS[fmt]:
        for path in fs.glob(f"{root}/{pattern}"):
            if path not in keep:
                fs.rm_file(path)
                removed += 1
    return removed


def describe(fmt: str, n: int, rows_per_shard: int) -> str:
    """What a survey of ``n`` galaxies in ``fmt`` consists of, for the command's summary line."""
    shards = math.ceil(n / rows_per_shard)
    return {
        "galaxy10-h5": galaxy10_h5.FILE_NAME,
        "kaggle-gz2": f"{kaggle.SOLUTIONS} + {n} {kaggle.TRAINING_IMAGES}/<{kaggle.ID}>{_JPG}",
        "gz2-catalog": f"{gz2_catalog.CATALOG_NAME} + {n} {gz2_catalog.IMAGE_DIR}/<{gz2_catalog.ID_COLUMN}>{_GZ2_JPG}",
        "fits": f"{n} <object_id>{_FITS}",
        "image-folder": f"{n} <object_id>.png (no table: no positions, no labels)",
        "manifest": f"{manifest.MANIFEST_CSV} + {n} {manifest.IMAGE_DIR}/<object_id>.png",
        "shards": f"{shards} {layout.PART_PREFIX}NNNNN{layout.PART_SUFFIX}",
    }[fmt]
