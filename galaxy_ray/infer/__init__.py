"""Catalog-scale inference: stream a survey through a model into a Parquet catalog.

One module per concern:

* :mod:`.plan`: which input rows go into which output file (the units a rerun skips);
* :mod:`.prepare`: the CPU stage, reading and decoding cutouts for the model;
* :mod:`.pipeline`: the Ray Data pipeline (read and prepare on CPUs, a pool of
  model actors) and all of its Ray-specific tuning;
* :mod:`.rows`: one batch's catalog rows, made in the model actors;
* :mod:`.writer`: those rows, collected per unit on the driver and published
  one file per unit;
* :mod:`.run`: :func:`run_inference`, the steps in order, and the provenance;
* :mod:`.predict`: ``galaxy-ray predict``, a few files without Ray;
* :mod:`.cli`: ``galaxy-ray infer``.

The names below are loaded on first use (PEP 562): Ray's workers import
:mod:`.prepare` and :mod:`.pipeline` through this package, and a decode
worker that imported the command line and the catalog package with it spent
a second of a small job's start-up doing so.
"""

from __future__ import annotations

import importlib

#: Each public name and the module that defines it.
_EXPORTS = {
    "DEFAULT_ROWS_PER_FILE": "plan",
    "Unit": "plan",
    "Plan": "plan",
    "plan_shard_units": "plan",
    "plan_row_units": "plan",
    "make_plan": "plan",
    "prepare_batch": "prepare",
    "prepare_blocks": "prepare",
    "object_store_budget": "pipeline",
    "CatalogModel": "pipeline",
    "run_inference": "run",
    "predict_files": "predict",
    "predict_main": "predict",
    "build_parser": "cli",
    "main": "cli",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
