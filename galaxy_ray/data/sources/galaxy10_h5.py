"""Galaxy10 HDF5 files: the DECaLS release and the original SDSS one, told apart by content.

Galaxy10 DECaLS (``Galaxy10_DECals.h5``): ``images`` (N, 256, 256, 3) uint8,
``ans``, ``ra``, ``dec``, ``redshift``, ``pxscale``; classes
:data:`galaxy_ray.schema.GALAXY10_CLASSES`.  Galaxy10 SDSS (``Galaxy10.h5``,
Leung & Bovy, astroNN): ``images`` (N, 69, 69, 3) and ``ans`` only; classes
:data:`GALAXY10_SDSS_CLASSES`, a different list under the same codes 0..9 (code
1 is "Smooth, Completely round" there, "Merging" in DECaLS), with no merger
class.  The release is read from the image size (69 or 256 pixels) and the
DECaLS-only datasets (``ra``, ``dec``, ``redshift``, ``pxscale``); when the two
disagree or say nothing, the source is refused unless ``release`` is given.

The real DECaLS file is 2.5 GB (17,736 cutouts of 256 x 256 pixels), so the driver
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
from galaxy_ray.schema import GALAXY10_CLASSES, GALAXY10_SDSS_CLASSES, CatalogColumns as C
from galaxy_ray.data.sources._common import Source, cutout_table
from galaxy_ray.data.sources.listing import SourceListing, as_listing, basename
from galaxy_ray.data.sources.positions import check_positions

#: The file name of the DECaLS release (any ``.h5``/``.hdf5`` name is read).
FILE_NAME = "Galaxy10_DECals.h5"
#: The releases, their class names, and their cutout size in pixels.
DECALS, SDSS = "decals", "sdss"
RELEASES: dict[str, tuple[str, ...]] = {DECALS: GALAXY10_CLASSES, SDSS: GALAXY10_SDSS_CLASSES}
IMAGE_SIZES = {256: DECALS, 69: SDSS}
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


def tell_release(shape: tuple[int, ...], keys: set[str], uri: str, release: str | None = None) -> str:
    """Which Galaxy10 release a file is (:data:`DECALS` or :data:`SDSS`), from its content.

    Parameters
    ----------
    shape : tuple of int
        Shape of the ``images`` dataset, (N, height, width, 3).
    keys : set of str
        The file's dataset names.
    uri : str
        The file, for messages.
    release : {"decals", "sdss"}, optional
        Given by the user: taken as it is.

    Raises
    ------
    GalaxyRayError
        ``release`` is unknown, or the content does not say (or contradicts itself).
    """
    if release is not None:
        if release not in RELEASES:
            raise GalaxyRayError(f"--galaxy10 {release!r}: unknown release; one of {', '.join(RELEASES)}")
        return release
    by_size = IMAGE_SIZES.get(shape[1]) if len(shape) >= 3 and shape[1] == shape[2] else None
    decals_keys = sorted(keys & {RA, DEC, REDSHIFT, PIXEL_SCALE})
    by_keys = DECALS if decals_keys else None
    if by_size is not None and (by_keys is None or by_keys == by_size):
        return by_size
    if by_size is None and by_keys is not None:
        return by_keys
    size = "x".join(str(n) for n in shape[1:3])
    why = (f"its {size} images say {by_size} but its datasets {', '.join(decals_keys)} say {by_keys}"
           if by_size else f"its {size} images and datasets ({', '.join(sorted(keys))}) match neither release")
    raise GalaxyRayError(
        f"{uri}: cannot tell Galaxy10 SDSS (69x69 images, images and ans only) from Galaxy10 DECaLS "
        f"(256x256, with ra, dec, redshift, pxscale): {why}; pass --galaxy10 sdss or --galaxy10 decals"
    )


class Galaxy10H5(Source):
    """Cutouts from a Galaxy10 HDF5 file; ``object_id`` = ``<file stem>_<row>``.

    ``release`` (``"decals"`` or ``"sdss"``) says which class names the ``ans``
    codes mean; read from the content when None (:func:`tell_release`).
    """

    format = "galaxy10-h5"

    def __init__(self, source: SourceListing | str, release: str | None = None) -> None:
        listing = as_listing(source)
        super().__init__(listing)
        self.uri = uri = single_file(listing)
        raw, h5 = _open(uri)
        with raw, h5:
            if IMAGES not in h5:
                raise GalaxyRayError(
                    f"{uri}: HDF5 file has no '{IMAGES}' dataset (keys: {', '.join(sorted(h5.keys())) or 'none'}); "
                    "expected Galaxy10 keys images, ans (DECaLS also ra, dec, redshift, pxscale)"
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
            #: ``decals`` or ``sdss``; :attr:`classes` are its class names in ``ans`` order.
            self.release = tell_release(tuple(shape), set(h5.keys()), uri, release)
        self.classes: tuple[str, ...] = RELEASES[self.release]
        self.stem = basename(uri).rsplit(".", 1)[0]

    def metadata(self) -> pd.DataFrame:
        ids = [f"{self.stem}_{i}" for i in range(self.n)]
        self._check_values(ids)
        return pd.DataFrame({C.OBJECT_ID: ids, _ROW: np.arange(self.n)})

    def _check_values(self, ids: list[str]) -> None:
        """Refuse class codes outside the release's list and positions off the sky (driver, before any work)."""
        wanted = [k for k in (LABELS, RA, DEC) if k in self.columns]
        if not wanted:
            return
        raw, h5 = _open(self.uri)
        with raw, h5:
            cols = {k: h5[k][:] for k in wanted}
        if LABELS in cols:
            ans = cols[LABELS].astype(np.int64)
            bad = np.flatnonzero((ans < 0) | (ans >= len(self.classes)))
            if len(bad):
                k = int(bad[0])
                raise GalaxyRayError(
                    f"{self.uri}: row object_id={ids[k]}: '{LABELS}' is {ans[k]}, not a Galaxy10 class code "
                    f"0..{len(self.classes) - 1} ({len(bad)} rows like it); check the file"
                )
        if RA in cols and DEC in cols:
            check_positions(cols[RA], cols[DEC], ids, self.uri)

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
        # Codes were checked against the class list on the driver (metadata).
        labels = None if ans is None else [self.classes[int(a)] for a in ans]
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
