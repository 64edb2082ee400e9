"""Every file name galaxy-ray writes or looks for, in one place.

A training run directory (``<storage>/<name>/``) holds the best model, the
per-epoch metrics and figures, and the configuration.  A catalog directory
holds ``part-NNNNN.parquet`` files and a ``_catalog.json`` summary; a pack
directory holds ``part-NNNNN.parquet`` shards and a ``_pack.json`` plan.
"""

from __future__ import annotations

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage

# A training run directory.
MODEL = "model.pt"
#: The best epoch's weights while the end of a run calibrates them; gone once ``model.pt`` is published.
STAGED_MODEL = "model.uncalibrated.pt"
TRAIN_STATE = "train_state.pt"
METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"
CONFIG_JSON = "config.json"
EVALUATION_JSON = "evaluation.json"
VALIDATION_PREDICTIONS = "validation_predictions.parquet"
# An evaluation directory (``galaxy-ray evaluate --out``), and the figures beside evaluation.json.
PREDICTIONS = "predictions.parquet"
CONFUSION_PNG = "confusion_matrix.png"
RMSE_PER_ANSWER_PNG = "rmse_per_answer.png"
PRECISION_RECALL_PNG = "merger_precision_recall.png"
RELIABILITY_PNG = "reliability.png"

# A catalog directory, and a directory of packed shards.
PART_PREFIX = "part-"
PART_SUFFIX = ".parquet"
CATALOG_SUMMARY = "_catalog.json"
#: The footer summary beside a catalog's files (the Parquet ``_metadata`` convention).
CATALOG_METADATA = "_metadata"
#: What made a catalog's rows (galaxy_ray.infer.run_key): written before its first file.
RUN_KEY = "_run_key.json"
PACK_PLAN = "_pack.json"


def part_name(index: int) -> str:
    """File name of output unit ``index``: ``part-00000.parquet``, ``part-00001.parquet``, ..."""
    return f"{PART_PREFIX}{int(index):05d}{PART_SUFFIX}"


def is_run_dir(uri: str) -> bool:
    """True when ``uri`` is a training run directory (it holds ``metrics.csv``)."""
    return storage.exists(storage.join(uri, METRICS_CSV))


def is_catalog_dir(uri: str) -> bool:
    """True when ``uri`` is a catalog directory (it holds ``_catalog.json``)."""
    return storage.exists(storage.join(uri, CATALOG_SUMMARY))


def checkpoint_file(uri: str) -> str:
    """The checkpoint file itself: ``uri``, or the ``model.pt`` in a run directory.

    Raises
    ------
    GalaxyRayError
        Neither exists.
    """
    if storage.isdir(uri):
        uri = storage.join(uri, MODEL)
    if not storage.exists(uri):
        raise GalaxyRayError(f"{uri}: no such checkpoint; give the model.pt that `galaxy-ray train` wrote")
    return uri
