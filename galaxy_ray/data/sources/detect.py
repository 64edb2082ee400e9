"""Which format a SOURCE is, from what it holds (docs/contracts.md, "detected by")."""

from __future__ import annotations

from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.data.sources import fits, gz2_catalog, kaggle, manifest

FORMATS: tuple[str, ...] = ("galaxy10-h5", "kaggle-gz2", "gz2-catalog", "fits", "manifest", "shards")
H5_SUFFIXES = (".h5", ".hdf5")
_HINT = f"pass --format (one of: {', '.join(FORMATS)})"


def check_format(format: str) -> str:
    """``format`` when known, else a :class:`GalaxyRayError` listing the formats."""
    if format not in FORMATS:
        raise GalaxyRayError(f"--format {format!r}: unknown format; one of: {', '.join(FORMATS)}")
    return format


def detect_format(uri: str) -> str:
    """The format of a source path or ``s3://`` URI.

    Parameters
    ----------
    uri : str
        A file or directory, local or ``s3://``.

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    GalaxyRayError
        When the path is missing or its content matches no format.
    """
    uri = str(uri)
    if not storage.exists(uri):
        raise GalaxyRayError(f"{uri}: no such file or directory; check the path")
    if storage.isdir(uri):
        return _detect_directory(uri)
    return _detect_file(uri)


def _detect_file(uri: str) -> str:
    low = uri.lower()
    if low.endswith(H5_SUFFIXES):
        return "galaxy10-h5"
    if low.endswith(fits.SUFFIXES):
        return "fits"
    if low.rstrip("/").endswith(kaggle.SOLUTIONS):
        return "kaggle-gz2"
    from galaxy_ray.data.sources._common import is_table, table_columns

    if is_table(uri):
        columns = table_columns(uri)
        found = _table_format(columns)
        if found:
            return found
        raise GalaxyRayError(
            f"{uri}: a table with none of the columns that mark a source ({gz2_catalog.MARKER} for a GZ2 "
            f"catalog, 'path' for a manifest, 'image' for shards); {_HINT}"
        )
    raise GalaxyRayError(f"{uri}: cannot tell the format of this file; {_HINT}")


def _table_format(columns: list[str]) -> str | None:
    if gz2_catalog.MARKER in columns:
        return "gz2-catalog"
    if manifest.PATH_COLUMN in columns:
        return "manifest"
    if C.IMAGE in columns and C.OBJECT_ID in columns:
        return "shards"
    if kaggle.ID in columns and "Class1.1" in columns:
        return "kaggle-gz2"
    return None


def _detect_directory(uri: str) -> str:
    from galaxy_ray.data.sources._common import basename, is_parquet, is_table, table_columns

    files = [f for f in storage.list_files(uri) if not basename(f).startswith(".")]
    names = {basename(f) for f in files}
    if kaggle.SOLUTIONS in names:
        return "kaggle-gz2"
    h5 = [f for f in files if f.lower().endswith(H5_SUFFIXES)]
    if len(h5) == 1:
        return "galaxy10-h5"
    if len(h5) > 1:
        raise GalaxyRayError(f"{uri}: holds {len(h5)} HDF5 files; pass one of them ({basename(h5[0])}, ...)")
    if names & set(manifest.NAMES):
        return "manifest"
    tables = [f for f in files if is_table(f)]
    for f in tables:
        if not is_parquet(f) and gz2_catalog.MARKER in table_columns(f):
            return "gz2-catalog"
    parquet = [f for f in tables if is_parquet(f)]
    if parquet:
        found = _table_format(table_columns(parquet[0]))
        if found:
            return found
    if any(f.lower().endswith(fits.SUFFIXES) for f in files):
        return "fits"
    images = [f for f in files if f.lower().endswith(kaggle.IMAGE_SUFFIXES)]
    if images and len(images) == len(files):  # an unlabelled Kaggle test folder
        return "kaggle-gz2"
    raise GalaxyRayError(
        f"{uri}: cannot tell the source format from this directory's files; {_HINT}"
    )
