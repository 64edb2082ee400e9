"""``galaxy-ray predict``: classify a few image files in this process, without Ray."""

from __future__ import annotations

import argparse
import json
import os
from typing import Sequence

import numpy as np

from galaxy_ray.data.sources import fits, image_folder
from galaxy_ray.data.sources.listing import list_source
from galaxy_ray.data.transforms import preprocess_batch
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.infer.pipeline import CatalogModel
from galaxy_ray.io import layout, storage
from galaxy_ray.merger.operating import parse_threshold
from galaxy_ray.merger.rule import MergerRule
from galaxy_ray.model import Predictor
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["predict_files", "predict_main"]


#: Files ``predict`` takes from a folder: the image folder's kinds, FITS and ``.npy`` arrays.
_FOLDER_SUFFIXES = (*image_folder.SUFFIXES, *fits.SUFFIXES, ".npy")


def object_id_of(uri: str) -> str:
    """A file's catalog id: its name without the image suffix (``a/NGC1300.fits.gz`` -> ``NGC1300``)."""
    base = os.path.basename(uri.rstrip("/"))
    low = base.lower()
    for suffix in sorted(_FOLDER_SUFFIXES, key=len, reverse=True):
        if low.endswith(suffix):
            return base[: -len(suffix)]
    return base


def expand_images(images: Sequence[str]) -> list[str]:
    """``images`` with each folder replaced by its image files (JPEG, PNG, TIFF, FITS, ``.npy``), sorted.

    Raises
    ------
    GalaxyRayError
        A folder holds no such file.
    """
    out: list[str] = []
    for uri in images:
        if not storage.isdir(uri):
            out.append(uri)
            continue
        found = sorted(f for f in list_source(uri).files if f.lower().endswith(_FOLDER_SUFFIXES))
        if not found:
            raise GalaxyRayError(f"{uri}: no image files (JPEG, PNG, TIFF, FITS or .npy) in this folder")
        out.extend(found)
    return out


def _read_images(images: Sequence[str]) -> np.ndarray:
    """The encoded bytes of each file (None where it cannot be read: decoding reports it per image)."""
    data = np.empty(len(images), dtype=object)
    for i, uri in enumerate(images):
        try:
            data[i] = storage.read_bytes(uri)
        except (FileNotFoundError, OSError):
            data[i] = None
    return data


def predict_files(checkpoint: str, images: Sequence[str], *, tta: bool = False,
                  merger_threshold: float | str = "auto", merger_precision: float | None = None,
                  top: int = 3) -> list[dict]:
    """Classify a few image files in this process (no Ray), on the CPU.

    Parameters
    ----------
    checkpoint : str
        The checkpoint file (``model.pt``), path or ``s3://``.
    images : sequence of str
        JPEG / PNG / TIFF / FITS / ``.npy`` cutouts, paths or ``s3://``, or folders of them.
    tta : bool
        Average over the 8 rotations and flips.
    merger_threshold : "auto" or float
        ``auto``: the checkpoint's stored merger rule, as ``infer`` and
        ``evaluate`` use it; a number overrides it the same way in all three.
    merger_precision : float, optional
        With ``auto``: the lowest stored threshold reaching this validation precision.
    top : int
        How many of the largest outputs to return per image.

    Raises
    ------
    GalaxyRayError
        An unreadable checkpoint, or a threshold outside [0, 1].

    Returns
    -------
    list of dict
        Per image: ``object_id`` (the file name without its suffix, as a catalog
        from a manifest or an image folder names it), ``image``, ``morphology``,
        ``p_merger``, ``is_merger``, ``top`` (list of (column, value), largest
        first) and ``row`` (every catalog column), or ``error``.
    """
    images = expand_images(images)
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", tta=tta)
    rule = MergerRule.from_checkpoint(predictor.spec, predictor.extra, merger_threshold, merger_precision)
    model = CatalogModel(checkpoint, rule=rule, tta=tta, device="cpu")
    batch = {
        C.OBJECT_ID: np.array([object_id_of(u) for u in images], dtype=object),
        C.IMAGE: _read_images(images),
        C.SOURCE: np.array(list(images), dtype=object),
        C.RA: np.full(len(images), np.nan),
        C.DEC: np.full(len(images), np.nan),
    }
    prepared = preprocess_batch(dict(batch), model.spec.preprocess, augment=False)
    batch.update(pixels=prepared["pixels"], error=prepared[C.ERROR])
    results = []
    for uri, row in zip(images, model(batch).to_pylist()):
        if row[C.ERROR] is not None:
            results.append({"object_id": row[C.OBJECT_ID], "image": uri, "error": row[C.ERROR], "row": row})
            continue
        values = sorted(((c, row[c]) for c in model.columns), key=lambda cv: -cv[1])
        results.append({
            "object_id": row[C.OBJECT_ID], "image": uri, "morphology": row[C.MORPHOLOGY],
            "p_merger": row[C.P_MERGER], "is_merger": row[C.IS_MERGER], "top": values[:top], "row": row,
        })
    return results


def _print_result(r: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps({k: v for k, v in r.items() if k != "row"}))
    elif "error" in r:
        reason = r["error"].removeprefix(f"{r['image']}: ")  # decode errors already name the file
        print(f"{r['image']}: error: {reason}")  # the file to fix, as given (a result line has the catalog's id)
    else:
        top = ", ".join(f"{c} {v:.3f}" for c, v in r["top"])
        print(f"{r['object_id']}: {r['morphology']}  p_merger {r['p_merger']:.3f}"
              f"{' (merger)' if r['is_merger'] else ''}  top: {top}")


def predict_main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray predict CHECKPOINT IMAGE...``; exit status 1 when any image failed."""
    p = argparse.ArgumentParser(prog="galaxy-ray predict",
                                description="Classify a few image files with a checkpoint, no cluster.")
    p.add_argument("checkpoint", help="model checkpoint (model.pt) or its run directory, path or s3://")
    p.add_argument("images", nargs="+", help="JPEG / PNG / TIFF / FITS / .npy cutouts, or folders of them")
    p.add_argument("--top", type=int, default=3, help="how many probabilities or vote fractions to show")
    p.add_argument("--tta", action="store_true", help="average over the 8 rotations and flips")
    p.add_argument("--merger-threshold", type=parse_threshold, default="auto",
                   help="is_merger = p_merger >= this; 'auto' (default): the threshold stored in the checkpoint, "
                        "as infer and evaluate use it")
    p.add_argument("--merger-precision", type=float, default=None,
                   help="with --merger-threshold auto: the lowest stored threshold reaching this validation precision")
    p.add_argument("--json", action="store_true", help="one JSON object per image instead of text")
    p.add_argument("--out", metavar="FILE",
                   help="also write one catalog row per image (object_id as the catalog names it, every output "
                        "column, error) to a .csv, .parquet, .fits or .vot file")
    args = p.parse_args(argv)
    results = predict_files(layout.checkpoint_file(args.checkpoint), args.images, tta=args.tta,
                            merger_threshold=args.merger_threshold,
                            merger_precision=args.merger_precision, top=args.top)
    for r in results:
        _print_result(r, args.json)
    if args.out:
        import pyarrow as pa

        from galaxy_ray.catalog.output import write_table

        rows = [{k: v for k, v in r["row"].items() if k not in ("pixels", C.IMAGE)} for r in results]
        fmt = write_table(pa.Table.from_pylist(rows), args.out)
        print(f"wrote {len(rows)} rows to {args.out} ({fmt})")
    return 1 if any("error" in r for r in results) else 0
