"""Label schemas and catalog column names: the single source of truth.

The Galaxy Zoo 2 (GZ2) decision tree has 11 questions and 37 answers.  Two
conventions for its vote fractions are in use:

* **conditional** fractions (the public GZ2 catalogs, Willett et al. 2013;
  Hart et al. 2016): each question's answers sum to 1 among the volunteers who
  reached that question;
* **cumulative** fractions (the Kaggle "Galaxy Challenge" targets
  ``Class1.1 ... Class11.6``, and this package's GZ2 outputs): each answer is
  the fraction of *all* volunteers who reached and chose it, so a question's
  answers sum to the value of the parent answer that leads to it.

``cumulative = conditional * cumulative(parent answer)``.

Nothing in this module depends on the rest of galaxy_ray.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "Answer",
    "Question",
    "GZ2_QUESTIONS",
    "GZ2_ANSWERS",
    "GZ2_ANSWER_COLUMNS",
    "GZ2_KAGGLE_COLUMNS",
    "GZ2_HART_COLUMNS",
    "GZ2_MERGER_INDEX",
    "GALAXY10_CLASSES",
    "GALAXY10_SDSS_CLASSES",
    "GALAXY10_MERGER_CLASS",
    "CatalogColumns",
    "class_column",
    "class_columns",
    "shared_class_columns",
    "slugify",
    "conditional_to_cumulative",
    "cumulative_to_conditional",
    "tree_violation",
    "check_tree",
    "gz2_morphology",
]


@dataclass(frozen=True)
class Answer:
    """One answer of the GZ2 tree.

    Attributes
    ----------
    question : str
        Key of the question, e.g. ``"odd_feature"``.
    key : str
        Key of the answer, e.g. ``"merger"``.
    index : int
        Position 0..36 in the Kaggle column order.
    kaggle : str
        Kaggle column name, e.g. ``"Class8.6"``.
    hart : str
        Hart et al. (2016) column stem, e.g. ``"t08_odd_feature_a24_merger"``.
    """

    question: str
    key: str
    index: int
    kaggle: str
    hart: str

    @property
    def column(self) -> str:
        """Catalog column name, e.g. ``"odd_feature_merger"``."""
        return f"{self.question}_{self.key}"


@dataclass(frozen=True)
class Question:
    """One question of the GZ2 tree.

    Attributes
    ----------
    number : int
        1..11, as in Kaggle's ``ClassQ.k`` and Hart's ``tQQ``.
    key : str
        Hart et al. (2016) question name.
    answers : tuple of Answer
        In Kaggle order.
    parent : int or None
        Kaggle index (0..36) of the answer that leads to this question; None
        for the questions asked of every galaxy (Q1 and Q6).
    """

    number: int
    key: str
    answers: tuple[Answer, ...]
    parent: int | None

    @property
    def indices(self) -> list[int]:
        """Kaggle indices (0..36) of this question's answers."""
        return [a.index for a in self.answers]


# (question number, key, [(answer key, Hart answer number)], parent as (Q, answer key) or None)
_TREE = [
    (1, "smooth_or_features", [("smooth", 1), ("features_or_disk", 2), ("star_or_artifact", 3)], None),
    (2, "edgeon", [("yes", 4), ("no", 5)], (1, "features_or_disk")),
    (3, "bar", [("bar", 6), ("no_bar", 7)], (2, "no")),
    (4, "spiral", [("spiral", 8), ("no_spiral", 9)], (2, "no")),
    (5, "bulge_prominence",
     [("no_bulge", 10), ("just_noticeable", 11), ("obvious", 12), ("dominant", 13)], (2, "no")),
    (6, "odd", [("yes", 14), ("no", 15)], None),
    (7, "rounded", [("completely_round", 16), ("in_between", 17), ("cigar_shaped", 18)], (1, "smooth")),
    (8, "odd_feature",
     [("ring", 19), ("lens_or_arc", 20), ("disturbed", 21), ("irregular", 22), ("other", 23),
      ("merger", 24), ("dust_lane", 38)], (6, "yes")),
    (9, "bulge_shape", [("rounded", 25), ("boxy", 26), ("no_bulge", 27)], (2, "yes")),
    (10, "arms_winding", [("tight", 28), ("medium", 29), ("loose", 30)], (4, "spiral")),
    (11, "arms_number",
     [("1", 31), ("2", 32), ("3", 33), ("4", 34), ("more_than_4", 36), ("cant_tell", 37)],
     (4, "spiral")),
]


def _build_tree() -> tuple[tuple[Question, ...], tuple[Answer, ...]]:
    answers: list[Answer] = []
    by_key: dict[tuple[int, str], int] = {}
    per_question: list[tuple[int, str, list[Answer], tuple[int, str] | None]] = []
    for number, qkey, answer_specs, parent in _TREE:
        qanswers = []
        for k, (akey, hart_number) in enumerate(answer_specs, start=1):
            answer = Answer(
                question=qkey,
                key=akey,
                index=len(answers),
                kaggle=f"Class{number}.{k}",
                hart=f"t{number:02d}_{qkey}_a{hart_number:02d}_{akey}",
            )
            by_key[(number, akey)] = answer.index
            answers.append(answer)
            qanswers.append(answer)
        per_question.append((number, qkey, qanswers, parent))
    questions = tuple(
        Question(number, qkey, tuple(qa), None if parent is None else by_key[parent])
        for number, qkey, qa, parent in per_question
    )
    return questions, tuple(answers)


GZ2_QUESTIONS, GZ2_ANSWERS = _build_tree()
#: Catalog column of each answer, in Kaggle order (37 names).
GZ2_ANSWER_COLUMNS: tuple[str, ...] = tuple(a.column for a in GZ2_ANSWERS)
#: Kaggle challenge column names ``Class1.1 ... Class11.6`` in challenge order.
GZ2_KAGGLE_COLUMNS: tuple[str, ...] = tuple(a.kaggle for a in GZ2_ANSWERS)
#: Hart et al. (2016) column stems ``tNN_<question>_aNN_<answer>``.
GZ2_HART_COLUMNS: tuple[str, ...] = tuple(a.hart for a in GZ2_ANSWERS)
#: Kaggle index of Class8.6 (odd_feature / merger): the GZ2 merger answer.
GZ2_MERGER_INDEX: int = GZ2_KAGGLE_COLUMNS.index("Class8.6")

#: Galaxy10 DECaLS classes, in the order of the HDF5 ``ans`` codes 0..9.
GALAXY10_CLASSES: tuple[str, ...] = (
    "Disturbed",
    "Merging",
    "Round Smooth",
    "In-between Round Smooth",
    "Cigar Shaped Smooth",
    "Barred Spiral",
    "Unbarred Tight Spiral",
    "Unbarred Loose Spiral",
    "Edge-on without Bulge",
    "Edge-on with Bulge",
)
GALAXY10_MERGER_CLASS = "Merging"
#: Galaxy10 SDSS classes (69 x 69 px cutouts), in the order of its ``ans`` codes 0..9
#: (astroNN documentation, "Galaxy10 SDSS"; Leung & Bovy 2019).  It has no merger class.
GALAXY10_SDSS_CLASSES: tuple[str, ...] = (
    "Disk, Face-on, No Spiral",
    "Smooth, Completely round",
    "Smooth, in-between round",
    "Smooth, Cigar shaped",
    "Disk, Edge-on, Rounded Bulge",
    "Disk, Edge-on, Boxy Bulge",
    "Disk, Edge-on, No Bulge",
    "Disk, Face-on, Tight Spiral",
    "Disk, Face-on, Medium Spiral",
    "Disk, Face-on, Loose Spiral",
)


class CatalogColumns:
    """Column names of the cutout table (input) and of the catalog (output)."""

    # cutout table
    OBJECT_ID = "object_id"
    RA = "ra"
    DEC = "dec"
    IMAGE = "image"
    #: GZ2 targets: list<float32> of the 37 cumulative fractions, Kaggle order
    VOTES = "votes"
    #: votes task: a tree's vote counts per answer (list of float32), assembled from its count columns
    VOTE_COUNTS = "vote_counts"
    #: class targets: string class name
    LABEL = "label"
    #: where the cutout came from (file path, URI or ``file.h5[row]``), for error messages
    SOURCE = "source"

    # catalog
    HEALPIX = "_healpix_29"
    MORPHOLOGY = "morphology"
    P_MERGER = "p_merger"
    IS_MERGER = "is_merger"
    ERROR = "error"
    #: fraction of the cutout's pixels holding data (1 inside the survey footprint, less at its edge)
    COVERAGE = "coverage"
    #: with --tta: standard deviation over the 8 views of p_merger and of the morphology's probability
    P_MERGER_STD = "p_merger_std"
    MORPHOLOGY_PROB_STD = "morphology_prob_std"

    #: HEALPix order of the catalog index (the HATS convention)
    HEALPIX_ORDER = 29


def slugify(name: str) -> str:
    """Lower-case identifier made of letters, digits and underscores.

    >>> slugify("In-between Round Smooth")
    'in_between_round_smooth'
    """
    slug = re.sub(r"[^0-9a-zA-Z]+", "_", name.strip()).strip("_").lower()
    return slug or "class"


def class_column(name: str) -> str:
    """Catalog column holding the probability of a class, e.g. ``prob_merging``.

    Two classes can share it (``Spiral``/``spiral``, ``Sb``/``Sb:``, any two names without Latin
    letters or digits): name a model's columns with :func:`class_columns`, which keeps them apart.
    """
    return f"prob_{slugify(name)}"


def class_columns(names: Sequence[str]) -> list[str]:
    """The catalog columns of a model's classes, in class order, all different.

    Each is :func:`class_column` of its class; a class whose column an earlier class already took
    gets the first free ``_2``, ``_3``, ... suffix.  The result depends only on the ordered class
    names a checkpoint stores, so training, ``infer`` and every reader derive the same columns
    (also for checkpoints written before this rule); the catalog's provenance keeps ``output_names``
    beside ``output_columns`` and each column's description names its class.

    >>> class_columns(["Sb", "Sb:", "spiral"])
    ['prob_sb', 'prob_sb_2', 'prob_spiral']
    """
    plain = [class_column(n) for n in names]
    taken: set[str] = set()
    out = []
    for column in plain:
        if column in taken:  # the first class keeps the plain name
            k = 2
            while f"{column}_{k}" in taken or f"{column}_{k}" in plain:
                k += 1
            column = f"{column}_{k}"
        taken.add(column)
        out.append(column)
    return out


def shared_class_columns(names: Sequence[str]) -> list[list[str]]:
    """Groups of class names (two or more) whose :func:`class_column` is the same, in class order."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(class_column(n), []).append(n)
    return [g for g in groups.values() if len(g) > 1]


def conditional_to_cumulative(conditional: np.ndarray) -> np.ndarray:
    """Convert conditional GZ2 fractions to cumulative (Kaggle) fractions.

    Parameters
    ----------
    conditional : array_like, shape (..., 37)
        Per-question fractions in Kaggle answer order, each question summing
        to 1 (or to 0 where nobody reached it).

    Returns
    -------
    numpy.ndarray, shape (..., 37)
        Cumulative fractions; each question sums to its parent answer's value.
    """
    cond = np.asarray(conditional, dtype=np.float64)
    cum = np.zeros_like(cond)
    # _TREE is ordered so that every parent question precedes its children.
    for q in GZ2_QUESTIONS:
        parent = 1.0 if q.parent is None else cum[..., q.parent : q.parent + 1]
        cum[..., q.indices] = cond[..., q.indices] * parent
    return cum


def cumulative_to_conditional(cumulative: np.ndarray) -> np.ndarray:
    """Convert cumulative fractions back to conditional ones.

    Where the parent value is 0 the question was never reached; its
    conditional fractions are returned as 0.
    """
    cum = np.asarray(cumulative, dtype=np.float64)
    cond = np.zeros_like(cum)
    for q in GZ2_QUESTIONS:
        if q.parent is None:
            cond[..., q.indices] = cum[..., q.indices]
            continue
        parent = cum[..., q.parent : q.parent + 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            cond[..., q.indices] = np.where(parent > 0, cum[..., q.indices] / parent, 0.0)
    return cond


def tree_violation(cumulative: np.ndarray) -> np.ndarray:
    """Largest absolute violation of the tree sums, per row.

    For each question, ``|sum(answers) - parent value|`` (parent value 1 for
    Q1 and Q6); also penalises negative fractions.

    Returns
    -------
    numpy.ndarray, shape (N,)
    """
    cum = np.atleast_2d(np.asarray(cumulative, dtype=np.float64))
    if cum.shape[-1] != len(GZ2_ANSWERS):
        raise ValueError(f"expected {len(GZ2_ANSWERS)} GZ2 answers per row, got {cum.shape[-1]}")
    worst = np.maximum(0.0, -cum.min(axis=-1))
    for q in GZ2_QUESTIONS:
        parent = 1.0 if q.parent is None else cum[:, q.parent]
        worst = np.maximum(worst, np.abs(cum[:, q.indices].sum(axis=-1) - parent))
    return worst


def check_tree(cumulative: np.ndarray, atol: float = 1e-3) -> None:
    """Raise ``ValueError`` naming the first row whose fractions break the tree.

    Parameters
    ----------
    cumulative : array_like, shape (N, 37)
    atol : float
        Tolerance on each question's sum.
    """
    worst = tree_violation(cumulative)
    bad = np.flatnonzero(worst > atol)
    if bad.size:
        raise ValueError(
            f"{bad.size} of {worst.size} rows break the GZ2 tree sums (first: row {bad[0]}, "
            f"off by {worst[bad[0]]:.3g} > {atol}); are these conditional fractions? "
            "convert them with conditional_to_cumulative()"
        )


def gz2_morphology(cumulative: np.ndarray) -> np.ndarray:
    """The top-level label a person would quote for each row of GZ2 fractions.

    Follows the tree's first branches: ``artifact`` or ``elliptical`` (smooth)
    when that wins Q1; for featured galaxies ``edge_on``, else ``spiral`` or
    ``disk`` (featured, no clear arms).  Merger status is deliberately not a
    morphology: it is ``p_merger`` (Class8.6) and the ``is_merger`` flag at the
    run's threshold, so the two can never disagree.

    Returns
    -------
    numpy.ndarray of str, shape (N,)
    """
    cum = np.atleast_2d(np.asarray(cumulative, dtype=np.float64))
    a = {ans.column: cum[:, ans.index] for ans in GZ2_ANSWERS}
    label = np.where(
        a["edgeon_yes"] >= a["edgeon_no"],
        "edge_on",
        np.where(a["spiral_spiral"] >= a["spiral_no_spiral"], "spiral", "disk"),
    )
    q1 = np.argmax(cum[:, [ans.index for ans in GZ2_QUESTIONS[0].answers]], axis=1)
    return np.where(q1 == 0, "elliptical", np.where(q1 == 2, "artifact", label)).astype(object)
