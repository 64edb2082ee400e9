"""Galaxy10 DECaLS HDF5 (``images`` (N, H, W, 3) uint8, ``ans``, ``ra``, ``dec``, ``redshift``, ``pxscale``).

The real file is 2.5 GB (17,736 cutouts of 256 x 256 pixels), so the driver
only reads the dataset shapes; each worker opens the file itself and reads one
contiguous index range (a single HDF5 hyperslab read).  Images leave as
``.npy`` bytes of the (H, W, 3) uint8 array, which decoding recognises.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pyarrow as pa

from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.schema import GALAXY10_CLASSES, CatalogColumns as C
from galaxy_ray.data.sources._common import Source, cutout_table
from galaxy_ray.data.sources.listing import SourceListing, as_listing, basename

#: The file name of the Galaxy10 DECaLS release (any ``.h5``/``.hdf5`` name is read).
FILE_NAME = "Galaxy10_DECals.h5"
SUFFIXES = (".h5", ".hdf5")
#: Datasets: the (N, H, W, 3) uint8 cutouts, the class codes, and per-row values.
IMAGES = "images"
LABELS = "ans"
RA, DEC, REDSHIFT, PIXEL_SCALE = "ra", "dec", "redshift", "pxscale"
#: Per-row datasets turned into cutout-table columns rather than carried as extras.
_SPECIAL = {IMAGES, LABELS, RA, DEC}
_ROW = "_row"


def _open(uri: str):
    import h5py

    # Local files go to HDF5's own driver (faster than a Python file object); S3 through fsspec.
    f = storage.open_input(uri) if storage.is_remote(uri) else contextlib.nullcontext()
    try:
        return f, h5py.File(f if storage.is_remote(uri) else storage.strip_scheme(uri), "r")
    except (OSError, ValueError) as exc:
        if storage.is_remote(uri):
            f.close()
        if not storage.exists(uri):
            raise GalaxyRayError(f"{uri}: no such file; check the path") from None
        raise GalaxyRayError(f"{uri}: not a readable HDF5 file ({one_line(exc)}); check the file") from None


class Galaxy10H5(Source):
    """Cutouts from a Galaxy10-style HDF5 file; ``object_id`` = ``<file stem>_<row>``."""

    format = "galaxy10-h5"

    def __init__(self, source: SourceListing | str) -> None:
        listing = as_listing(source)
        super().__init__(listing)
        self.uri = uri = single_file(listing)
        raw, h5 = _open(uri)
        with raw, h5:
            if IMAGES not in h5:
                raise GalaxyRayError(
                    f"{uri}: HDF5 file has no '{IMAGES}' dataset (keys: {', '.join(sorted(h5.keys())) or 'none'}); "
                    "expected Galaxy10 DECaLS keys images, ans, ra, dec, redshift, pxscale"
                )
            shape = h5[IMAGES].shape
            if len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] not in (1, 3)):
                raise GalaxyRayError(f"{uri}: '{IMAGES}' has shape {shape}; expected (N, height, width, 3)")
            self.n = int(shape[0])
            # Other 1-D datasets with one value per image travel with the rows.
            self.columns = sorted(
                k for k, v in h5.items()
                if k != IMAGES and hasattr(v, "shape") and len(v.shape) == 1 and v.shape[0] == self.n
            )
            self.extras_schema = pa.schema(
                [pa.field(k, pa.from_numpy_dtype(h5[k].dtype)) for k in self.columns if k not in _SPECIAL]
            ) or None
            self.extras_names = list(self.extras_schema.names) if self.extras_schema else []
        stem = basename(uri)
        self.stem = stem.rsplit(".", 1)[0]

    def metadata(self) -> pd.DataFrame:
        return pd.DataFrame({C.OBJECT_ID: [f"{self.stem}_{i}" for i in range(self.n)], _ROW: np.arange(self.n)})

    def read_rows(self, meta: pd.DataFrame) -> pa.Table:
        rows = meta[_ROW].to_numpy()
        start, stop = int(rows.min()), int(rows.max()) + 1
        raw, h5 = _open(self.uri)
        with raw, h5:
            # One hyperslab read per dataset; reorder only if the slice is not already contiguous.
            take = None if stop - start == len(rows) and (rows == np.arange(start, stop)).all() else rows - start
            images = h5[IMAGES][start:stop] if take is None else h5[IMAGES][start:stop][take]
            cols = {k: h5[k][start:stop] if take is None else h5[k][start:stop][take] for k in self.columns}
        ans = cols.get(LABELS)
        labels = None
        if ans is not None:
            labels = [GALAXY10_CLASSES[int(a)] if 0 <= int(a) < len(GALAXY10_CLASSES) else str(int(a)) for a in ans]
        extras = None
        if self.extras_schema is not None:
            extras = pa.table({k: cols[k] for k in self.extras_schema.names})
        return cutout_table(
            object_id=meta[C.OBJECT_ID].tolist(),
            image=[_npy(img) for img in images],
            source=[f"{self.uri}[{int(r)}]" for r in rows],
            ra=cols.get(RA),
            dec=cols.get(DEC),
            label=labels,
            extras=extras,
            extras_schema=self.extras_schema,
        )


def single_file(listing: SourceListing) -> str:
    """The HDF5 file: the listed file itself, or the one ``.h5``/``.hdf5`` file in the directory."""
    if not listing.is_dir:
        return listing.uri
    found = listing.files_with(SUFFIXES)
    if len(found) != 1:
        raise GalaxyRayError(f"{listing.uri}: holds {len(found)} HDF5 files; pass the one to read")
    return found[0]


def _npy(image: np.ndarray) -> bytes:
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2:  # grey: the contract's raw pixels are (H, W, 3)
        image = image[..., None]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(image), allow_pickle=False)
    return buf.getvalue()
