"""The top-level morphology label of any tree, read from its first branches.

The rule is the one :func:`galaxy_ray.schema.gz2_morphology` applies to GZ2's cumulative
fractions, written once for every :class:`~galaxy_ray.trees.schema.Schema` through its
``morphology_answers``: ``elliptical`` (smooth) or ``artifact`` when that answer wins the first
question; for featured galaxies ``edge_on`` when edge-on wins, else ``spiral`` or ``disk``
(featured, no clear arms).  Comparing conditional fractions within one question is the same as
comparing cumulative ones (both answers share the parent), so conditional fractions are enough.
Mergers are not a morphology: they are ``p_merger`` and ``is_merger``.

numpy only (no torch).
"""

from __future__ import annotations

import numpy as np

from galaxy_ray.trees.fractions import to_cumulative
from galaxy_ray.trees.schema import Schema

__all__ = ["LABEL_ROLES", "tree_morphology", "label_probability"]

#: The answer role behind each label (whose cumulative fraction is the label's probability).
LABEL_ROLES = {"elliptical": "smooth", "artifact": "artifact", "edge_on": "edge_on", "spiral": "spiral",
               "disk": "no_spiral"}


def tree_morphology(conditional: np.ndarray, schema: Schema) -> np.ndarray:
    """The label a person would quote for each row of conditional vote fractions.

    Parameters
    ----------
    conditional : array_like, shape (N, K)
        Conditional fractions in ``schema``'s answer order.

    Returns
    -------
    numpy.ndarray of str (object), shape (N,)
        ``elliptical``, ``artifact``, ``edge_on``, ``spiral`` or ``disk``.
    """
    cond = schema.answer_rows(conditional, "fractions")
    role = {r: cond[:, schema.answer_index(name)] for r, name in schema.morphology_answers.items()}
    featured = np.where(role["edge_on"] >= role["face_on"], "edge_on",
                        np.where(role["spiral"] >= role["no_spiral"], "spiral", "disk"))
    first = cond[:, schema.questions[0].start:schema.questions[0].stop]
    winner = np.argmax(first, axis=1) + schema.questions[0].start
    smooth, artifact = (schema.answer_index(schema.morphology_answers[r]) for r in ("smooth", "artifact"))
    return np.where(winner == smooth, "elliptical", np.where(winner == artifact, "artifact", featured)).astype(object)


def label_probability(conditional: np.ndarray, schema: Schema, labels: np.ndarray) -> np.ndarray:
    """The cumulative vote fraction of the answer behind each row's label (:data:`LABEL_ROLES`), float32 (N,).

    Cumulative, so that a ``spiral`` label's probability is the fraction of all volunteers who
    would call the galaxy a spiral, as for a GZ2 model's Class4.1.
    """
    cumulative = to_cumulative(schema.answer_rows(conditional, "fractions"), schema)
    index = np.array([schema.answer_index(schema.morphology_answers[LABEL_ROLES[str(label)]]) for label in labels],
                     dtype=np.int64)
    return cumulative[np.arange(len(cumulative)), index].astype(np.float32)
