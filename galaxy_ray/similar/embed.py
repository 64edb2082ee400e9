"""Embeddings at inference: the model's pooled features, projected by one PCA, as a float16 column.

The representation is the input of the model's head: the backbone's
globally average-pooled features (512 numbers for a ResNet-18, 2048 for a
ResNet-50), the layer the head reads to predict every vote fraction or
class.  :class:`FeatureTap` records it from the same forward pass that makes
the predictions (a forward pre-hook on ``head``), so embeddings cost no
second pass; with TTA the 8 views' features are averaged, which makes the
embedding (nearly) invariant to rotations and flips.

The PCA is fitted **once, on the driver, before the streaming run**, on the
pooled features of an evenly spaced sample of the input (default 512
cutouts; :func:`plan_embedding`).  Every model actor receives the same
projection, so all rows of a catalog live in one space, and the projection
is stored in the provenance (``embedding``: mean, components, explained
variance) where ``similar --like-image`` finds it.  Fitting on the input
rather than at training time works with any checkpoint galaxy-ray loads (old
ones, Zoobot encoders fine-tuned elsewhere) without touching training, and
fits the directions of variance of the survey being catalogued.  A rerun
that resumes a catalog reuses the projection its files already hold.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pyarrow as pa

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.similar.pca import fit_pca, pca_from_dict, pca_to_dict, project

__all__ = ["EMBEDDING_COLUMN", "DEFAULT_DIMS", "DEFAULT_SAMPLE", "FeatureTap", "Embedder", "embedding_array",
           "embed_pixels", "sample_pixels", "plan_embedding"]

#: The catalog column: a fixed-size list of float16, one vector per galaxy (null for error rows).
EMBEDDING_COLUMN = "embedding"
#: PCA dimensions kept by default: 16 float16 = 32 bytes per galaxy (3.2 GB per 100 million rows).
DEFAULT_DIMS = 16
#: Cutouts whose features fit the PCA, evenly spaced over the input.
DEFAULT_SAMPLE = 512


class FeatureTap:
    """Records the input of ``model.head`` (the pooled features) on every forward pass.

    Parameters
    ----------
    model : galaxy_ray.model.nets.GalaxyNet
    """

    def __init__(self, model) -> None:
        self.captured: list[np.ndarray] = []
        self.handle = model.head.register_forward_pre_hook(self._hook)

    def _hook(self, module, args) -> None:
        self.captured.append(args[0].detach().float().cpu().numpy())

    def clear(self) -> None:
        """Forget what was recorded."""
        self.captured = []

    def take(self) -> np.ndarray | None:
        """The mean over the recorded passes (the TTA views), float32 (N, F); None when none ran; clears."""
        views, self.captured = self.captured, []
        return np.mean(np.stack(views), axis=0).astype(np.float32) if views else None


def embedding_array(values: np.ndarray, null: np.ndarray | None = None) -> pa.FixedSizeListArray:
    """(N, D) values as a fixed-size list<float16>[D] array, null where ``null`` is True."""
    values = np.asarray(values, dtype=np.float16)
    flat = pa.array(values.reshape(-1), type=pa.float16())
    mask = None if null is None else pa.array(np.asarray(null, dtype=bool))
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1], mask=mask)


class Embedder:
    """The model actor's part: the ``embedding`` column of each batch's rows.

    Parameters
    ----------
    predictor : galaxy_ray.model.Predictor
        The actor's predictor; its network gets a :class:`FeatureTap`.
    stored : dict
        The provenance's ``embedding`` entry (:func:`plan_embedding`).
    """

    def __init__(self, predictor, stored: dict) -> None:
        self.pca = pca_from_dict(stored)
        self.dims = int(stored["dims"])
        self.tap = FeatureTap(predictor.model)

    def add_column(self, table: pa.Table, ok: np.ndarray) -> pa.Table:
        """``table`` with the ``embedding`` column: the projected features of the ``ok`` rows, null elsewhere.

        Raises
        ------
        RuntimeError
            The recorded features do not match the batch's classified rows (a bug, not a data problem).
        """
        features = self.tap.take()
        values = np.zeros((len(ok), self.dims), dtype=np.float16)
        if ok.any():
            if features is None or len(features) != int(ok.sum()):
                raise RuntimeError(f"embedding: recorded {0 if features is None else len(features)} feature rows "
                                   f"for {int(ok.sum())} classified rows")
            values[ok] = project(features, self.pca).astype(np.float16)
        return table.append_column(EMBEDDING_COLUMN, embedding_array(values, ~np.asarray(ok, dtype=bool)))


def embed_pixels(predictor, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Pooled features (N, F) float32 of model-input pixels (N, 3, S, S), through ``predictor`` (TTA as it has)."""
    tap = FeatureTap(predictor.model)
    try:
        out = []
        for start in range(0, len(pixels), batch_size):
            predictor.predict_views(pixels[start:start + batch_size])
            out.append(tap.take())
        return np.concatenate(out) if out else np.zeros((0, predictor.model.head.in_features), np.float32)
    finally:
        tap.handle.remove()


def _sample_rows(plan, n: int) -> pa.Table:
    """About ``n`` cutout rows (``object_id``, ``image``) evenly spaced over the input of ``plan``."""
    from galaxy_ray.schema import CatalogColumns as C

    if plan.kind == "shards":
        from galaxy_ray.data.sources.shards import read_shard

        shards = [s for u in plan.units for s in u.shards]
        chosen = [shards[i] for i in np.unique(np.linspace(0, len(shards) - 1, min(8, len(shards))).astype(int))]
        per = max(1, -(-n // len(chosen)))
        parts = []
        for uri in chosen:
            table = read_shard(uri, [C.OBJECT_ID, C.IMAGE])
            parts.append(table.take(np.unique(np.linspace(0, table.num_rows - 1, per).astype(int)))
                         if table.num_rows else table)
        return pa.concat_tables(parts)
    idx = np.unique(np.linspace(0, len(plan.metadata) - 1, n).astype(int))
    return plan.source.read_rows(plan.metadata.iloc[idx].reset_index(drop=True))


def sample_pixels(plan, preprocess, n: int) -> np.ndarray:
    """Model-input pixels (M, 3, S, S) uint8 of up to ``n`` decodable cutouts spread over the input."""
    from galaxy_ray.data.transforms import ok_rows, preprocess_batch
    from galaxy_ray.schema import CatalogColumns as C

    table = _sample_rows(plan, n)
    batch = {C.OBJECT_ID: np.asarray(table[C.OBJECT_ID].to_pylist(), dtype=object),
             C.IMAGE: np.asarray(table[C.IMAGE].to_pylist(), dtype=object)}
    if C.ERROR in table.column_names:
        batch[C.ERROR] = np.asarray(table[C.ERROR].to_pylist(), dtype=object)
    prepared = preprocess_batch(batch, preprocess, augment=False)
    return prepared["pixels"][ok_rows(prepared[C.ERROR])]


def _stored_embedding(out: str) -> tuple[bool, dict | None, dict]:
    """(whether ``out`` holds catalog files, the ``embedding`` entry of the first one's provenance, that provenance)."""
    from galaxy_ray.catalog.write import catalog_files, file_provenance
    from galaxy_ray.io import storage

    files = catalog_files(out) if storage.exists(out) else []
    if not files:
        return False, None, {}
    try:
        prov = file_provenance(files[0]) or {}
    except Exception:  # noqa: BLE001 - not a catalog file of ours (damaged, foreign): the run key's check names it
        return True, None, {}
    return True, prov.get("embedding"), prov


def plan_embedding(checkpoint: str, plan, spec, out: str, provenance: dict, *, dims: int | None,
                   sample: int = DEFAULT_SAMPLE, tta: bool = False, overwrite: bool = False,
                   log: Callable[[str], None] = print) -> dict | None:
    """The provenance's ``embedding`` entry of an inference run (None without ``dims``).

    Reuses the projection of the catalog files ``out`` already holds when the
    same checkpoint and TTA made them (a resumed run), else fits one on the pooled features of ``sample`` cutouts
    evenly spaced over the input, computed on this process's CPU.

    Raises
    ------
    GalaxyRayError
        ``dims`` below 1; ``out`` holds files written with other embedding
        options (without ``overwrite``; with it, they are removed); no sampled
        cutout could be decoded.
    """
    if dims is not None and dims < 1:
        raise GalaxyRayError(f"--embeddings {dims}: give a number of dimensions >= 1 (e.g. {DEFAULT_DIMS})")
    has_files, stored, made_by = _stored_embedding(out)
    if has_files and (stored or {}).get("dims") != dims:
        have = f"{stored['dims']}-dimensional embeddings" if stored else "no embeddings"
        if not overwrite:
            raise GalaxyRayError(
                f"{out}: holds catalog files with {have}; rerun with the same --embeddings option, write to a new "
                "--out, or pass --overwrite to replace them")
        from galaxy_ray.infer.run_key import owned_files, remove_catalog
        from galaxy_ray.io import resume

        ours = owned_files(out, None, set(resume.scan_output(out).published))  # only files infer wrote
        remove_catalog(out, ours)
        log(f"removed {len(ours)} catalog file(s) with {have} (--overwrite)")
        stored = None
    if dims is None:
        return None
    same_model = all(made_by.get(k) == provenance.get(k) for k in ("checkpoint_sha256", "tta", "preprocess"))
    if stored is not None and same_model:
        log(f"embeddings: reusing the {dims}-dimensional projection stored in {out}")
        return stored
    from galaxy_ray.model import Predictor

    pixels = sample_pixels(plan, spec.preprocess, sample)
    if len(pixels) < 2:
        raise GalaxyRayError(f"--embeddings: fewer than 2 of the {sample} sampled cutouts could be decoded; "
                             "check the source")
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", tta=tta)
    features = embed_pixels(predictor, pixels)
    pca = fit_pca(features, dims)
    kept = float(np.sum(pca["explained_variance_ratio"]))
    log(f"embeddings: PCA of {features.shape[1]} pooled features to {dims} float16 dimensions "
        f"({2 * dims} bytes per galaxy), fitted on {len(pixels)} cutouts; keeps {kept:.1%} of their variance")
    return {"column": EMBEDDING_COLUMN, "dims": int(dims), "dtype": "float16", "bytes_per_galaxy": 2 * int(dims),
            "features": "pooled backbone features (the input of the model's head)"
                        + (", mean of 8 views" if tta else ""),
            "feature_dim": int(features.shape[1]), "fit_rows": int(len(pixels)),
            "fit_sample": "cutouts evenly spaced over the input", **pca_to_dict(pca)}
