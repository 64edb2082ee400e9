"""``predict``: classify image files or an in-memory array of cutouts in this process, without Ray."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Sequence

import numpy as np

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import layout, storage
from galaxy_ray.schema import CatalogColumns as C

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["predict"]


def _npy_bytes(cutout: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(cutout), allow_pickle=False)
    return buf.getvalue()


def _array_rows(images: np.ndarray, ids: Sequence[str] | None) -> dict[str, np.ndarray]:
    """Cutout-table rows for (N, H, W, 3) uint8 cutouts, each as the ``.npy`` bytes the decoder reads."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise GalaxyRayError(f"images: an array of shape {images.shape} ({images.dtype}); predict takes "
                             "uint8 cutouts of shape (N, H, W, 3), or a list of image files")
    names = [str(i) for i in (range(len(images)) if ids is None else ids)]
    if len(names) != len(images):
        raise GalaxyRayError(f"ids: {len(names)} ids for {len(images)} cutouts; give one id per cutout")
    data = np.empty(len(images), dtype=object)
    data[:] = [_npy_bytes(c) for c in images]
    return {C.OBJECT_ID: np.array(names, dtype=object), C.IMAGE: data,
            C.SOURCE: np.array([f"images[{i}]" for i in range(len(images))], dtype=object)}


def _file_rows(images: Sequence[str], ids: Sequence[str] | None) -> dict[str, np.ndarray]:
    """Cutout-table rows for image files (None bytes where a file cannot be read: decoding reports it)."""
    uris = [str(u) for u in images]
    names = [os.path.basename(u) for u in uris] if ids is None else [str(i) for i in ids]
    if len(names) != len(uris):
        raise GalaxyRayError(f"ids: {len(names)} ids for {len(uris)} images; give one id per image")
    data = np.empty(len(uris), dtype=object)
    for i, uri in enumerate(uris):
        try:
            data[i] = storage.read_bytes(uri)
        except (FileNotFoundError, OSError):
            data[i] = None
    return {C.OBJECT_ID: np.array(names, dtype=object), C.IMAGE: data, C.SOURCE: np.array(uris, dtype=object)}


def predict(checkpoint: str, images: np.ndarray | Sequence[str], *, ids: Sequence[str] | None = None,
            tta: bool = False, merger_threshold: float | str = "auto", merger_precision: float | None = None,
            batch_size: int = 256, device: str = "cpu") -> pd.DataFrame:
    """Classify a few cutouts in this process (no Ray): image files, or cutouts already in memory.

    Each cutout is decoded, resized and cropped exactly as ``infer`` does
    (:func:`galaxy_ray.data.transforms.preprocess_batch`), so the rows equal
    those a catalog would hold for the same pixels.

    Parameters
    ----------
    checkpoint : str
        ``model.pt`` or its run directory, path or ``s3://``.
    images : numpy.ndarray or sequence of str
        uint8 cutouts of shape (N, H, W, 3), RGB in [0, 255], any side H = W
        (resized to the model's input size); or JPEG / PNG / FITS / ``.npy``
        files, paths or ``s3://``.
    ids : sequence of str, optional
        ``object_id`` of each cutout (default: the file names, or ``"0"`` ...
        ``"N-1"`` for an array).
    tta : bool
        Average over the 8 rotations and flips (adds ``p_merger_std`` and ``morphology_prob_std``).
    merger_threshold : "auto" or float
        ``is_merger = p_merger >= merger_threshold``; ``auto``: the checkpoint's validated threshold.
    merger_precision : float, optional
        With ``auto``: the lowest stored threshold reaching this validation precision.
    batch_size : int
        Cutouts per forward pass.
    device : str
        ``cpu``, ``cuda`` or ``auto``.

    Returns
    -------
    pandas.DataFrame
        One row per cutout, in input order, with the catalog's columns:
        ``object_id``, ``ra``/``dec`` (NaN), the model's outputs (GZ2 vote
        fractions or ``prob_<class>``), ``morphology``, ``p_merger``,
        ``is_merger``, ``error`` (None, or why that cutout could not be
        classified; its predictions are then null) and ``coverage``.

    Raises
    ------
    GalaxyRayError
        An unreadable checkpoint, an array of the wrong shape or type, a
        threshold outside [0, 1], or ids that do not match the cutouts.
    """
    import pyarrow as pa

    from galaxy_ray.data.transforms import preprocess_batch
    from galaxy_ray.infer.pipeline import CatalogModel
    from galaxy_ray.merger.rule import MergerRule

    if int(batch_size) < 1:
        raise GalaxyRayError(f"batch_size {batch_size}: must be at least 1")
    rows = _array_rows(images, ids) if isinstance(images, np.ndarray) else _file_rows(list(images), ids)
    model = CatalogModel(layout.checkpoint_file(str(checkpoint)), tta=tta, device=device)
    model.rule = MergerRule.from_checkpoint(model.spec, model.predictor.extra, merger_threshold, merger_precision)
    n, parts = len(rows[C.OBJECT_ID]), []
    for start in range(0, n, int(batch_size)):
        batch = {k: v[start:start + int(batch_size)] for k, v in rows.items()}
        batch.update(ra=np.full(len(batch[C.OBJECT_ID]), np.nan), dec=np.full(len(batch[C.OBJECT_ID]), np.nan))
        prepared = preprocess_batch(dict(batch), model.spec.preprocess, augment=False)
        parts.append(model({k: v for k, v in prepared.items() if k != C.SOURCE}))
    if not parts:
        raise GalaxyRayError("images: no cutouts given")
    return pa.concat_tables(parts).to_pandas()
