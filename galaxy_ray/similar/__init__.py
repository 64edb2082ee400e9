"""Galaxies like a given one: embeddings in the catalog, exact similarity search and an oddity score.

Modules: :mod:`~galaxy_ray.similar.pca` (the projection, numpy),
:mod:`~galaxy_ray.similar.embed` (the ``embedding`` column written by ``infer --embeddings``),
:mod:`~galaxy_ray.similar.search` (exact, chunked search and the k-th-neighbour oddity) and
:mod:`~galaxy_ray.similar.cli` (``galaxy-ray similar``).  See ``docs/similar.md``.
"""
