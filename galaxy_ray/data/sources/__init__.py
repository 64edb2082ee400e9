"""Input sources: every supported format read as the cutout table (a Ray Dataset).

The cutout table (docs/contracts.md) has ``object_id`` (string), ``ra`` and
``dec`` (ICRS degrees, nullable), ``image`` (encoded bytes or ``.npy`` bytes,
null when the file is missing), ``source`` (where the row came from), ``votes``
(37 cumulative GZ2 fractions, nullable), ``label`` (class name, nullable) and
any carried-through columns.

Formats (one module each): ``galaxy10-h5`` (:mod:`.galaxy10_h5`),
``kaggle-gz2`` (:mod:`.kaggle`), ``gz2-catalog`` (:mod:`.gz2_catalog`),
``fits`` (:mod:`.fits`), ``manifest`` (:mod:`.manifest`) and ``shards``
(:mod:`.shards`).  :mod:`.detect` tells them apart; :mod:`.pack` writes shards.

Examples
--------
>>> from galaxy_ray.data.sources import read_source                # doctest: +SKIP
>>> ds = read_source("s3://survey/gz2/", votes="debiased")    # doctest: +SKIP
>>> ds.schema()                                               # doctest: +SKIP
"""

from __future__ import annotations

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.data.sources._common import CUTOUT_COLUMNS, CUTOUT_SCHEMA, Source, read_parquet
from galaxy_ray.data.sources.detect import FORMATS, check_format, detect_format
from galaxy_ray.data.sources.fits import FitsCutouts
from galaxy_ray.data.sources.galaxy10_h5 import Galaxy10H5
from galaxy_ray.data.sources.gz2_catalog import GZ2Catalog
from galaxy_ray.data.sources.kaggle import KaggleGZ2
from galaxy_ray.data.sources.manifest import Manifest
from galaxy_ray.data.sources.pack import pack, pack_main
from galaxy_ray.data.sources.shards import Shards

__all__ = [
    "FORMATS",
    "CUTOUT_COLUMNS",
    "CUTOUT_SCHEMA",
    "Source",
    "detect_format",
    "open_source",
    "read_source",
    "read_parquet",
    "pack",
    "pack_main",
]


def open_source(
    uri: str, format: str | None = None, *, votes: str = "fraction", id_column: str | None = None
) -> Source:
    """The validated :class:`Source` for ``uri`` (format detected when None).

    Raises
    ------
    GalaxyRayError
        Missing path, unknown or undetectable format, or content the format cannot read.
    """
    uri = str(uri)
    fmt = detect_format(uri) if format is None else check_format(format)
    if fmt == "galaxy10-h5":
        if not _exists_file(uri):
            uri = _single_h5(uri)
        return Galaxy10H5(uri)
    if fmt == "kaggle-gz2":
        return KaggleGZ2(uri)
    if fmt == "gz2-catalog":
        return GZ2Catalog(uri, votes=votes, id_column=id_column)
    if fmt == "fits":
        return FitsCutouts(uri)
    if fmt == "manifest":
        return Manifest(uri, id_column=id_column)
    return Shards(uri)


def read_source(
    uri: str, format: str | None = None, *, votes: str = "fraction", id_column: str | None = None
):
    """Read any source as the cutout table, streaming and in parallel.

    Parameters
    ----------
    uri : str
        Path or ``s3://`` URI of a file or directory.
    format : str, optional
        One of :data:`FORMATS`; detected from the content when None.
    votes : {"fraction", "debiased"}
        For a GZ2 catalog: which conditional values become the cumulative targets.
    id_column : str, optional
        For a GZ2 catalog or a manifest: the id column (GZ2 default: the first of
        ``dr7objid``, ``objid``, ``object_id``, ``id``; manifest default ``object_id``).

    Returns
    -------
    ray.data.Dataset
        Rows of the cutout table.
    """
    return open_source(uri, format, votes=votes, id_column=id_column).dataset()


def _exists_file(uri: str) -> bool:
    from galaxy_ray.io import storage

    if not storage.exists(uri):
        raise GalaxyRayError(f"{uri}: no such file or directory; check the path")
    return not storage.isdir(uri)


def _single_h5(uri: str) -> str:
    from galaxy_ray.io import storage
    from galaxy_ray.data.sources.detect import H5_SUFFIXES

    found = storage.list_files(uri, H5_SUFFIXES)
    if len(found) != 1:
        raise GalaxyRayError(f"{uri}: holds {len(found)} HDF5 files; pass the one to read")
    return found[0]
