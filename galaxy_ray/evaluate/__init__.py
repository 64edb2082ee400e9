"""Evaluate a trained model on labelled cutouts (``galaxy-ray evaluate``, and the figures of a training run).

``metrics``
    RMSE per GZ2 answer, accuracy / balanced accuracy / confusion matrix,
    merger precision and recall, each beside its baseline.
``plots``
    Training curves, confusion matrix, RMSE per answer.
``core``
    Predictions through Ray Data, the report files, :func:`evaluate_checkpoint` (the library
    under the command, training's end and :func:`galaxy_ray.api.evaluate`).
``run``
    The ``galaxy-ray evaluate`` command.
"""

from galaxy_ray.evaluate.metrics import classes_metrics, gz2_metrics, merger_metrics
from galaxy_ray.evaluate.plots import (curves_from_csv, plot_confusion, plot_curves, plot_per_answer,
                                       plot_precision_recall, plot_reliability)
from galaxy_ray.evaluate.core import (
    checkpoint_split,
    evaluate_checkpoint,
    evaluate_predictions,
    headline,
    merger_report,
    predict_labelled,
    write_predictions,
    write_report,
)
from galaxy_ray.evaluate.run import build_parser, main

__all__ = [
    "build_parser",
    "checkpoint_split",
    "classes_metrics",
    "curves_from_csv",
    "evaluate_checkpoint",
    "evaluate_predictions",
    "gz2_metrics",
    "headline",
    "main",
    "merger_metrics",
    "merger_report",
    "plot_confusion",
    "plot_curves",
    "plot_per_answer",
    "plot_precision_recall",
    "plot_reliability",
    "predict_labelled",
    "write_predictions",
    "write_report",
]
