"""A folder of image cutouts with no table: format ``image-folder``.

JPEG, PNG and TIFF files (also gzip/bzip2/xz-compressed, ``.png.gz``), one
galaxy each, directly in the folder.  ``object_id`` is the file name without
its extension(s) (``NGC1300.png`` -> ``NGC1300``), as a catalog written from
a manifest would name it; there are no positions (``ra``/``dec`` null) and no
labels, so such a folder is for ``infer``, ``predict`` and ``pack``.  A folder
of FITS cutouts is the ``fits`` format, which reads RA/Dec from each WCS.
"""

from __future__ import annotations

import pandas as pd

from galaxy_ray.data.sources._common import PATH, FileRowsSource
from galaxy_ray.data.sources.listing import SourceListing, as_listing, basename
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C

#: Image files an image folder holds (lower-case suffixes), plain or compressed.
PLAIN_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
SUFFIXES = tuple(p + c for p in PLAIN_SUFFIXES for c in ("", ".gz", ".bz2", ".xz"))


def image_stem(name: str) -> str:
    """The file name without its image suffix: ``a/b/NGC1300.png.gz`` -> ``NGC1300``."""
    base = basename(name)
    low = base.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if low.endswith(suffix):
            return base[: -len(suffix)]
    return base.rsplit(".", 1)[0] if "." in base else base


def is_image(name: str) -> bool:
    """True when ``name`` ends with one of :data:`SUFFIXES`."""
    return name.lower().endswith(SUFFIXES)


class ImageFolder(FileRowsSource):
    """Every JPEG / PNG / TIFF file of a folder, one row each, no manifest needed."""

    format = "image-folder"

    def __init__(self, source: SourceListing | str) -> None:
        listing = as_listing(source)
        super().__init__(listing)
        self.root = listing.folder

    def metadata(self) -> pd.DataFrame:
        files = sorted(self.listing.files_with(SUFFIXES))
        if not files:
            raise GalaxyRayError(f"{self.root}: no image files ({', '.join(PLAIN_SUFFIXES)}) in this folder; "
                                 "a folder of FITS cutouts is --format fits, a table of paths --format manifest")
        ids = [image_stem(f) for f in files]
        seen: dict[str, str] = {}
        for i, f in zip(ids, files):
            if i in seen:
                raise GalaxyRayError(f"{self.root}: {basename(seen[i])} and {basename(f)} give the same object_id "
                                     f"{i!r}; rename one, or list the files in a manifest with their own ids")
            seen[i] = f
        return pd.DataFrame({C.OBJECT_ID: ids, PATH: files})
