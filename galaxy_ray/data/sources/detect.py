"""Which format a SOURCE is, from what it holds (docs/contracts.md, "detected by").

Detection reads only the source's :class:`SourceListing` (one listing) and the
headers of the tables it must tell apart, which the listing caches for the
reader chosen next.
"""

from __future__ import annotations

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import GZ2_KAGGLE_COLUMNS, CatalogColumns as C
from galaxy_ray.data.sources import fits, galaxy10_h5, gz2_catalog, image_folder, kaggle, manifest
from galaxy_ray.data.sources.listing import SourceListing, as_listing, basename
from galaxy_ray.data.sources.tables import is_parquet, is_table, plain_name

FORMATS: tuple[str, ...] = ("image-folder", "galaxy10-h5", "kaggle-gz2", "gz2-catalog", "fits", "manifest", "shards")
H5_SUFFIXES = galaxy10_h5.SUFFIXES
_HINT = f"pass --format (one of: {', '.join(FORMATS)})"
#: Archives of many files (as Kaggle and Zenodo hand them out): unpacked by the user, not read.
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".7z")


def check_format(format: str) -> str:
    """``format`` when known, else a :class:`GalaxyRayError` listing the formats."""
    if format not in FORMATS:
        raise GalaxyRayError(f"--format {format!r}: unknown format; one of: {', '.join(FORMATS)}")
    return format


def detect_format(source: str | SourceListing) -> str:
    """The format of a source path or ``s3://`` URI.

    Parameters
    ----------
    source : str or SourceListing
        A file or directory, local or ``s3://``, or its listing (then nothing is listed again).

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    GalaxyRayError
        When the path is missing or its content matches no format.
    """
    listing = as_listing(source)
    if listing.is_dir:
        return _detect_directory(listing)
    return _detect_file(listing)


def _detect_file(listing: SourceListing) -> str:
    uri = listing.uri
    low = uri.lower()
    if low.endswith(H5_SUFFIXES):
        return "galaxy10-h5"
    if low.endswith(fits.SUFFIXES):
        return "fits"
    if plain_name(uri) == kaggle.SOLUTIONS:
        return "kaggle-gz2"
    if low.endswith(ARCHIVE_SUFFIXES):
        raise GalaxyRayError(f"{uri}: an archive of many files; unpack it and pass the folder it makes")
    if is_table(uri):
        found = _table_format(listing.table_columns(uri))
        if found:
            return found
        raise GalaxyRayError(
            f"{uri}: a table with none of the columns that mark a source ({gz2_catalog.MARKER} for a GZ2 "
            f"catalog, '{manifest.PATH_COLUMN}' for a manifest, '{C.IMAGE}' for shards); {_HINT}"
        )
    raise GalaxyRayError(f"{uri}: cannot tell the format of this file; {_HINT}")


def _table_format(columns: list[str]) -> str | None:
    if gz2_catalog.MARKER in columns:
        return "gz2-catalog"
    if manifest.PATH_COLUMN in columns:
        return "manifest"
    if C.IMAGE in columns and C.OBJECT_ID in columns:
        return "shards"
    if kaggle.ID in columns and GZ2_KAGGLE_COLUMNS[0] in columns:
        return "kaggle-gz2"
    return None


def _detect_directory(listing: SourceListing) -> str:
    uri = listing.uri
    files = [f for f in listing.files if not basename(f).startswith(".")]
    if listing.named(kaggle.SOLUTIONS):
        return "kaggle-gz2"
    h5 = [f for f in files if f.lower().endswith(H5_SUFFIXES)]
    if len(h5) == 1:
        return "galaxy10-h5"
    if len(h5) > 1:
        raise GalaxyRayError(f"{uri}: holds {len(h5)} HDF5 files; pass one of them ({basename(h5[0])}, ...)")
    if any(listing.named(name) for name in manifest.NAMES):
        return "manifest"
    tables = [f for f in files if is_table(f)]
    for f in tables:
        if not is_parquet(f) and gz2_catalog.MARKER in listing.table_columns(f):
            return "gz2-catalog"
    parquet = [f for f in tables if is_parquet(f)]
    if parquet:
        found = _table_format(listing.table_columns(parquet[0]))
        if found:
            return found
    if any(f.lower().endswith(fits.SUFFIXES) for f in files):
        return "fits"
    images = [f for f in files if image_folder.is_image(f)]
    if images and len(images) == len(files):  # JPEG / PNG / TIFF cutouts and nothing else
        return "image-folder"
    raise GalaxyRayError(
        f"{uri}: cannot tell the source format from this directory's files; {_HINT}"
    )
