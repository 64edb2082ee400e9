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


#: What ``images`` may be, for the messages that refuse anything else.
_TAKES = ("predict takes uint8 cutouts of shape (N, H, W, 3) or (H, W, 3) (a NumPy array or torch tensor), "
          "an image file's path, or a list of either")


def _as_array(image):
    """A torch tensor as its NumPy array (on the CPU), anything else as it is."""
    if type(image).__module__.split(".")[0] == "torch" and hasattr(image, "detach"):
        return image.detach().cpu().numpy()
    return image


def _check_cutout(image: np.ndarray, where: str, dims: int) -> None:
    """Refuse anything but uint8 RGB: ``dims`` 4 for (N, H, W, 3), 3 for one (H, W, 3) cutout."""
    if image.ndim != dims or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise GalaxyRayError(f"{where}: an array of shape {image.shape} ({image.dtype}); {_TAKES}")


def _items(images) -> list:
    """``images`` as a list of cutouts, each a path (str or PathLike) or a (H, W, 3) uint8 array.

    A single path is one cutout, not a sequence of characters; an (N, H, W, 3)
    array or tensor is N cutouts; a single (H, W, 3) one is one cutout.
    """
    if isinstance(images, (str, os.PathLike)):
        return [images]
    images = _as_array(images)
    if isinstance(images, np.ndarray):
        _check_cutout(images, "images", 3 if images.ndim == 3 else 4)
        return [images] if images.ndim == 3 else list(images)
    if isinstance(images, (bytes, bytearray, dict)) or not hasattr(images, "__iter__"):
        raise GalaxyRayError(f"images: a value of type {type(images).__name__}; {_TAKES}")
    return [_as_array(item) for item in images]


def _cutout_rows(images, ids: Sequence[str] | None) -> dict[str, np.ndarray]:
    """Cutout-table rows, one per cutout in input order: a file's bytes (None where it cannot be read: decoding
    reports it), or an array as the ``.npy`` bytes the decoder reads.

    Default ids: a file's name, or an array's position in the input (``"0"`` ...), never its text.
    """
    items = _items(images)
    names, data, sources = [], np.empty(len(items), dtype=object), []
    for k, item in enumerate(items):
        if isinstance(item, (str, os.PathLike)):
            uri = os.fspath(item)
            names.append(os.path.basename(uri.rstrip("/")))
            sources.append(uri)
            try:
                data[k] = storage.read_bytes(uri)
            except (FileNotFoundError, OSError):
                data[k] = None
        elif isinstance(item, np.ndarray):
            _check_cutout(item, f"images[{k}]", 3)
            names.append(str(k))
            sources.append(f"images[{k}]")
            data[k] = _npy_bytes(item)
        else:
            raise GalaxyRayError(f"images[{k}]: a value of type {type(item).__name__}; {_TAKES}")
    if ids is not None:
        names = [str(i) for i in ids]
        if len(names) != len(items):
            raise GalaxyRayError(f"ids: {len(names)} ids for {len(items)} cutouts; give one id per cutout")
    return {C.OBJECT_ID: np.array(names, dtype=object), C.IMAGE: data, C.SOURCE: np.array(sources, dtype=object)}


def predict(checkpoint: str, images: np.ndarray | str | os.PathLike | Sequence, *,
            ids: Sequence[str] | None = None, tta: bool = False, merger_threshold: float | str = "auto",
            merger_precision: float | None = None, batch_size: int = 256, device: str = "cpu") -> pd.DataFrame:
    """Classify a few cutouts in this process (no Ray): image files, or cutouts already in memory.

    Each cutout is decoded, resized and cropped exactly as ``infer`` does
    (:func:`galaxy_ray.data.transforms.preprocess_batch`), so the rows equal
    those a catalog would hold for the same pixels.

    Parameters
    ----------
    checkpoint : str
        ``model.pt`` or its run directory, path or ``s3://``.
    images : numpy.ndarray, torch.Tensor, str, os.PathLike or a sequence of these
        uint8 cutouts of shape (N, H, W, 3), RGB in [0, 255], any side H = W
        (resized to the model's input size), as a NumPy array or a torch
        tensor, or one cutout of shape (H, W, 3); or a JPEG / PNG / FITS /
        ``.npy`` file, path or ``s3://`` (one path is one cutout); or a list
        of any of these, one cutout each.
    ids : sequence of str, optional
        ``object_id`` of each cutout (default: a file's name, or an array's
        position in the input, ``"0"`` ... ``"N-1"``).
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
        An unreadable checkpoint, an array of the wrong shape or type, an
        item that is neither a path nor an array, a threshold outside [0, 1],
        or ids that do not match the cutouts.
    """
    import pyarrow as pa

    from galaxy_ray.data.transforms import preprocess_batch
    from galaxy_ray.infer.pipeline import CatalogModel
    from galaxy_ray.merger.rule import MergerRule

    if int(batch_size) < 1:
        raise GalaxyRayError(f"batch_size {batch_size}: must be at least 1")
    rows = _cutout_rows(images, ids)
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
