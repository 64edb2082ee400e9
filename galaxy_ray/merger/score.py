"""The merger score of a model's outputs, and ``p_merger``: the merger output through the spec's calibration.

Here, not in :mod:`galaxy_ray.model`, so that the merger package (truth, calibration,
operating point) reads the score without importing the model package, which imports
the calibration maps from here: the dependency runs one way, model -> merger.
The ``spec`` arguments are :class:`galaxy_ray.model.spec.ModelSpec` objects.
"""

from __future__ import annotations

import numpy as np

from galaxy_ray.merger.calibration import merger_calibration

__all__ = ["merger_index", "merger_probability", "merger_score"]


def merger_index(spec) -> int | None:
    """Index of the merger output, or None when the model has none."""
    return None if spec.merger is None else spec.output_names.index(spec.merger)


def merger_probability(spec, probs: np.ndarray) -> np.ndarray:
    """Merger probability per row: the merger output through the spec's calibration.

    With a fitted calibration (``spec.calibration["merger"]``, chosen by log loss, from
    training's validation split) this is the probability that the galaxy is a
    merger by the run's truth definition; without one it is the raw output
    (GZ2: the Class8.6 vote fraction, odd x merger).

    Parameters
    ----------
    probs : numpy.ndarray, shape (N, K)
        Model probabilities (after the class-probability calibration, as
        :class:`galaxy_ray.model.predict.Predictor` returns them).

    Returns
    -------
    numpy.ndarray
        float32 (N,); NaN when the model has no merger output.
    """
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float32))
    index = merger_index(spec)
    if index is None:
        return np.full(len(probs), np.nan, dtype=np.float32)
    calibration = merger_calibration(spec.calibration)
    score = merger_score(spec, probs)
    return (calibration(score) if calibration is not None else score).astype(np.float32)


def merger_score(spec, probs: np.ndarray) -> np.ndarray:
    """The uncalibrated merger output per row, float64 (N,): what the merger truth and its calibration read.

    gz2 and classes: the merger output itself.  votes: the merger answer's *cumulative* vote
    fraction (its expected conditional fraction times its question's proportion asked), the
    fraction of all volunteers who would answer merger, as GZ2's Class8.6 is; on the DECaLS
    trees, whose merging question is asked of every galaxy, it equals the conditional fraction.

    Raises
    ------
    ValueError
        The model has no merger output.
    """
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    index = merger_index(spec)
    if index is None:
        raise ValueError("the model has no merger output")
    return spec.task_of.merger_score(spec, probs, index)
