"""Simulated Galaxy Zoo votes: volunteers walking a decision tree with class-dependent answers.

Each galaxy's 37 cumulative GZ2 vote fractions come from 30 to 55 volunteers,
each answering with the class's probabilities perturbed per galaxy, so the
fractions obey the GZ2 tree exactly and are noisy the way volunteer votes
are.  :func:`expected_votes` gives the probabilities themselves: the RMSE of
those against the votes is the floor any model can reach.

GZ DECaLS-style vote-count tables (:func:`decals_vote_table`) follow the same
galaxies down the DECaLS / DESI tree with a number of volunteers that varies
from galaxy to galaxy (3 to 40), and carry each galaxy's true vote
probabilities, so a vote-count model can be scored against known truth.
"""

from __future__ import annotations

import gzip
import io
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from galaxy_ray import schema
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.trees import DECALS_DR5, Schema, TreeMatch

if TYPE_CHECKING:
    import pandas as pd
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


#: Volunteers per galaxy in a synthetic DECaLS table: half the galaxies get 3 to 8, half 30 to 40,
#: after GZ DECaLS DR5, where most galaxies were retired at about 5 classifications or at 40
#: (Walmsley et al. 2022, MNRAS 509, 3966, on the retirement limits and active learning).
FEW_VOLUNTEERS, MANY_VOLUNTEERS = (3, 8), (30, 40)
#: Stream of the DECaLS votes of galaxy ``index``: ``default_rng([seed, index, DECALS_STREAM])``,
#: apart from the stream its pixels and GZ2 votes come from.
DECALS_STREAM = 22
#: Concentration of the galaxy-to-galaxy scatter of the true vote probabilities around a class's
#: (a Dirichlet of ``25 * p + 0.05``, as for the GZ2 votes above).
SCATTER = 25.0
#: Prefix of the true-probability columns of a synthetic vote table: ``true_{question}_{answer}``.
TRUE_PREFIX = "true_"


def _normalised(values: Sequence[float]) -> np.ndarray:
    v = np.clip(np.asarray(values, dtype=float), 1e-6, None)
    return v / v.sum()


def decals_probabilities(galaxy10: int, info: dict[str, Any]) -> np.ndarray:
    """A class's answer probabilities on the GZ DECaLS / DESI tree, from its GZ2 ones.

    Questions present in both trees take the GZ2 probabilities (``edge-on-bulge`` reorders GZ2's
    bulge shape); the DECaLS-only answers split GZ2's: a bar is 55% strong, 45% weak; the five
    bulge sizes share GZ2's four prominences; ``merging`` takes GZ2's "odd" times its merger,
    disturbed and irregular answers.  The split is this simulation's choice, not a measurement.

    Returns
    -------
    numpy.ndarray, shape (34,)
        Conditional probabilities in :data:`galaxy_ray.trees.DECALS_DR5` answer order; each
        question sums to 1.
    """
    p = answer_probabilities(galaxy10, info)
    bar, (none, just, obvious, dominant) = p["bar"][0], p["bulge_prominence"]
    rounded, boxy, no_bulge = p["bulge_shape"]
    odd, of = p["odd"][0], p["odd_feature"]  # ring, lens, disturbed, irregular, other, merger, dust lane
    merger, major, minor = odd * of[5], odd * of[2], odd * (of[3] + 0.5 * of[4])
    per_question = {
        "smooth-or-featured": p["smooth_or_features"], "disk-edge-on": p["edgeon"],
        "has-spiral-arms": p["spiral"], "bar": (0.55 * bar, 0.45 * bar, 1.0 - bar),
        "bulge-size": (dominant, 0.6 * obvious, 0.4 * obvious + 0.3 * just, 0.7 * just, none),
        "how-rounded": p["rounded"], "edge-on-bulge": (boxy, no_bulge, rounded),
        "spiral-winding": p["arms_winding"], "spiral-arm-count": p["arms_number"],
        "merging": (1.0 - merger - major - minor, minor, major, merger),
    }
    return np.concatenate([_normalised(per_question[q.key]) for q in DECALS_DR5.questions])


def tree_vote_counts(rng: np.random.Generator, tree: Schema, probabilities: np.ndarray,
                     volunteers: int) -> np.ndarray:
    """``volunteers`` volunteers walk ``tree``: multinomial votes per question, parents first.

    A root question is answered by every volunteer; any other by exactly the volunteers who
    chose its parent answer, so a question's total is its parent answer's count.

    Parameters
    ----------
    probabilities : numpy.ndarray, shape (K,)
        Conditional answer probabilities (each question sums to 1) in the tree's answer order.
    volunteers : int
        Volunteers who classified the galaxy.

    Returns
    -------
    numpy.ndarray, shape (K,), int64
        Vote counts.
    """
    counts = np.zeros(len(tree.answers), dtype=np.int64)
    for q in tree.questions:
        reached = volunteers if q.parent is None else int(counts[q.parent])
        p = probabilities[q.start : q.stop]
        counts[q.start : q.stop] = rng.multinomial(reached, p / p.sum())
    return counts


def draw_true_probabilities(rng: np.random.Generator, tree: Schema, base: np.ndarray,
                            scatter: float = SCATTER) -> np.ndarray:
    """One galaxy's true vote probabilities: per question a Dirichlet(``scatter * base + 0.05``), shape (K,)."""
    return np.concatenate([rng.dirichlet(base[q.start : q.stop] * scatter + 0.05) for q in tree.questions])


def decals_vote_table(seed: int, n: int, tree: Schema = DECALS_DR5, form: str = "galaxy-datasets",
                      start: int = 0, footprint: Sequence[float] = DEFAULT_FOOTPRINT,
                      volunteers: tuple[int, int] | None = None) -> pd.DataFrame:
    """A GZ DECaLS-style vote table for galaxies ``start .. start + n - 1`` of synthetic survey ``seed``.

    Parameters
    ----------
    seed, n, start : int
        The galaxies: the same ``object_id``, class and position as ``galaxy-ray synth --seed seed``
        renders, so the table joins the survey's cutouts on ``object_id``.
    tree : Schema
        ``DECALS_DR5`` or ``DECALS_DR8`` (same questions, other campaign in the column names).
    form : str
        ``"galaxy-datasets"`` (``{question}-{campaign}_{answer}``) or ``"release"``
        (``{question}_{answer}``, as GZ DECaLS and GZ DESI release them).
    volunteers : (int, int), optional
        Draw each galaxy's volunteer count uniformly in this inclusive range instead of the
        default half :data:`FEW_VOLUNTEERS`, half :data:`MANY_VOLUNTEERS`.

    Returns
    -------
    pandas.DataFrame
        ``object_id``, ``ra``, ``dec`` (ICRS degrees), ``galaxy10``, the vote counts (int64),
        ``{question}_total-votes``, the conditional ``..._fraction`` columns (NaN where nobody
        reached a question) and the true probabilities ``true_{question}_{answer}`` (float64).
    """
    import pandas as pd

    if form not in tree.count_forms:
        raise GalaxyRayError(f"vote-table naming {form!r}: choose one of {', '.join(tree.count_forms)}")
    names, fraction_names = tree.count_forms[form], tree.fraction_forms[form]
    rows, truth, counts = [], [], []
    for index in range(start, start + n):
        draw = draw_galaxy(seed, index, footprint)
        rng = np.random.default_rng([seed, index, DECALS_STREAM])
        p = draw_true_probabilities(rng, tree, decals_probabilities(draw.galaxy10, draw.recipe.info))
        low, high = volunteers or (FEW_VOLUNTEERS if rng.random() < 0.5 else MANY_VOLUNTEERS)
        counts.append(tree_vote_counts(rng, tree, p, int(rng.integers(low, high + 1))))
        truth.append(p)
        rows.append((f"synth-{seed}-{index:07d}", *draw.position, draw.galaxy10))
    counts, truth = np.array(counts).reshape(n, -1), np.array(truth).reshape(n, -1)
    table = pd.DataFrame(rows, columns=["object_id", "ra", "dec", "galaxy10"])
    columns = {name: counts[:, k] for k, name in enumerate(names)}
    for q in tree.questions:
        total = counts[:, q.start : q.stop].sum(axis=1)
        columns[names[q.start][: -len(q.answers[0].key) - 1] + "_total-votes"] = total
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in q.indices:
                columns[fraction_names[k]] = np.where(total > 0, counts[:, k] / total, np.nan)
    columns.update({TRUE_PREFIX + a: truth[:, k] for k, a in enumerate(tree.answer_names)})
    return pd.concat([table, pd.DataFrame(columns)], axis=1)


def write_vote_table(table: pd.DataFrame, uri: str) -> None:
    """Write a vote table as Parquet (``.parquet``) or CSV (``.csv``, ``.csv.gz``), atomically.

    Raises
    ------
    GalaxyRayError
        Another suffix.
    """
    name = uri.lower()
    if name.endswith(".parquet"):
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        data = buffer.getvalue()
    elif name.endswith((".csv", ".csv.gz")):
        text = table.to_csv(index=False).encode()
        data = gzip.compress(text, mtime=0) if name.endswith(".gz") else text
    else:
        raise GalaxyRayError(f"{uri}: write a vote table as .parquet, .csv or .csv.gz")
    storage.write_bytes_atomic(uri, data)


def true_probabilities(table: pd.DataFrame, tree: Schema) -> np.ndarray:
    """The ``true_{question}_{answer}`` columns of a synthetic vote table, shape (N, K) float64."""
    return table[[TRUE_PREFIX + a for a in tree.answer_names]].to_numpy(dtype=np.float64)


def count_matrix(table: pd.DataFrame, match: TreeMatch) -> np.ndarray:
    """A vote table's counts in answer order (:func:`galaxy_ray.trees.vote_columns`), shape (N, K) float64."""
    return table[list(match.columns)].to_numpy(dtype=np.float64)
