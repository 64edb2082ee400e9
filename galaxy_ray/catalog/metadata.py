"""The ``_metadata`` summary of a plain catalog (every file's footer in one file), and portable URIs.

A plain catalog's files each cover the whole sky, so a cone search would open
every file's footer to learn which row groups to read: one or two requests
per file on S3.  ``_metadata`` (the Parquet convention Dask, Spark and
pyarrow's :func:`pyarrow.dataset.parquet_dataset` share) holds all the
footers with each row group's file path, so a query reads it once and then
opens only the files with a row group meeting the region.

:func:`portable_uri` gives the form of a path that provenance can carry to
another machine: relative to the catalog, never the absolute path of the
machine that ran it.
"""

from __future__ import annotations

import io
import os
import re
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from galaxy_ray.catalog.write import catalog_files
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import layout, storage

__all__ = ["METADATA_NAME", "write_parquet_metadata", "summary_footers", "portable_uri"]

#: Name of the footer summary beside a catalog's files (the Parquet ``_metadata`` convention).
METADATA_NAME = layout.CATALOG_METADATA


def _relative(uri: str, base: str) -> str:
    """``uri``'s path below the directory ``base`` ('/'-separated, as ``_metadata`` stores it)."""
    return storage.strip_scheme(uri)[len(storage.strip_scheme(base)):].lstrip("/")


def write_parquet_metadata(catalog_dir: str) -> str:
    """Write ``_metadata`` (every file's footer, with its file path) beside a catalog's files.

    Call it after the last file is published; a later change to the set of
    files makes readers ignore the summary (they compare the file names).

    Parameters
    ----------
    catalog_dir : str
        Catalog directory or ``s3://`` prefix.

    Returns
    -------
    str
        URI of the ``_metadata`` file written.

    Raises
    ------
    GalaxyRayError
        No catalog files, or files whose Parquet schemas differ.
    """
    files = catalog_files(catalog_dir)
    if not files:
        raise GalaxyRayError(f"{catalog_dir}: no catalog files to summarise")
    fs = storage.pyarrow_filesystem(files[0])[0]
    footers, schema = [], None
    for uri in files:
        with fs.open_input_file(storage.pyarrow_filesystem(uri)[1]) as handle:
            pf = pq.ParquetFile(handle)
            meta = pf.metadata
            schema = pf.schema_arrow if schema is None else schema
        meta.set_file_path(_relative(uri, catalog_dir))
        footers.append(meta)
    combined = footers[0]
    for uri, meta in zip(files[1:], footers[1:]):
        try:
            combined.append_row_groups(meta)
        except RuntimeError as exc:
            raise GalaxyRayError(f"{uri}: its columns differ from {files[0]}'s ({exc}); "
                                 "a catalog's files must share one schema") from None
    buf = io.BytesIO()
    combined.write_metadata_file(buf)
    target = storage.join(catalog_dir, METADATA_NAME)
    storage.write_bytes_atomic(target, buf.getvalue())
    return target


def summary_footers(summary_uri: str, files: list[str]) -> tuple[dict[str, pq.FileMetaData], int] | None:
    """Each file's footer, from a ``_metadata`` summary, and the summary's size in bytes.

    Parameters
    ----------
    summary_uri : str
        The ``_metadata`` file.
    files : list of str
        The catalog's files as listed now.

    Returns
    -------
    (dict, int) or None
        ``{file URI: FileMetaData}`` and the bytes read; None when the summary
        does not name exactly ``files`` (a stale or foreign summary is not used).
    """
    fs, path = storage.pyarrow_filesystem(summary_uri)
    try:
        dataset = ds.parquet_dataset(path, filesystem=fs)
        base = path.rsplit("/", 1)[0]
        # fragments built from _metadata carry their footer: reading it costs no request
        footers = {frag.path: frag.metadata for frag in dataset.get_fragments()}
        size = fs.get_file_info(path).size
    except (pa.ArrowInvalid, OSError):
        return None
    by_uri = {}
    for uri in files:
        local = storage.pyarrow_filesystem(uri)[1]
        if local not in footers or not local.startswith(base):
            return None
        by_uri[uri] = footers[local]
    return (by_uri, int(size)) if len(by_uri) == len(footers) else None


#: A URI with a scheme (``s3://``, ``gs://``, ``https://``, ...); ``file://`` is a local path.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _local_path(uri: str) -> str | None:
    """The absolute local path of ``uri`` (a path or a ``file://`` URI), or None for a remote URI."""
    text = str(uri)
    if text.lower().startswith("file://"):
        text = urlsplit(text).path
    elif _SCHEME.match(text):
        return None
    return os.path.abspath(os.path.expanduser(text))


def portable_uri(uri: str, relative_to: str) -> str:
    """The form of ``uri`` that means the same file on another machine, for a catalog's provenance.

    * A remote URI (``s3://bucket/key``, ``https://...``) is kept as it is,
      less any ``user:password@`` in it.
    * A local path (or ``file://`` URI) becomes the ``/``-separated path
      relative to ``relative_to`` (the catalog directory) when the two share a
      directory below the filesystem root: moving that directory, with the
      catalog, to another machine keeps the path valid.  ``demo_output/runs/g10/model.pt``
      seen from ``demo_output/catalog`` is ``../runs/g10/model.pt``.
    * A local path that shares nothing but the root with the catalog (a
      ``/home/...`` checkpoint and a ``/scratch/...`` catalog), or a local path
      seen from a remote catalog, becomes its file name alone: the rest would
      only describe the machine that ran it (a checkpoint is identified by its
      ``checkpoint_sha256`` anyway).

    Parameters
    ----------
    uri : str
        A path or URI as the user gave it (relative paths are relative to the
        current directory).
    relative_to : str
        The catalog directory (path or URI) the provenance describes.

    Returns
    -------
    str
        The portable form; it never starts with ``/`` or ``~``.
    """
    path = _local_path(uri)
    if path is None:
        parts = urlsplit(str(uri))
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=netloc))
    base = _local_path(relative_to)
    if base is not None:
        common = os.path.commonpath([path, base])
        if os.path.dirname(common) != common:  # a directory below the root holds both
            return os.path.relpath(path, base).replace(os.sep, "/")
    return os.path.basename(path.rstrip(os.sep)) or "."
