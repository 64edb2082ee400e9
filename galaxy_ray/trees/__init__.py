"""Galaxy Zoo decision trees as data: GZ2, GZ DECaLS DR5, GZ DECaLS DR8 / GZ DESI.

* :mod:`.schema`: the :class:`Schema`, :class:`TreeQuestion` and :class:`TreeAnswer` dataclasses;
* :mod:`.gz2`, :mod:`.decals`: the instances;
* :mod:`.registry`: ``--schema`` names (:func:`get_schema`);
* :mod:`.detect`: which tree a vote table's columns belong to (:func:`vote_columns`);
* :mod:`.dirichlet`: expected vote fractions and 90% intervals from Dirichlet concentrations;
* :mod:`.fractions`: conditional fraction, proportion-asked and friendly catalog columns.

No module here imports torch: the catalog side (``galaxy-ray query``) may use them all.
"""

from __future__ import annotations

from galaxy_ray.trees.decals import DECALS_DR5, DECALS_DR8
from galaxy_ray.trees.detect import TreeMatch, identify_tree, match_trees, vote_columns
from galaxy_ray.trees.gz2 import GZ2
from galaxy_ray.trees.registry import ALIASES, SCHEMAS, get_schema
from galaxy_ray.trees.schema import Schema, TreeAnswer, TreeQuestion

__all__ = ["Schema", "TreeAnswer", "TreeQuestion", "GZ2", "DECALS_DR5", "DECALS_DR8", "SCHEMAS", "ALIASES",
           "get_schema", "TreeMatch", "match_trees", "identify_tree", "vote_columns"]
