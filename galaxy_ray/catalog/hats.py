"""Reading a catalog in the HATS layout (what LSDB opens), for ``query`` and ``stats``.

A HATS catalog splits the sky into HEALPix partitions sized by row count:
``dataset/Norder=k/Dir=m/Npix=n.parquet`` holds the rows whose position lies
in pixel ``n`` at order ``k``, beside ``hats.properties``,
``partition_info.csv``, ``_metadata``, ``_common_metadata`` and the sky map
(Caplar et al. 2024, the HATS format; https://hats.readthedocs.io).  A
*collection* adds a margin cache and a ``collection.properties`` naming the
primary catalog; ``galaxy-ray hats`` writes a collection.

Pixel ``n`` at order ``k`` holds exactly the order-29 indices
``[n * 4**(29-k), (n+1) * 4**(29-k))``, so a region's cover (see
:mod:`~galaxy_ray.catalog.regions`) tells which partition files to open
without reading any of them.

The ``hats`` library (it imports numba) is imported inside the functions here
so that ``galaxy-ray query`` on the plain layout never pays for it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from galaxy_ray.catalog.write import METADATA_KEY
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["COLLECTION_PROPERTIES", "CATALOG_PROPERTIES", "is_hats_listing", "hats_upath", "HatsParts",
           "hats_parts", "pixel_ranges"]

#: File that marks a HATS collection (primary catalog, margins, indexes).
COLLECTION_PROPERTIES = "collection.properties"
#: File that marks one HATS catalog.
CATALOG_PROPERTIES = "hats.properties"


def is_hats_listing(file_uris: list[str]) -> bool:
    """True when a directory listing (its files' URIs) is that of a HATS collection or catalog."""
    names = {u.rstrip("/").rsplit("/", 1)[-1] for u in file_uris}
    return bool(names & {COLLECTION_PROPERTIES, CATALOG_PROPERTIES})


def hats_upath(uri: str):
    """A ``UPath`` for the ``hats``/``lsdb``/``hats-import`` libraries, S3 settings as :mod:`storage` uses them.

    ``hats`` reads ``s3://`` anonymously unless told otherwise; the endpoint
    (MinIO, Ceph, a moto test server) comes from ``AWS_ENDPOINT_URL``.
    """
    from upath import UPath

    if not storage.is_remote(uri):
        return UPath(storage.strip_scheme(uri))
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options = {"anon": False}
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    return UPath(str(uri).rstrip("/"), **options)


def pixel_ranges(orders: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order-29 index ranges ``[lo, hi)`` of NESTED HEALPix pixels.

    Parameters
    ----------
    orders, pixels : numpy.ndarray of int, shape (P,)
        Each pixel's order ``k`` (0-29) and index ``n``.

    Returns
    -------
    (lo, hi) : two numpy.ndarray of int64, shape (P,)
        ``n * 4**(29-k)`` and ``(n + 1) * 4**(29-k)``.
    """
    shift = 2 * (C.HEALPIX_ORDER - np.asarray(orders, dtype=np.int64))
    pixels = np.asarray(pixels, dtype=np.int64)
    return pixels << shift, (pixels + 1) << shift


@dataclass
class HatsParts:
    """What :func:`hats_parts` reads of a HATS catalog: partition files and their sky ranges."""

    catalog_dir: str
    files: list[str]
    ranges: tuple[np.ndarray, np.ndarray]
    schema: pa.Schema
    provenance: dict | None
    total_rows: int


def _as_uri(path, like: str) -> str:
    """A ``UPath`` as a URI of the same kind as ``like`` (``s3://...`` or a local path)."""
    text = path.path if hasattr(path, "path") else str(path)
    return f"s3://{text.lstrip('/')}" if storage.is_remote(like) else text


def hats_parts(uri: str) -> HatsParts:
    """Open a HATS collection (its primary catalog) or catalog: its partitions, schema and provenance.

    Reads the properties, ``partition_info.csv`` and ``_common_metadata``; no
    partition file is opened.

    Raises
    ------
    GalaxyRayError
        ``uri`` is not a readable HATS catalog.
    """
    import hats
    from hats.catalog.catalog_collection import CatalogCollection
    from hats.io import paths

    try:
        # the MOC (point_map.fits, 12 * 4**10 pixels) costs ~80 ms and the partitions already say enough
        opened = hats.read_hats(hats_upath(uri), read_moc=False)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise GalaxyRayError(f"{uri}: not a readable HATS catalog ({exc})") from None
    if isinstance(opened, CatalogCollection):
        opened = opened.main_catalog
    base = opened.catalog_base_dir
    suffix = opened.catalog_info.npix_suffix
    pixels = sorted(opened.get_healpix_pixels(), key=lambda p: p.pixel << 2 * (C.HEALPIX_ORDER - p.order))
    files = [_as_uri(paths.pixel_catalog_file(base, p, npix_suffix=suffix), uri) for p in pixels]
    ranges = pixel_ranges(np.array([p.order for p in pixels]), np.array([p.pixel for p in pixels]))
    schema = opened.schema  # from _common_metadata, with its key-value metadata
    if schema is None:
        raise GalaxyRayError(f"{uri}: a HATS catalog without dataset/_common_metadata")
    raw = (schema.metadata or {}).get(METADATA_KEY.encode())
    return HatsParts(catalog_dir=_as_uri(base, uri), files=files, ranges=ranges,
                     schema=schema.remove_metadata(), provenance=None if raw is None else json.loads(raw),
                     total_rows=int(opened.catalog_info.total_rows or 0))
