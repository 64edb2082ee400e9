"""A Galaxy Zoo decision tree as data: questions, answers, parent answers and column names.

One :class:`Schema` instance per tree (:mod:`galaxy_ray.trees.gz2`,
:mod:`galaxy_ray.trees.decals`).  Answers are numbered question by question
(each question's answers are contiguous, questions come parent-first), so a
model's output vector, a vote-count row and a fraction row share one answer
order: :attr:`Schema.answer_names`.

Vote fractions come in two conventions (see :mod:`galaxy_ray.schema`):
*conditional* (each question sums to 1 among the volunteers who reached it;
what GZ2, GZ DECaLS and GZ DESI publish) and *cumulative* (Kaggle's: each answer
multiplied down the tree).  ``cumulative = conditional * proportion asked``.

Nothing here imports torch, so the catalog side can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from galaxy_ray.errors import GalaxyRayError

__all__ = ["TreeAnswer", "TreeQuestion", "Schema", "build_schema", "FRACTION_SUFFIX",
           "PROPORTION_ASKED_SUFFIX", "LOWER_SUFFIX", "UPPER_SUFFIX"]

#: ``{question}_{answer}_fraction``: the conditional vote fraction (GZ DESI, Walmsley et al. 2023).
FRACTION_SUFFIX = "_fraction"
#: ``{question}_proportion_asked``: the product of the parent answers' fractions up the tree.
PROPORTION_ASKED_SUFFIX = "_proportion_asked"
#: Per-answer 90% interval of a vote-count model, Zoobot's ``prediction_hdf5_to_summary_parquet``
#: names (``zoobot/shared/load_predictions.py``): ``{question}_{answer}_90pc-lower`` / ``-upper``.
LOWER_SUFFIX = "_90pc-lower"
UPPER_SUFFIX = "_90pc-upper"


@dataclass(frozen=True)
class TreeAnswer:
    """One answer of a tree.

    Attributes
    ----------
    question : str
        Key of its question as Galaxy Zoo spells it, e.g. ``"smooth-or-featured"``.
    key : str
        Key of the answer, e.g. ``"featured-or-disk"``.
    index : int
        Position in :attr:`Schema.answers` (the model's output order).
    """

    question: str
    key: str
    index: int

    @property
    def name(self) -> str:
        """``{question}_{answer}``, e.g. ``"smooth-or-featured_smooth"`` (Zoobot's label column stem)."""
        return f"{self.question}_{self.key}"


@dataclass(frozen=True)
class TreeQuestion:
    """One question of a tree.

    Attributes
    ----------
    key : str
        e.g. ``"disk-edge-on"``.
    answers : tuple of TreeAnswer
        Contiguous in the schema's answer order.
    parent : int or None
        :attr:`TreeAnswer.index` of the answer that leads to this question;
        None for a question asked of every galaxy.
    """

    key: str
    answers: tuple[TreeAnswer, ...]
    parent: int | None

    @property
    def start(self) -> int:
        """Index of the first answer."""
        return self.answers[0].index

    @property
    def stop(self) -> int:
        """One past the index of the last answer (``slice(start, stop)`` selects the question)."""
        return self.answers[-1].index + 1

    @property
    def indices(self) -> list[int]:
        """Indices of this question's answers."""
        return [a.index for a in self.answers]


@dataclass(frozen=True)
class Schema:
    """A Galaxy Zoo decision tree and the column names of its published tables.

    Attributes
    ----------
    name : str
        The ``--schema`` value: ``"gz2"``, ``"decals-dr5"``, ``"decals-dr8"``.
    title : str
        How a person names it, e.g. ``"GZ DECaLS DR5"``.
    questions : tuple of TreeQuestion
        Parent-first.
    count_forms : dict of str to tuple of str
        Per naming convention (``"galaxy-datasets"``, ``"zenodo"``, ``"hart"``, ...), the vote-count
        column of each answer in answer order, as the published or redistributed tables name it.
    fraction_forms : dict of str to tuple of str
        Likewise for published conditional (or, form ``"kaggle"``, cumulative) fraction columns.
    merger_answers : tuple of str
        :attr:`TreeAnswer.name` of the answers whose vote fraction defines a merger.
    morphology_answers : dict of str to str
        The answers the top-level morphology label is read from
        (:func:`galaxy_ray.trees.morphology.tree_morphology`), by role: ``smooth``, ``featured``,
        ``artifact`` (the first question), ``edge_on``, ``face_on``, ``spiral``, ``no_spiral``.
    reference : str
        Where the tree and the names come from.
    """

    name: str
    title: str
    questions: tuple[TreeQuestion, ...]
    count_forms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fraction_forms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    merger_answers: tuple[str, ...] = ()
    morphology_answers: Mapping[str, str] = field(default_factory=dict)
    reference: str = ""

    @property
    def answers(self) -> tuple[TreeAnswer, ...]:
        """Every answer, in output order."""
        return tuple(a for q in self.questions for a in q.answers)

    @property
    def answer_names(self) -> tuple[str, ...]:
        """``{question}_{answer}`` of every answer, in output order."""
        return tuple(a.name for a in self.answers)

    @property
    def slices(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each question's answers, in question order."""
        return [(q.start, q.stop) for q in self.questions]

    def answer_rows(self, values, what: str = "values") -> np.ndarray:
        """``values`` as float64 rows of one value per answer, shape (N, K).

        Raises
        ------
        ValueError
            A row length other than the tree's number of answers (``what`` names the values).
        """
        rows = np.atleast_2d(np.asarray(values, dtype=np.float64))
        if rows.shape[-1] != len(self.answers):
            raise ValueError(f"{rows.shape[-1]} {what} per row for the {len(self.answers)} answers of {self.title}")
        return rows

    @property
    def fraction_columns(self) -> tuple[str, ...]:
        """Catalog columns of the conditional fractions, ``{question}_{answer}_fraction``."""
        return tuple(n + FRACTION_SUFFIX for n in self.answer_names)

    @property
    def proportion_asked_columns(self) -> tuple[str, ...]:
        """Catalog columns ``{question}_proportion_asked``, one per question."""
        return tuple(q.key + PROPORTION_ASKED_SUFFIX for q in self.questions)

    @property
    def interval_columns(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Lower and upper 90% interval columns, ``{question}_{answer}_90pc-lower`` / ``-upper``."""
        return (tuple(n + LOWER_SUFFIX for n in self.answer_names),
                tuple(n + UPPER_SUFFIX for n in self.answer_names))

    def question(self, key: str) -> TreeQuestion:
        """The question called ``key``; a GalaxyRayError naming the tree's questions otherwise."""
        for q in self.questions:
            if q.key == key:
                return q
        raise GalaxyRayError(f"{key!r}: not a question of the {self.title} tree; its questions are "
                             f"{', '.join(q.key for q in self.questions)}")

    def answer_index(self, name: str) -> int:
        """Index of the answer ``{question}_{answer}``; a GalaxyRayError otherwise."""
        try:
            return self.answer_names.index(name)
        except ValueError:
            raise GalaxyRayError(f"{name!r}: not an answer of the {self.title} tree "
                                 f"(answers are named question_answer, e.g. {self.answer_names[0]!r})") from None

    def ancestors(self, question: TreeQuestion) -> list[int]:
        """Answer indices from ``question``'s parent answer up to a root question, nearest first."""
        owner = {a.index: q for q in self.questions for a in q.answers}
        chain, parent = [], question.parent
        while parent is not None:
            chain.append(parent)
            parent = owner[parent].parent
        return chain


def build_schema(name: str, title: str, pairs: Sequence[tuple[str, Sequence[str]]],
                 dependencies: Mapping[str, str | None], **fields) -> Schema:
    """A :class:`Schema` from question/answer lists and each question's parent answer.

    Parameters
    ----------
    pairs : sequence of (question key, answer keys)
        In output order; parents must come before their children.
    dependencies : mapping of question key to ``"{question}_{answer}"`` or None
        The answer leading to each question (galaxy-datasets' ``*_dependencies`` dicts).
    **fields
        ``count_forms``, ``fraction_forms``, ``merger_answers``, ``morphology_answers``, ``reference``.

    Raises
    ------
    ValueError
        A parent answer that is not an earlier question's answer, or a question without a dependency.
    """
    questions: list[TreeQuestion] = []
    index_of: dict[str, int] = {}
    n = 0
    for qkey, akeys in pairs:
        answers = tuple(TreeAnswer(qkey, akey, n + k) for k, akey in enumerate(akeys))
        n += len(answers)
        parent_name = dependencies[qkey]
        if parent_name is not None and parent_name not in index_of:
            raise ValueError(f"{name}: parent {parent_name!r} of {qkey!r} is not an earlier answer")
        questions.append(TreeQuestion(qkey, answers, None if parent_name is None else index_of[parent_name]))
        index_of.update({a.name: a.index for a in answers})
    schema = Schema(name, title, tuple(questions), **fields)
    for role, answer in schema.morphology_answers.items():
        if answer not in index_of:
            raise ValueError(f"{name}: morphology answer {role}={answer!r} is not an answer of the tree")
    for form, columns in {**schema.count_forms, **schema.fraction_forms}.items():
        if len(columns) != n:
            raise ValueError(f"{name}: {form} names {len(columns)} columns for {n} answers")
    return schema
