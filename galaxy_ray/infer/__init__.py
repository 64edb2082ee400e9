"""Catalog-scale inference: stream a survey through a model into a Parquet catalog.

One module per concern:

* :mod:`.plan`: which input rows go into which output file (the units a rerun skips);
* :mod:`.pipeline`: the Ray Data pipeline (read and prepare on CPUs, a pool of
  model actors) and all of its Ray-specific tuning;
* :mod:`.writer`: catalog rows, collected per unit on the driver and published
  one file per unit;
* :mod:`.run`: :func:`run_inference`, the steps in order, and the provenance;
* :mod:`.predict`: ``galaxy-ray predict``, a few files without Ray;
* :mod:`.cli`: ``galaxy-ray infer``.
"""

from __future__ import annotations

from galaxy_ray.infer.cli import build_parser, main
from galaxy_ray.infer.pipeline import CatalogModel, object_store_budget, prepare_batch, prepare_blocks
from galaxy_ray.infer.plan import DEFAULT_ROWS_PER_FILE, Plan, Unit, make_plan, plan_row_units, plan_shard_units
from galaxy_ray.infer.predict import predict_files, predict_main
from galaxy_ray.infer.run import run_inference

__all__ = [
    "DEFAULT_ROWS_PER_FILE",
    "Unit",
    "Plan",
    "plan_shard_units",
    "plan_row_units",
    "make_plan",
    "object_store_budget",
    "prepare_batch",
    "prepare_blocks",
    "CatalogModel",
    "run_inference",
    "predict_files",
    "predict_main",
    "build_parser",
    "main",
]
