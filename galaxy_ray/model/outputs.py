"""Reading model outputs: catalog column names, merger probability, morphology label."""

from __future__ import annotations

import numpy as np

from galaxy_ray import schema
from galaxy_ray.model.spec import ModelSpec

__all__ = ["output_columns", "merger_index", "merger_probability", "morphology"]


def output_columns(spec: ModelSpec) -> list[str]:
    """Catalog column names of the model's outputs, in output order."""
    if spec.task == "gz2":
        return list(schema.GZ2_ANSWER_COLUMNS)
    return [schema.class_column(name) for name in spec.output_names]


def merger_index(spec: ModelSpec) -> int | None:
    """Index of the merger output, or None when the model has none."""
    return None if spec.merger is None else spec.output_names.index(spec.merger)


def merger_probability(spec: ModelSpec, probs: np.ndarray) -> np.ndarray:
    """Merger probability per row.

    Parameters
    ----------
    probs : numpy.ndarray, shape (N, K)
        Model probabilities.

    Returns
    -------
    numpy.ndarray
        float32 (N,); NaN when the model has no merger output.
    """
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float32))
    index = merger_index(spec)
    if index is None:
        return np.full(len(probs), np.nan, dtype=np.float32)
    return probs[:, index].astype(np.float32)


def morphology(spec: ModelSpec, probs: np.ndarray) -> np.ndarray:
    """The label a person would quote, per row (object array of str).

    gz2: the decision-tree reading of :func:`galaxy_ray.schema.gz2_morphology`;
    classes: the most probable class.
    """
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float32))
    if spec.task == "gz2":
        return schema.gz2_morphology(probs)
    names = np.asarray(spec.output_names, dtype=object)
    return names[np.argmax(probs, axis=1)]
