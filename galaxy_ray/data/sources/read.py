"""Open a source with the reader of its format: one listing shared by detection and reader."""

from __future__ import annotations

import argparse

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.data.sources._common import Source
from galaxy_ray.data.sources.containment import OUTSIDE_FLAG
from galaxy_ray.data.sources.detect import check_format, detect_format
from galaxy_ray.data.sources.fits import FitsCutouts
from galaxy_ray.data.sources.galaxy10_h5 import RELEASES, Galaxy10H5
from galaxy_ray.data.sources.gz2_catalog import GZ2Catalog
from galaxy_ray.data.sources.image_folder import ImageFolder
from galaxy_ray.data.sources.kaggle import KaggleGZ2
from galaxy_ray.data.sources.listing import SourceListing, as_listing
from galaxy_ray.data.sources.manifest import Manifest
from galaxy_ray.data.sources.shards import Shards


def open_source(
    source: str | SourceListing, format: str | None = None, *, votes: str = "fraction",
    id_column: str | None = None, filename_mapping: str | None = None, galaxy10: str | None = None,
    allow_outside_paths: bool = False,
) -> Source:
    """The validated :class:`Source` for a path or ``s3://`` URI (format detected when None).

    The source is listed once; detection and the reader share that listing
    and the table headers sniffed from it.

    Parameters
    ----------
    source : str or SourceListing
        A file or directory, or its :func:`list_source` listing.
    format, votes, id_column, filename_mapping, galaxy10
        As for :func:`read_source`.
    allow_outside_paths : bool
        Let a manifest (or a GZ2 catalog's image column) name files outside its own
        folder; by default such a table is refused (:mod:`.containment`).

    Raises
    ------
    GalaxyRayError
        Missing path, unknown or undetectable format, content the format cannot read,
        or a table naming files outside its folder.
    """
    listing = as_listing(source)
    fmt = detect_format(listing) if format is None else check_format(format)
    for option, value, applies in (("--filename-mapping", filename_mapping, "gz2-catalog"),
                                   ("--galaxy10", galaxy10, "galaxy10-h5")):
        if value is not None and fmt != applies:
            raise GalaxyRayError(f"{option} {value}: applies to a {applies} source only, and {listing.uri} is {fmt}")
    if fmt == "galaxy10-h5":
        return Galaxy10H5(listing, release=galaxy10)
    if fmt == "image-folder":
        return ImageFolder(listing)
    if fmt == "kaggle-gz2":
        return KaggleGZ2(listing)
    if fmt == "gz2-catalog":
        return GZ2Catalog(listing, votes=votes, id_column=id_column, filename_mapping=filename_mapping,
                          allow_outside_paths=allow_outside_paths)
    if fmt == "fits":
        return FitsCutouts(listing)
    if fmt == "manifest":
        return Manifest(listing, id_column=id_column, allow_outside_paths=allow_outside_paths)
    return Shards(listing)


def read_source(
    source: str | SourceListing, format: str | None = None, *, votes: str = "fraction",
    id_column: str | None = None, filename_mapping: str | None = None, galaxy10: str | None = None,
    allow_outside_paths: bool = False,
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
    filename_mapping : str, optional
        For a GZ2 catalog: the image release's ``gz2_filename_mapping.csv`` (``objid``,
        ``sample``, ``asset_id``), cutouts then being ``images/<asset_id>.jpg``; by default
        the one beside the catalog, if any.
    galaxy10 : {"decals", "sdss"}, optional
        For a Galaxy10 HDF5 file: which release's class names ``ans`` means; told from the
        content (image size, datasets) when None, refused when it cannot be.
    allow_outside_paths : bool
        As for :func:`open_source`.

    Returns
    -------
    ray.data.Dataset
        Rows of the cutout table.
    """
    return open_source(source, format, votes=votes, id_column=id_column, filename_mapping=filename_mapping,
                       galaxy10=galaxy10, allow_outside_paths=allow_outside_paths).dataset()


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--filename-mapping``, ``--galaxy10`` and ``--allow-outside-paths`` (dests ``filename_mapping``,
    ``galaxy10``, ``allow_outside_paths``).

    Every command that opens a source can offer them; :func:`source_options`
    turns the parsed arguments into :func:`open_source` keywords.
    """
    parser.add_argument("--filename-mapping", default=None, metavar="CSV",
                        help="GZ2 image release's gz2_filename_mapping.csv (objid, sample, asset_id); cutouts are "
                             "images/<asset_id>.jpg (default: the one beside the catalog, if any)")
    parser.add_argument("--galaxy10", default=None, choices=tuple(RELEASES),
                        help="Galaxy10 HDF5 release whose class names the file's codes mean "
                             "(default: told from the image size and datasets)")
    parser.add_argument(OUTSIDE_FLAG, dest="allow_outside_paths", action="store_true",
                        help="let a manifest (or a GZ2 catalog's image column) name files outside its own folder: "
                             "absolute paths elsewhere, '..', symlinks out (default: refused; pass this only for "
                             "a table you trust)")


def source_options(args: argparse.Namespace) -> dict:
    """The :func:`open_source` keywords set by :func:`add_source_options` (absent ones None)."""
    return {"filename_mapping": getattr(args, "filename_mapping", None), "galaxy10": getattr(args, "galaxy10", None),
            "allow_outside_paths": bool(getattr(args, "allow_outside_paths", False))}
