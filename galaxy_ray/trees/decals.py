"""The GZ DECaLS DR5 and GZ DECaLS DR8 / GZ DESI decision trees.

Questions, answers (in this order) and each question's parent answer are those of
galaxy-datasets' ``galaxy_datasets/shared/label_metadata.py`` (``decals_dr5_ortho_pairs``,
``decals_dr8_ortho_pairs``, ``desi_pairs`` and ``decals_ortho_dependencies``; github.com/mwalmsley/
galaxy-datasets at commit 3cd2149cc4c57fd0bb7d88af3b44b73e91043284), which Zoobot's
``zoobot/shared/label_metadata.py`` re-exports (github.com/mwalmsley/zoobot at commit
fda17b0f30969cff176736e30c63f0a5765f9842).  The trees are described by Walmsley et al. (2022,
MNRAS 509, 3966, GZ DECaLS, Fig. 2) and Walmsley et al. (2023, MNRAS 526, 4768, GZ DESI).

DR5 and DR8 ask the same 10 questions with the same 34 answers; they differ only in the campaign
suffix galaxy-datasets appends to each question so that votes of different campaigns are never
mixed: ``smooth-or-featured-dr5_smooth`` (vote count) and ``smooth-or-featured-dr8_smooth``.
Galaxy Zoo's own data releases (the GZ DECaLS DR5 volunteer table and GZ DESI) name the same
counts without the suffix, ``smooth-or-featured_smooth``, with ``{question}_total-votes`` and
the conditional ``{question}_{answer}_fraction`` beside them (Zoobot's
``gz_decals_data_release_analysis_demo.ipynb`` reads those columns); those names cannot tell DR5
from DR8, whose trees are identical, so a table in that naming fits either schema.

``merging`` is asked after every other branch; galaxy-datasets records it as asked of every
galaxy (dependency None, "technically should be smooth OR featured"), and so does this schema.
The merger answer is ``merging_merger``: ``major-disturbance`` marks a disturbed galaxy whose
companion volunteers did not see, which the GZ2 merger rule (Class8.6) never counted either.
"""

from __future__ import annotations

from galaxy_ray.trees.schema import Schema, build_schema

__all__ = ["DECALS_PAIRS", "DECALS_DEPENDENCIES", "DECALS_DR5", "DECALS_DR8"]

#: (question, answers) of GZ DECaLS DR5 and DR8 / GZ DESI, galaxy-datasets' ``desi_pairs`` order.
DECALS_PAIRS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("smooth-or-featured", ("smooth", "featured-or-disk", "artifact")),
    ("disk-edge-on", ("yes", "no")),
    ("has-spiral-arms", ("yes", "no")),
    ("bar", ("strong", "weak", "no")),
    ("bulge-size", ("dominant", "large", "moderate", "small", "none")),
    ("how-rounded", ("round", "in-between", "cigar-shaped")),
    ("edge-on-bulge", ("boxy", "none", "rounded")),
    ("spiral-winding", ("tight", "medium", "loose")),
    ("spiral-arm-count", ("1", "2", "3", "4", "more-than-4", "cant-tell")),
    ("merging", ("none", "minor-disturbance", "major-disturbance", "merger")),
)

#: The answer leading to each question (galaxy-datasets' ``desi_dependencies``); None: asked of all.
DECALS_DEPENDENCIES: dict[str, str | None] = {
    "smooth-or-featured": None,
    "disk-edge-on": "smooth-or-featured_featured-or-disk",
    "has-spiral-arms": "disk-edge-on_no",
    "bar": "disk-edge-on_no",
    "bulge-size": "disk-edge-on_no",
    "how-rounded": "smooth-or-featured_smooth",
    "edge-on-bulge": "disk-edge-on_yes",
    "spiral-winding": "has-spiral-arms_yes",
    "spiral-arm-count": "has-spiral-arms_yes",
    "merging": None,
}


def _decals(campaign: str, title: str, reference: str) -> Schema:
    """The DECaLS tree with campaign ``campaign`` ("dr5", "dr8") in galaxy-datasets' count names."""
    release = tuple(f"{q}_{a}" for q, answers in DECALS_PAIRS for a in answers)
    ortho = tuple(f"{q}-{campaign}_{a}" for q, answers in DECALS_PAIRS for a in answers)
    return build_schema(
        f"decals-{campaign}", title, DECALS_PAIRS, DECALS_DEPENDENCIES,
        count_forms={"galaxy-datasets": ortho, "release": release},
        fraction_forms={"galaxy-datasets": tuple(c + "_fraction" for c in ortho),
                        "release": tuple(c + "_fraction" for c in release)},
        merger_answers=("merging_merger",),
        morphology_answers={"smooth": "smooth-or-featured_smooth", "featured": "smooth-or-featured_featured-or-disk",
                            "artifact": "smooth-or-featured_artifact", "edge_on": "disk-edge-on_yes",
                            "face_on": "disk-edge-on_no", "spiral": "has-spiral-arms_yes",
                            "no_spiral": "has-spiral-arms_no"},
        reference=reference,
    )


#: GZ DECaLS DR5 (Walmsley et al. 2022, MNRAS 509, 3966): counts ``{question}-dr5_{answer}``.
DECALS_DR5: Schema = _decals("dr5", "GZ DECaLS DR5", "Walmsley et al. 2022, MNRAS 509, 3966; galaxy-datasets "
                             "galaxy_datasets/shared/label_metadata.py decals_dr5_ortho_pairs")
#: GZ DECaLS DR8 / GZ DESI (Walmsley et al. 2023, MNRAS 526, 4768): counts ``{question}-dr8_{answer}``.
DECALS_DR8: Schema = _decals("dr8", "GZ DECaLS DR8 / GZ DESI", "Walmsley et al. 2023, MNRAS 526, 4768; "
                             "galaxy-datasets galaxy_datasets/shared/label_metadata.py decals_dr8_ortho_pairs")
