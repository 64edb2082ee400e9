"""Open a source with the reader of its format: one listing shared by detection and reader."""

from __future__ import annotations

from galaxy_ray.data.sources._common import Source
from galaxy_ray.data.sources.detect import check_format, detect_format
from galaxy_ray.data.sources.fits import FitsCutouts
from galaxy_ray.data.sources.galaxy10_h5 import Galaxy10H5
from galaxy_ray.data.sources.gz2_catalog import GZ2Catalog
from galaxy_ray.data.sources.kaggle import KaggleGZ2
from galaxy_ray.data.sources.listing import SourceListing, as_listing
from galaxy_ray.data.sources.manifest import Manifest
from galaxy_ray.data.sources.shards import Shards


def open_source(
    source: str | SourceListing, format: str | None = None, *, votes: str = "fraction",
    id_column: str | None = None,
) -> Source:
    """The validated :class:`Source` for a path or ``s3://`` URI (format detected when None).

    The source is listed once; detection and the reader share that listing
    and the table headers sniffed from it.

    Parameters
    ----------
    source : str or SourceListing
        A file or directory, or its :func:`list_source` listing.
    format, votes, id_column
        As for :func:`read_source`.

    Raises
    ------
    GalaxyRayError
        Missing path, unknown or undetectable format, or content the format cannot read.
    """
    listing = as_listing(source)
    fmt = detect_format(listing) if format is None else check_format(format)
    if fmt == "galaxy10-h5":
        return Galaxy10H5(listing)
    if fmt == "kaggle-gz2":
        return KaggleGZ2(listing)
    if fmt == "gz2-catalog":
        return GZ2Catalog(listing, votes=votes, id_column=id_column)
    if fmt == "fits":
        return FitsCutouts(listing)
    if fmt == "manifest":
        return Manifest(listing, id_column=id_column)
    return Shards(listing)


def read_source(
    source: str | SourceListing, format: str | None = None, *, votes: str = "fraction",
    id_column: str | None = None,
):
    """Read any source as the cutout table, streaming and in parallel.

    Parameters
    ----------
    source : str or SourceListing
        Path or ``s3://`` URI of a file or directory, or its :func:`list_source` listing.
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
    return open_source(source, format, votes=votes, id_column=id_column).dataset()
