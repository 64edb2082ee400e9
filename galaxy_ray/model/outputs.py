"""Reading model outputs: catalog column names, merger probability, morphology label, spread over views."""

from __future__ import annotations

import numpy as np

from galaxy_ray.merger.score import merger_index, merger_probability, merger_score
from galaxy_ray.model.spec import ModelSpec
from galaxy_ray.tasks.gz2 import MORPHOLOGY_ANSWER as GZ2_MORPHOLOGY_ANSWER

__all__ = ["GZ2_MORPHOLOGY_ANSWER", "output_columns", "merger_index", "merger_score", "merger_probability", "morphology",
           "morphology_probability", "view_spread"]


def output_columns(spec: ModelSpec) -> list[str]:
    """Catalog column names of the model's outputs, in output order (the task's :meth:`~galaxy_ray.tasks.Task.output_columns`)."""
    return spec.task_of.output_columns(spec)


def morphology(spec: ModelSpec, probs: np.ndarray) -> np.ndarray:
    """The label a person would quote, per row (object array of str).

    gz2: the decision-tree reading of :func:`galaxy_ray.schema.gz2_morphology`;
    votes: the same reading of the tree's fractions (:func:`galaxy_ray.trees.morphology.tree_morphology`);
    classes: the most probable class.
    """
    return spec.task_of.morphology(spec, np.atleast_2d(np.asarray(probs, dtype=np.float32)))


def morphology_probability(spec: ModelSpec, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The output behind each row's morphology label, float32 (N,).

    classes: the probability of the labelled class; gz2 and votes: the cumulative vote
    fraction of the answer the label names (:data:`GZ2_MORPHOLOGY_ANSWER`,
    e.g. ``Class1.1`` smooth for ``elliptical``).
    """
    return spec.task_of.morphology_probability(spec, np.atleast_2d(np.asarray(probs, dtype=np.float32)), labels)


def view_spread(spec: ModelSpec, views: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    """Standard deviation over the test-time views of ``p_merger`` and of the morphology's probability.

    Parameters
    ----------
    views : numpy.ndarray, shape (V, N, K)
        Probabilities of each view (:meth:`galaxy_ray.model.predict.Predictor.predict_views`).
    probs : numpy.ndarray, shape (N, K)
        The averaged probabilities that give the catalog's morphology label.

    Returns
    -------
    dict
        ``p_merger_std`` and ``morphology_prob_std``, float32 (N,) (population
        standard deviation over the V views; NaN without a merger output).

    Notes
    -----
    The spread says how much the answer depends on the galaxy's orientation
    and parity, which a well-trained model should not care about: a large
    spread flags a galaxy the model reads inconsistently (an edge case, an
    artefact, a merger whose tidal feature sits at the crop's edge).  It is
    not a posterior uncertainty: it ignores the uncertainty of the weights and
    of the labels, and a confidently wrong model can have zero spread.
    """
    views = np.asarray(views, dtype=np.float32)
    labels = morphology(spec, probs)
    merger = np.stack([merger_probability(spec, v) for v in views])
    morph = np.stack([morphology_probability(spec, v, labels) for v in views])
    return {"p_merger_std": merger.std(axis=0).astype(np.float32),
            "morphology_prob_std": morph.std(axis=0).astype(np.float32)}
