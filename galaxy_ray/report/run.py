"""Report figures of a training run: curves, confusion matrix or predicted versus true, top galaxies."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.evaluate import classes_metrics, curves_from_csv, plot_confusion
from galaxy_ray.io import storage
from galaxy_ray.io.layout import (CONFIG_JSON, CONFUSION_PNG, CURVES_PNG, METRICS_CSV, PRECISION_RECALL_PNG,
                                  RELIABILITY_PNG, VALIDATION_PREDICTIONS)
from galaxy_ray.report.images import highest, images_for, plot_image_grid
from galaxy_ray.report.page import Report, literal_text, panel_grid
from galaxy_ray.report.style import PANEL_FONT, TITLE_FONT, hist_weights, log_norm, panel_title, plain_log_ticks
from galaxy_ray.report.summary import model_summary
from galaxy_ray.schema import GZ2_ANSWER_COLUMNS, GZ2_KAGGLE_COLUMNS, CatalogColumns as C

__all__ = ["read_predictions", "run_figures"]

#: The confusion matrix figure of a classes run.


def _read_json(uri: str) -> dict:
    try:
        return json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        raise GalaxyRayError(f"{uri}: missing; is this a complete training run directory?") from None
    except json.JSONDecodeError as exc:
        raise GalaxyRayError(f"{uri}: not valid JSON ({exc})") from None


def read_predictions(uri: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Object ids (N,), true values (N, K) and predictions (N, K) of ``validation_predictions.parquet``.

    Rows whose list length differs from the others' are NaN.

    Raises
    ------
    GalaxyRayError
        The file is missing.
    """
    fs, path = storage.pyarrow_filesystem(uri)
    try:
        t = pq.read_table(path, filesystem=fs)
    except FileNotFoundError:
        raise GalaxyRayError(f"{uri}: missing; the run's evaluation did not finish") from None
    ids = np.array([str(v) for v in t.column(C.OBJECT_ID).to_pylist()], dtype=object)

    def matrix(name: str) -> np.ndarray:
        rows = t.column(name).to_pylist()
        width = max((len(r) for r in rows if r is not None), default=0)
        return np.array([r if r is not None and len(r) == width else [np.nan] * width for r in rows],
                        dtype=np.float64).reshape(len(rows), width)

    return ids, matrix("y_true"), matrix("y_pred")


def _predicted_vs_true(rep: Report, columns: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> None:
    """One hexbin panel per GZ2 answer, with the 1:1 line and the answer's RMSE, on one shared colour scale."""
    fig, axes = panel_grid(len(columns), 2.6, layout="constrained")
    counts = [np.histogram2d(y_true[:, i], y_pred[:, i], bins=15, range=((0, 1), (0, 1)))[0].max()
              for i in range(len(columns))]
    norm = log_norm(max(counts, default=1))
    hb = None
    for i, (ax, name) in enumerate(zip(axes, columns)):
        hb = ax.hexbin(y_true[:, i], y_pred[:, i], gridsize=15, extent=(0, 1, 0, 1), mincnt=1, cmap="viridis",
                       norm=norm)
        ax.plot([0, 1], [0, 1], "r-", lw=0.8)
        rmse = float(np.sqrt(np.mean((y_true[:, i] - y_pred[:, i]) ** 2)))
        ax.set_title(f"{panel_title(name)}  (RMSE {rmse:.3f})", fontsize=TITLE_FONT)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("true fraction", fontsize=PANEL_FONT)
        ax.set_ylabel("predicted fraction", fontsize=PANEL_FONT)
        ax.tick_params(labelsize=PANEL_FONT - 1)
    if hb is not None:
        bar = fig.colorbar(hb, ax=axes, shrink=0.5, aspect=40, label="validation galaxies per hexagon (log scale)")
        plain_log_ticks(bar.ax.yaxis)
    rep.save(fig, "predicted_vs_true.png", "Predicted versus true vote fractions",
             "Validation galaxies, one panel per GZ2 answer: true against predicted cumulative vote fraction, "
             "hexagons coloured by their count on one log scale (colour bar); red: the 1:1 line.")


def _prediction_histograms(rep: Report, columns: list[str], y_true: np.ndarray, y_pred: np.ndarray,
                           task: str) -> None:
    """Histograms of each output's predictions against the true values, as fractions of the galaxies."""
    fig, axes = panel_grid(len(columns), 2.4, layout="constrained")
    bins = np.linspace(0, 1, 21)
    what = "vote fraction" if task == "gz2" else "probability"
    weights = hist_weights(y_true)
    for i, (ax, name) in enumerate(zip(axes, columns)):
        ax.hist(y_true[:, i], bins=bins, weights=weights, color="0.75", label="true")
        ax.hist(y_pred[:, i], bins=bins, weights=weights, histtype="step", color="C3", lw=1.2, label="predicted")
        ax.set_title(panel_title(name), fontsize=TITLE_FONT)
        ax.set_xlabel(what, fontsize=PANEL_FONT)
        ax.set_ylabel("fraction of galaxies", fontsize=PANEL_FONT)
        ax.tick_params(labelsize=PANEL_FONT - 1)
    axes[0].legend(fontsize=PANEL_FONT)
    plural = "vote fractions" if task == "gz2" else "class probabilities"
    rep.save(fig, "prediction_histograms.png", f"Histograms of predicted {plural}",
             f"Predicted {plural} (red) against the true values (grey) of the validation galaxies, each bar "
             "the fraction of them in its bin of width 0.05.")


def _top_predictions(rep: Report, columns: list[str], ids: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                     source: str | None, top: int, source_options: dict | None = None) -> None:
    """The ``top`` galaxies with the highest prediction of each output, predicted and true value under each."""
    best = highest(y_pred, top)
    images = {}
    if source:
        try:
            images = images_for(source, {str(ids[j]) for j in best.ravel()}, source_options)
        except GalaxyRayError as exc:
            rep.notes.append(f"images of the top galaxies not shown: {exc}")
    rows = [(name, [(str(ids[j]), f"{y_pred[j, i]:.2f} / {y_true[j, i]:.2f}") for j in best[i]])
            for i, name in enumerate(columns)]
    plot_image_grid(rep, rows, images, "top_predictions.png", "Top galaxies per answer or class",
                    f"The {top} validation galaxies with the highest predicted value of each output, "
                    "with the predicted / the true value above each image.")


def _merger_figures(rep, run_dir: str) -> None:
    """The merger flag's figures that training's evaluation drew on validation, when the run has them."""
    for name, title, caption in (
        (PRECISION_RECALL_PNG, "Merger flag: precision and recall",
         "Validation galaxies; the dot is the operating threshold stored in model.pt (its intervals: 95% Wilson)."),
        (RELIABILITY_PNG, "Calibration of p_merger",
         "Observed merger frequency against p_merger in bins, before and after the calibration fitted on validation."),
    ):
        uri = storage.join(run_dir, name)
        if storage.exists(uri):
            storage.write_bytes_atomic(storage.join(rep.out, name), storage.read_bytes(uri))
            rep.add(name, title, caption)


@literal_text
def run_figures(rep: Report, run_dir: str, source: str | None = None, top: int = 4,
                source_options: dict | None = None) -> None:
    """Curves, confusion matrix, predicted vs true, top images and prediction histograms of a run.

    Images come from ``source``, else from the source in the run's ``config.json``, opened with
    ``source_options`` (:func:`galaxy_ray.data.sources.source_options`).

    Raises
    ------
    GalaxyRayError
        ``config.json`` or ``validation_predictions.parquet`` is missing or unreadable.
    """
    rep.say(f"run {run_dir}: drawing {CURVES_PNG}")
    curves_from_csv(storage.join(run_dir, METRICS_CSV), storage.join(rep.out, CURVES_PNG))
    rep.add(CURVES_PNG, "Training and validation curves",
            "Loss per epoch (training, validation) and the validation metric; grey: frozen backbone.")
    _merger_figures(rep, run_dir)
    config = _read_json(storage.join(run_dir, CONFIG_JSON))
    rep.summary += model_summary(run_dir, config)
    spec = config.get("spec", {})
    task = spec.get("task") or config.get("config", {}).get("task", "gz2")
    names = list(spec.get("output_names") or config.get("output_columns") or [])
    ids, y_true, y_pred = read_predictions(storage.join(run_dir, VALIDATION_PREDICTIONS))
    ok = ~(np.isnan(y_pred).any(axis=1) | np.isnan(y_true).any(axis=1)) if y_pred.size else np.zeros(0, bool)
    ids, y_true, y_pred = ids[ok], y_true[ok], y_pred[ok]
    if not len(ids):
        rep.notes.append(f"{run_dir}: no validation predictions; prediction figures skipped")
        return
    if len(names) != y_pred.shape[1]:
        names = [f"output {i}" for i in range(y_pred.shape[1])]
    columns = list(GZ2_ANSWER_COLUMNS) if task == "gz2" and len(names) == len(GZ2_ANSWER_COLUMNS) else names
    rep.notes.append(f"run {run_dir}: task {task}, {len(ids)} validation galaxies")
    if task != "gz2":
        metrics = classes_metrics(y_true.argmax(axis=1), y_pred, names)
        rep.say(f"drawing {CONFUSION_PNG}")
        plot_confusion(metrics, storage.join(rep.out, CONFUSION_PNG))
        rep.add(CONFUSION_PNG, "Confusion matrix",
                "Validation galaxies, rows normalised by the true class; counts in the cells.")
    else:
        _predicted_vs_true(rep, columns, y_true, y_pred)
    _prediction_histograms(rep, columns, y_true, y_pred, task)
    rep.say(f"reading the top galaxies' cutouts from {source or config.get('config', {}).get('source')}")
    _top_predictions(rep, columns, ids, y_true, y_pred, source or config.get("config", {}).get("source"), top,
                     source_options)
