"""galaxy-ray: galaxy morphology catalogs at survey scale with Ray.

The public Python API is :mod:`galaxy_ray.api` (``docs/api.md``)::

    from galaxy_ray import api as gr
    gr.train(...); gr.infer(...); gr.predict(...); gr.cone(...)

The catalog functions and ``predict`` are also loaded from the package itself
on first use (PEP 562: ``galaxy_ray.cone``, ``galaxy_ray.open_catalog``), so
``import galaxy_ray`` and ``galaxy-ray query`` stay free of torch and Ray.
``train``, ``evaluate`` and ``infer`` are only in :mod:`galaxy_ray.api`:
``galaxy_ray.train`` (and ``.evaluate``, ``.infer``) name the stage packages.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Names of :mod:`galaxy_ray.api` also reachable as ``galaxy_ray.<name>`` (loaded on first use).
LAZY_API = ("predict", "open_catalog", "cone", "box", "merger_stats", "GalaxyRayError")

__all__ = ["__version__", *LAZY_API]


def __getattr__(name: str):
    if name in LAZY_API:
        return getattr(importlib.import_module("galaxy_ray.api"), name)
    raise AttributeError(f"module 'galaxy_ray' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LAZY_API))
