"""What a Galaxy Zoo tree's catalog columns mean, one line each (the tree tasks' column descriptions).

Cumulative (Kaggle) columns, conditional ``_fraction`` columns, ``_proportion_asked`` and a
vote model's 90% intervals; :mod:`galaxy_ray.catalog.galaxy_zoo` says why the catalog has them.
Nothing here imports torch.
"""

from __future__ import annotations

from galaxy_ray.schema import GZ2_ANSWERS
from galaxy_ray.trees import GZ2, Schema

__all__ = ["CUMULATIVE_MEANING", "DIRICHLET_MEANING", "tree_descriptions"]

#: What a Kaggle cumulative column is (each column's description starts with this).
CUMULATIVE_MEANING = "Kaggle cumulative vote fraction: fraction of all volunteers who reached and chose this answer"


def _kaggle_names() -> dict[str, tuple[str, str]]:
    """GZ2 answer name -> (Kaggle column, Hart et al. stem)."""
    return {a.column: (a.kaggle, a.hart) for a in GZ2_ANSWERS}


#: How a votes model's ``_fraction`` columns are made (their description's first words).
DIRICHLET_MEANING = ("expected conditional vote fraction of a vote-count model (the mean of its Dirichlet over "
                     "the question's answers; Walmsley et al. 2022)")


def tree_descriptions(tree: Schema, cumulative: bool, dirichlet: bool = False) -> dict[str, str]:
    """Descriptions of a tree's cumulative (optional), ``_fraction``, ``_proportion_asked`` and (``dirichlet``)
    interval columns."""
    names = tree.answer_names
    kaggle = _kaggle_names() if tree is GZ2 else {}
    out: dict[str, str] = {}
    if cumulative:
        for a in tree.answers:
            code = kaggle.get(a.name, ("", ""))[0]
            out[a.name] = (f"{CUMULATIVE_MEANING} ({code} {a.question} {a.key}; the question's answers "
                           "sum to its parent answer's cumulative fraction)")
    for a, column in zip(tree.answers, tree.fraction_columns):
        hart = kaggle.get(a.name, ("", ""))[1]
        also = f", as {hart}_fraction in Hart et al. 2016" if hart else ""
        what = DIRICHLET_MEANING + ": " if dirichlet else "conditional vote fraction: "
        out[column] = (f"{what}of the volunteers who reached question {a.question}, "
                       f"the fraction answering {a.key}; the question's answers sum to 1{also}")
    if dirichlet:
        for (lower, upper), a in zip(zip(*tree.interval_columns), tree.answers):
            out[lower] = (f"5% quantile of the {a.name} fraction: lower end of its equal-tailed 90% interval, "
                          "from the Beta marginal of the model's Dirichlet")
            out[upper] = f"95% quantile of the {a.name} fraction: upper end of its 90% interval"
    for q, column in zip(tree.questions, tree.proportion_asked_columns):
        chain = [names[i] for i in reversed(tree.ancestors(q))]
        how = ("1, asked of every galaxy" if not chain else
               "the product of the fractions of " + " then ".join(chain) + " up the tree")
        out[column] = f"proportion of volunteers who would be asked question {q.key}: {how}"
    return out


def morphology_description(tree_title: str) -> str:
    """The ``morphology`` column's description for a catalog whose fractions come from ``tree_title``."""
    return (f"top-level label read down the {tree_title} tree from the vote fractions "
            "(elliptical, spiral, disk, edge_on or artifact); mergers are p_merger and is_merger, not a morphology")
