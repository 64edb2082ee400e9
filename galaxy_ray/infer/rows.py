"""The model stage's output: one batch's catalog rows, as an Arrow table.

:func:`catalog_rows` runs in the model actors for every batch, after the
forward pass; the driver's :class:`galaxy_ray.infer.writer.UnitWriter` only
gathers the rows per unit and publishes them.  The rows leave out
``_healpix_29``: :func:`galaxy_ray.catalog.write.write_catalog_file` computes
it on the driver for each published file (cdshealpix, microseconds per
thousand rows).  That keeps the catalog package (astropy, cdshealpix, DuckDB,
mocpy; about half a second of imports) out of every model actor's start-up.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from galaxy_ray import model as model_mod
from galaxy_ray.infer.plan import UNIT_COLUMN
from galaxy_ray.infer.prepare import as_float
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["catalog_rows"]


def catalog_rows(spec, columns: Sequence[str], batch: dict, probs: np.ndarray, ok: np.ndarray,
                 rule, spread: dict | None = None, concentrations: np.ndarray | None = None) -> pa.Table:
    """Catalog rows (plus the unit tag when present) as an Arrow table, without ``_healpix_29``.

    ``write_catalog_file`` adds ``_healpix_29`` from ``ra``/``dec`` when it
    publishes the rows, and orders the columns as the catalog schema does.

    Parameters
    ----------
    spec : galaxy_ray.model.ModelSpec
        What the model predicts (for the morphology and merger columns).
    columns : sequence of str
        Catalog names of the model's K outputs.  A GZ2 model's (cumulative
        fractions) are followed by the conditional ``{question}_{answer}_fraction``
        and ``{question}_proportion_asked`` columns
        (the task's :meth:`~galaxy_ray.tasks.Task.tree_columns`).
    batch : dict of numpy arrays
        ``object_id``, ``ra``, ``dec`` (degrees, NaN or None when unknown),
        ``error`` (read only where ``ok`` is False), optionally ``coverage`` (the
        fraction of each cutout holding data) and the unit tag.
    probs : numpy.ndarray
        (N, K) float32 model outputs; ignored where ``ok`` is False.
    ok : numpy.ndarray
        (N,) bool, False for rows that could not be classified: they keep their
        ``object_id``, position and ``error`` with null predictions.
    rule : galaxy_ray.merger.rule.MergerRule
        Sets ``is_merger`` from ``p_merger`` (:meth:`MergerRule.flag`).
    spread : dict, optional
        With TTA: ``p_merger_std`` and ``morphology_prob_std``, float32 (N,)
        (:func:`galaxy_ray.model.view_spread`), written as catalog columns.
    concentrations : numpy.ndarray, optional
        votes models: (N, K) Dirichlet concentrations behind ``probs``, for the 90% interval columns.
    """
    null = ~ok
    ra, dec = as_float(batch[C.RA]), as_float(batch[C.DEC])
    p_merger = np.asarray(model_mod.merger_probability(spec, probs), dtype=np.float32)
    morph = np.asarray(model_mod.morphology(spec, probs), dtype=object)
    arrays: dict[str, pa.Array] = {
        C.OBJECT_ID: pa.array(np.asarray(batch[C.OBJECT_ID], dtype=object), type=pa.string()),
        C.RA: pa.array(ra, type=pa.float64(), from_pandas=True),
        C.DEC: pa.array(dec, type=pa.float64(), from_pandas=True),
    }
    for j, name in enumerate(columns):
        arrays[name] = pa.array(probs[:, j], type=pa.float32(), mask=null)
    # the conditional fractions, proportions asked and intervals, as Galaxy Zoo publishes them
    for name, values in spec.task_of.tree_columns(spec, probs, concentrations).items():
        arrays[name] = pa.array(values, type=pa.float32(), mask=null)
    arrays[C.MORPHOLOGY] = pa.array(morph, type=pa.string(), mask=null)
    arrays[C.P_MERGER] = pa.array(p_merger, type=pa.float32(), mask=null)
    arrays[C.IS_MERGER] = pa.array(rule.flag(p_merger), type=pa.bool_(), mask=null)
    for name in (C.P_MERGER_STD, C.MORPHOLOGY_PROB_STD) if spread is not None else ():
        arrays[name] = pa.array(np.asarray(spread[name], dtype=np.float32), type=pa.float32(), mask=null)
    arrays[C.ERROR] = pa.array([None if good else str(e) for e, good in zip(batch[C.ERROR], ok)], type=pa.string())
    if C.COVERAGE in batch:  # NaN where a cutout could not be read at all: unknown, so null
        arrays[C.COVERAGE] = pa.array(np.asarray(batch[C.COVERAGE], dtype=np.float32), type=pa.float32(),
                                      from_pandas=True)
    if UNIT_COLUMN in batch:
        arrays[UNIT_COLUMN] = pa.array(np.asarray(batch[UNIT_COLUMN], dtype=np.int32), type=pa.int32())
    return pa.table(arrays)
