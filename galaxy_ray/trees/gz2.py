"""The Galaxy Zoo 2 tree as a :class:`~galaxy_ray.trees.schema.Schema`, built from :mod:`galaxy_ray.schema`.

The questions, answers (Kaggle order), parent answers and Hart et al. (2016, MNRAS 461, 3663)
column stems are those of :data:`galaxy_ray.schema.GZ2_QUESTIONS`; nothing is repeated here.
Published vote tables: Hart et al.'s ``tNN_<question>_aNN_<answer>_count`` (vote counts),
``..._fraction`` (conditional) and ``..._debiased``; Kaggle's ``Class1.1 ... Class11.6`` are
cumulative fractions (form ``"kaggle"``).  Answer names are ``{question}_{answer}`` with
Hart's keys, i.e. :data:`galaxy_ray.schema.GZ2_ANSWER_COLUMNS`.
"""

from __future__ import annotations

from galaxy_ray import schema as gz2
from galaxy_ray.trees.schema import Schema, build_schema

__all__ = ["GZ2"]


def _gz2() -> Schema:
    pairs = [(q.key, [a.key for a in q.answers]) for q in gz2.GZ2_QUESTIONS]
    dependencies = {q.key: None if q.parent is None else gz2.GZ2_ANSWERS[q.parent].column
                    for q in gz2.GZ2_QUESTIONS}
    return build_schema(
        "gz2", "Galaxy Zoo 2", pairs, dependencies,
        count_forms={"hart": tuple(h + "_count" for h in gz2.GZ2_HART_COLUMNS)},
        fraction_forms={"hart": tuple(h + "_fraction" for h in gz2.GZ2_HART_COLUMNS),
                        "hart-debiased": tuple(h + "_debiased" for h in gz2.GZ2_HART_COLUMNS),
                        "kaggle": gz2.GZ2_KAGGLE_COLUMNS},
        merger_answers=(gz2.GZ2_ANSWERS[gz2.GZ2_MERGER_INDEX].column,),
        morphology_answers={"smooth": "smooth_or_features_smooth", "featured": "smooth_or_features_features_or_disk",
                            "artifact": "smooth_or_features_star_or_artifact", "edge_on": "edgeon_yes",
                            "face_on": "edgeon_no", "spiral": "spiral_spiral", "no_spiral": "spiral_no_spiral"},
        reference="Willett et al. 2013, MNRAS 435, 2835; Hart et al. 2016, MNRAS 461, 3663; galaxy_ray.schema",
    )


#: Galaxy Zoo 2: 11 questions, 37 answers, in Kaggle order.
GZ2: Schema = _gz2()
