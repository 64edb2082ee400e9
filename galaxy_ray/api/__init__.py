"""galaxy-ray's public Python API: the same work as the command line, from a notebook or a script.

Stable: the names in ``__all__`` keep their signatures and meaning across
minor versions (``docs/api.md`` lists them, generated from these docstrings).
Positions and radii are ICRS degrees.  A problem the caller can fix raises
:class:`galaxy_ray.errors.GalaxyRayError` with a one-line message.

Model work: :func:`train`, :func:`evaluate` and :func:`infer` run on Ray
(a local cluster is started unless one is reachable); :func:`predict` runs
here, on files or an in-memory (N, H, W, 3) uint8 array.  Catalog work:
:func:`open_catalog` (pandas, astropy, arrow or LSDB), :func:`cone`,
:func:`box` and :func:`merger_stats`, none of which imports torch; :func:`similar` and
:func:`oddity` search a catalog's embeddings (``infer(..., embeddings=16)``).  The other
commands: :func:`query`, :func:`synthesize` (``synth``), :func:`pack`, :func:`to_hats`
(``hats``), :func:`crossmatch` and :func:`report`.
"""

from __future__ import annotations

from galaxy_ray.api.catalogs import box, cone, merger_stats, open_catalog
from galaxy_ray.api.models import evaluate, infer, train
from galaxy_ray.api.predict import predict
from galaxy_ray.api.similar import oddity, similar
from galaxy_ray.api.tools import crossmatch, pack, query, report, synthesize, to_hats
from galaxy_ray.errors import GalaxyRayError

#: The stable public functions (``GalaxyRayError``, importable from here too, is in ``galaxy_ray.errors``).
__all__ = ["train", "evaluate", "infer", "predict", "open_catalog", "cone", "box", "query", "merger_stats",
           "similar", "oddity", "synthesize", "pack", "to_hats", "crossmatch", "report"]
