"""The trees galaxy-ray knows, by their ``--schema`` names."""

from __future__ import annotations

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.trees.decals import DECALS_DR5, DECALS_DR8
from galaxy_ray.trees.gz2 import GZ2
from galaxy_ray.trees.schema import Schema

__all__ = ["SCHEMAS", "ALIASES", "get_schema"]

#: Every tree, by :attr:`Schema.name`.
SCHEMAS: dict[str, Schema] = {s.name: s for s in (GZ2, DECALS_DR5, DECALS_DR8)}
#: Other spellings accepted for ``--schema``.
ALIASES: dict[str, str] = {"desi": "decals-dr8", "gz-desi": "decals-dr8", "dr5": "decals-dr5",
                           "dr8": "decals-dr8", "gz-decals": "decals-dr5"}


def get_schema(name: str) -> Schema:
    """The :class:`Schema` called ``name`` (or one of its :data:`ALIASES`).

    Raises
    ------
    GalaxyRayError
        An unknown name, listing the known ones.
    """
    key = ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if key not in SCHEMAS:
        raise GalaxyRayError(f"--schema {name}: unknown tree; choose one of {', '.join(SCHEMAS)} "
                             f"(or {', '.join(ALIASES)})")
    return SCHEMAS[key]
