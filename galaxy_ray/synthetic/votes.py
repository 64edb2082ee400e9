"""Simulated Galaxy Zoo 2 votes: volunteers walking the decision tree with class-dependent answers.

Each galaxy's 37 cumulative vote fractions come from 30 to 55 volunteers,
each answering with the class's probabilities perturbed per galaxy, so the
fractions obey the GZ2 tree exactly and are noisy the way volunteer votes
are.  :func:`expected_votes` gives the probabilities themselves: the RMSE of
those against the votes is the floor any model can reach.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from galaxy_ray import schema
from galaxy_ray.synthetic.recipes import (
    BARRED, CIGAR, DISTURBED, EDGE_ON, EDGE_ON_BULGE, IN_BETWEEN, LOOSE, MERGING, ROUND, TIGHT, draw_galaxy,
)
from galaxy_ray.synthetic.sky import DEFAULT_FOOTPRINT

# Per class, the probability of each answer among the volunteers who reach a question
# (Kaggle answer order).  Answers not listed for a class take _DEFAULT_PROBS.
_DEFAULT_PROBS: dict[str, tuple[float, ...]] = {
    "smooth_or_features": (0.6, 0.37, 0.03),
    "edgeon": (0.12, 0.88),
    "bar": (0.15, 0.85),
    "spiral": (0.25, 0.75),
    "bulge_prominence": (0.15, 0.4, 0.35, 0.1),
    "odd": (0.15, 0.85),
    "rounded": (0.3, 0.55, 0.15),
    "odd_feature": (0.18, 0.12, 0.15, 0.12, 0.3, 0.05, 0.08),
    "bulge_shape": (0.3, 0.15, 0.55),
    "arms_winding": (0.33, 0.34, 0.33),
    "arms_number": (0.1, 0.3, 0.1, 0.05, 0.05, 0.4),
}
_SPIRAL_PROBS = {
    "smooth_or_features": (0.17, 0.82, 0.01),
    "edgeon": (0.05, 0.95),
    "bar": (0.1, 0.9),
    "spiral": (0.88, 0.12),
    "odd_feature": (0.35, 0.1, 0.15, 0.12, 0.2, 0.03, 0.05),
}
_EDGE_PROBS = {
    "smooth_or_features": (0.28, 0.7, 0.02),
    "edgeon": (0.9, 0.1),
    "spiral": (0.3, 0.7),
    "rounded": (0.03, 0.32, 0.65),
    "odd_feature": (0.08, 0.1, 0.12, 0.1, 0.25, 0.05, 0.3),
}
_CLASS_PROBS: dict[int, dict[str, tuple[float, ...]]] = {
    DISTURBED: {"smooth_or_features": (0.42, 0.53, 0.05), "spiral": (0.35, 0.65), "odd": (0.72, 0.28),
                "bulge_prominence": (0.4, 0.4, 0.15, 0.05),
                "odd_feature": (0.04, 0.04, 0.42, 0.3, 0.12, 0.06, 0.02)},
    MERGING: {"smooth_or_features": (0.5, 0.45, 0.05), "spiral": (0.3, 0.7), "odd": (0.85, 0.15),
              "odd_feature": (0.02, 0.02, 0.17, 0.08, 0.05, 0.63, 0.03)},
    ROUND: {"smooth_or_features": (0.86, 0.12, 0.02), "rounded": (0.8, 0.18, 0.02), "odd": (0.1, 0.9),
            "bulge_prominence": (0.05, 0.25, 0.45, 0.25)},
    IN_BETWEEN: {"smooth_or_features": (0.8, 0.18, 0.02), "rounded": (0.18, 0.74, 0.08), "odd": (0.12, 0.88),
                 "bulge_prominence": (0.05, 0.25, 0.45, 0.25)},
    CIGAR: {"smooth_or_features": (0.65, 0.32, 0.03), "edgeon": (0.6, 0.4), "rounded": (0.03, 0.25, 0.72),
            "odd": (0.14, 0.86)},
    BARRED: dict(_SPIRAL_PROBS, bar=(0.78, 0.22), bulge_prominence=(0.08, 0.45, 0.42, 0.05)),
    TIGHT: dict(_SPIRAL_PROBS, bulge_prominence=(0.05, 0.35, 0.5, 0.1)),
    LOOSE: dict(_SPIRAL_PROBS, bulge_prominence=(0.3, 0.5, 0.18, 0.02)),
    EDGE_ON: dict(_EDGE_PROBS, bulge_shape=(0.1, 0.08, 0.82)),
    EDGE_ON_BULGE: dict(_EDGE_PROBS, bulge_shape=(0.72, 0.18, 0.1)),
}


def answer_probabilities(galaxy10: int, info: dict[str, Any]) -> dict[str, np.ndarray]:
    """Class-dependent answer probabilities, refined by what was actually drawn.

    Parameters
    ----------
    galaxy10 : int
        Galaxy10 class code.
    info : dict
        The recipe's ``info``: arm count and pitch make the arm questions follow
        the rendered arms; a dust lane makes "odd: dust lane" likely.

    Returns
    -------
    dict of str to numpy.ndarray
        Per GZ2 question key, the probabilities of its answers (Kaggle order), summing to 1.
    """
    probs = {k: np.asarray(v, dtype=float) for k, v in _DEFAULT_PROBS.items()}
    probs.update({k: np.asarray(v, dtype=float) for k, v in _CLASS_PROBS[galaxy10].items()})
    if "pitch_deg" in info:  # arm winding and number follow the rendered arms
        pitch = info["pitch_deg"]
        tight = np.clip((20.0 - pitch) / 12.0, 0.0, 1.0)
        probs["arms_winding"] = np.array([0.05 + 0.7 * tight, 0.3, 0.05 + 0.7 * (1 - tight)])
        number = np.full(6, 0.03)
        number[info["arms"] - 1] = 0.7
        number[5] = 0.15
        probs["arms_number"] = number
    if info.get("dust"):
        probs["odd"] = np.array([0.3, 0.7])
        probs["odd_feature"] = np.array([0.03, 0.05, 0.07, 0.05, 0.1, 0.02, 0.68])
    return {k: v / v.sum() for k, v in probs.items()}


def simulate_votes(rng: np.random.Generator, galaxy10: int, info: dict[str, Any]) -> np.ndarray:
    """30 to 55 simulated volunteers walk the GZ2 decision tree.

    Each question's answer probabilities are first scattered per galaxy (a
    Dirichlet around :func:`answer_probabilities`), then the volunteers who
    reach the question vote multinomially, so the fractions obey the tree.

    Returns
    -------
    numpy.ndarray
        float64 (37,): conditional vote fractions in Kaggle order (0 where nobody reached a question).
    """
    probs = answer_probabilities(galaxy10, info)
    n_volunteers = int(rng.integers(30, 56))
    counts = np.zeros(len(schema.GZ2_ANSWERS), dtype=np.int64)
    conditional = np.zeros(len(schema.GZ2_ANSWERS))
    for question in schema.GZ2_QUESTIONS:  # parents come before their children
        reached = n_volunteers if question.parent is None else int(counts[question.parent])
        # galaxy-to-galaxy scatter around the class's answer probabilities, then the volunteers' own
        p = rng.dirichlet(probs[question.key] * 25.0 + 0.05)
        votes = rng.multinomial(reached, p)
        counts[question.indices] = votes
        if reached:
            conditional[question.indices] = votes / reached
    return conditional


def debiased(conditional: np.ndarray, redshift: np.ndarray) -> np.ndarray:
    """Hart et al. (2016)-style debiased fractions: features recovered with redshift.

    Not Hart et al.'s correction itself: "features", "spiral", "bar" and
    "edge-on yes" are boosted by ``1 + 3 z`` and each question renormalised,
    which is enough for the ``..._debiased`` columns to differ from the raw
    fractions and still obey the tree.

    Parameters
    ----------
    conditional : numpy.ndarray
        (37,) or (N, 37) conditional fractions.
    redshift : numpy.ndarray
        Scalar or (N,) redshifts.

    Returns
    -------
    numpy.ndarray
        (N, 37) conditional fractions; a question nobody reached stays 0.
    """
    conditional = np.atleast_2d(conditional)
    boost = np.ones_like(conditional)
    for column in ("smooth_or_features_features_or_disk", "spiral_spiral", "bar_bar", "edgeon_yes"):
        boost[:, schema.GZ2_ANSWER_COLUMNS.index(column)] = 1.0 + 3.0 * np.asarray(redshift, dtype=float)
    out = np.zeros_like(conditional)
    for question in schema.GZ2_QUESTIONS:
        values = conditional[:, question.indices] * boost[:, question.indices]
        total = values.sum(axis=-1, keepdims=True)
        out[:, question.indices] = np.divide(values, total, out=np.zeros_like(values), where=total > 0)
    return out


def expected_votes(seed: int, index: int, footprint: Sequence[float] = DEFAULT_FOOTPRINT) -> np.ndarray:
    """The answer probabilities galaxy ``index`` was voted from, as 37 cumulative fractions.

    Its ``votes`` scatter around these (galaxy-to-galaxy and volunteer noise that
    the pixels do not show), so the RMSE of these against ``votes`` is the floor
    any model can reach on a synthetic survey.

    Parameters
    ----------
    seed, index : int
        The galaxy.
    footprint : sequence of 4 floats
        ``(ra_min, ra_max, dec_min, dec_max)`` in degrees (the same as when rendering).

    Returns
    -------
    numpy.ndarray
        float64 (37,): cumulative fractions in Kaggle order.
    """
    draw = draw_galaxy(seed, index, footprint)
    probs = answer_probabilities(draw.galaxy10, draw.recipe.info)
    conditional = np.zeros(len(schema.GZ2_ANSWERS))
    for question in schema.GZ2_QUESTIONS:
        conditional[question.indices] = probs[question.key]
    return schema.conditional_to_cumulative(conditional)
