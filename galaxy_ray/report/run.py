"""Report figures of a training run: curves, confusion matrix or predicted versus true, top galaxies.

What the predictions are depends on the run's task: gz2, the 37 cumulative vote fractions against the
labels; classes, class probabilities against one-hot labels (a confusion matrix); votes, a Galaxy Zoo
tree's expected conditional fractions against the vote *counts* that ``validation_predictions.parquet``
holds as ``y_true``, which the figures turn into the volunteers' observed fractions and show only for
galaxies with a vote on each question, as :func:`galaxy_ray.evaluate.votes_metrics` scores them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from galaxy_ray import tasks
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.evaluate import classes_metrics, curves_from_csv, plot_confusion
from galaxy_ray.io import storage
from galaxy_ray.io.layout import (CONFIG_JSON, CONFUSION_PNG, CURVES_PNG, METRICS_CSV, PRECISION_RECALL_PNG,
                                  RELIABILITY_PNG, VALIDATION_PREDICTIONS)
from galaxy_ray.report.images import highest, images_for, plot_image_grid
from galaxy_ray.report.page import Report, literal_text, panel_grid, short
from galaxy_ray.report.style import PANEL_FONT, TITLE_FONT, hist_weights, log_norm, panel_title, plain_log_ticks
from galaxy_ray.report.summary import model_summary
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["read_predictions", "run_figures"]

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


@dataclass(frozen=True)
class _Task:
    """How a run's outputs read in its figures: the task's words and its :class:`~galaxy_ray.tasks.base.ReportTruth`.

    ``truth.true`` is (N, K): the labels or, for vote counts, the observed conditional fractions;
    ``truth.counted`` is (N, K) bool: the galaxies with a truth for the output (a vote on its question).
    """

    task: tasks.Task
    truth: tasks.ReportTruth

    @property
    def labels(self) -> list[str]:
        """Row labels of the image grid: the output columns, or a tree's ``question: answer``."""
        return self.truth.labels

    @property
    def true(self) -> np.ndarray:
        return self.truth.true

    @property
    def counted(self) -> np.ndarray:
        return self.truth.counted

    @property
    def tree(self):
        return self.truth.tree

    @property
    def observed(self) -> bool:
        return self.truth.observed

    @property
    def titles(self) -> list[str]:
        """Panel titles, two short lines each (a tree: the question, then the answer)."""
        if self.tree is not None:
            return [f"{short(a.question, 30)}:\n{short(a.key, 30)}" for a in self.tree.answers]
        return [panel_title(label) for label in self.labels]

    @property
    def values(self) -> str:
        return self.task.report_value


def _predicted_vs_true(rep: Report, task: _Task, y_pred: np.ndarray) -> None:
    """One hexbin panel per answer, with the 1:1 line and the answer's RMSE, on one shared colour scale.

    votes: only the galaxies with a vote on the answer's question (``task.counted``), against their
    observed conditional fraction; the RMSE over them is the panel's share of ``votes_metrics``'s.
    """
    n = len(task.labels)
    fig, axes = panel_grid(n, 2.6, layout="constrained")
    pairs = [(task.true[task.counted[:, i], i], y_pred[task.counted[:, i], i]) for i in range(n)]
    lo, hi = task.task.value_range(task.true[task.counted], y_pred[task.counted])
    counts = [np.histogram2d(t, p, bins=15, range=((lo, hi), (lo, hi)))[0].max() for t, p in pairs]
    norm = log_norm(max(counts, default=1))
    hb = None
    votes, word = task.observed, task.values.split()[-1]
    for ax, title, (t, p) in zip(axes, task.titles, pairs):
        hb = ax.hexbin(t, p, gridsize=15, extent=(lo, hi, lo, hi), mincnt=1, cmap="viridis", norm=norm)
        ax.plot([lo, hi], [lo, hi], "r-", lw=0.8)
        rmse = f"RMSE {np.sqrt(np.mean((t - p) ** 2)):.3f}" if len(t) else "no votes"
        # votes: a third line, with the number of galaxies that had a vote on the question
        ax.set_title(f"{title}\n{rmse} ({len(t)} galaxies)" if votes else f"{title}  ({rmse})", fontsize=TITLE_FONT)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"observed {word}" if votes else f"true {word}", fontsize=PANEL_FONT)
        ax.set_ylabel(f"predicted {word}", fontsize=PANEL_FONT)
        ax.tick_params(labelsize=PANEL_FONT - 1)
    if hb is not None:
        bar = fig.colorbar(hb, ax=axes, shrink=0.5, aspect=40, label="validation galaxies per hexagon (log scale)")
        plain_log_ticks(bar.ax.yaxis)
    if votes:
        title = "Predicted versus observed conditional vote fractions"
        caption = (f"Validation galaxies, one panel per answer of the {task.tree.title} tree: the volunteers' "
                   "conditional vote fraction (the answer's votes over its question's) against the model's "
                   "expected fraction, for the galaxies with at least one vote on the question (the RMSE over "
                   "them and their number under each title); hexagons coloured by their count on one log scale "
                   "(colour bar); red: the 1:1 line.")
    else:
        title = f"Predicted versus true {task.task.report_plural}"
        caption = task.task.report_panel_caption
    rep.save(fig, "predicted_vs_true.png", title, caption)


def _prediction_histograms(rep: Report, task: _Task, y_pred: np.ndarray) -> None:
    """Histograms of each output's predictions against the true values, as fractions of the galaxies counted."""
    fig, axes = panel_grid(len(task.labels), 2.4, layout="constrained")
    lo, hi = task.task.value_range(task.true[task.counted], y_pred[task.counted])
    bins = np.linspace(lo, hi, 21)
    for i, (ax, title) in enumerate(zip(axes, task.titles)):
        t, p = task.true[task.counted[:, i], i], y_pred[task.counted[:, i], i]
        weights = hist_weights(t)
        ax.hist(t, bins=bins, weights=weights, color="0.75", label="observed" if task.observed else "true")
        ax.hist(p, bins=bins, weights=weights, histtype="step", color="C3", lw=1.2, label="predicted")
        ax.set_title(title, fontsize=TITLE_FONT)
        ax.set_xlabel(task.values, fontsize=PANEL_FONT)
        ax.set_ylabel("fraction of galaxies", fontsize=PANEL_FONT)
        ax.tick_params(labelsize=PANEL_FONT - 1)
    axes[0].legend(fontsize=PANEL_FONT)
    plural = task.task.report_plural
    which = ("the validation galaxies with a vote on the answer's question (observed: the volunteers' fractions)"
             if task.observed else "the validation galaxies")
    rep.save(fig, "prediction_histograms.png", f"Histograms of predicted {plural}",
             f"Predicted {plural} (red) against the true values (grey) of {which}, each bar "
             f"the fraction of them in its bin of width {(hi - lo) / 20:.3g}.")


def _top_predictions(rep: Report, task: _Task, ids: np.ndarray, y_pred: np.ndarray, source: str | None, top: int,
                     source_options: dict | None = None) -> None:
    """The ``top`` galaxies with the highest prediction of each output, predicted and true value under each.

    Only galaxies whose volunteers were asked the question compete for its answers (``task.counted``):
    a galaxy never asked about a bar says nothing about "bar: no".
    """
    best = highest(np.where(task.counted, y_pred, -np.inf), top)
    images = {}
    if source:
        try:
            images = images_for(source, {str(ids[j]) for j in best.ravel()}, source_options)
        except GalaxyRayError as exc:
            rep.notes.append(f"images of the top galaxies not shown: {exc}")

    def text(j: int, i: int) -> str:
        true = f"{task.true[j, i]:.2f}" if task.counted[j, i] else "no votes"
        return f"{y_pred[j, i]:.2f} / {true}"

    rows = [(label, [(str(ids[j]), text(j, i)) for j in best[i]]) for i, label in enumerate(task.labels)]
    true = "the observed conditional fraction" if task.observed else "the true value"
    plot_image_grid(rep, rows, images, "top_predictions.png", "Top galaxies per answer or class",
                    f"The {top} validation galaxies with the highest predicted value of each output, among "
                    "those whose volunteers were asked the question (votes runs), "
                    f"with the predicted / {true} above each image.")


def _has_frozen_phase(metrics_uri: str) -> bool:
    """True when ``metrics.csv`` records an epoch with the backbone frozen (its ``phase`` column)."""
    import csv
    import io as _io

    try:
        rows = csv.DictReader(_io.StringIO(storage.read_bytes(metrics_uri).decode()))
        return any(r.get("phase") == "frozen" for r in rows)
    except (OSError, UnicodeDecodeError):
        return False


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
    """Curves, confusion matrix or predicted vs true, top images and prediction histograms of a run.

    A votes run's predicted vs true figure is of its tree's conditional fractions (see the module).
    Images come from ``source``, else from the source in the run's ``config.json``, opened with
    ``source_options`` (:func:`galaxy_ray.data.sources.source_options`).

    Raises
    ------
    GalaxyRayError
        ``config.json`` or ``validation_predictions.parquet`` is missing or unreadable, or a votes
        run names no known tree or has predictions of another width.
    """
    rep.say(f"run {run_dir}: drawing {CURVES_PNG}")
    curves_from_csv(storage.join(run_dir, METRICS_CSV), storage.join(rep.out, CURVES_PNG))
    frozen = _has_frozen_phase(storage.join(run_dir, METRICS_CSV))
    rep.add(CURVES_PNG, "Training and validation curves",
            "Loss per epoch (training, validation: the task's loss per galaxy, lower is better; for a votes run "
            "the Dirichlet-multinomial negative log-likelihood of the volunteers' counts, which grows with the "
            "number of votes, so compare it between epochs, not between surveys) and the validation metric"
            + ("; grey: epochs with the backbone frozen (--freeze-epochs)." if frozen else "."))
    _merger_figures(rep, run_dir)
    config = _read_json(storage.join(run_dir, CONFIG_JSON))
    rep.summary += model_summary(run_dir, config)
    spec = config.get("spec", {})
    task = tasks.get(spec.get("task") or config.get("config", {}).get("task") or tasks.DEFAULT_TASK)
    names = list(spec.get("output_names") or config.get("output_columns") or [])
    ids, y_true, y_pred = read_predictions(storage.join(run_dir, VALIDATION_PREDICTIONS))
    ok = ~np.isnan(y_pred).any(axis=1) & task.usable_truth(y_true) if y_pred.size else np.zeros(0, bool)
    ids, y_true, y_pred = ids[ok], y_true[ok], y_pred[ok]
    if not len(ids):
        rep.notes.append(f"{run_dir}: no validation predictions; prediction figures skipped")
        return
    rep.notes.append(f"run {run_dir}: task {task.name}, {len(ids)} validation galaxies")
    if len(names) != y_pred.shape[1]:
        names = [f"output {i}" for i in range(y_pred.shape[1])]
    where = (storage.join(run_dir, CONFIG_JSON), storage.join(run_dir, VALIDATION_PREDICTIONS))
    outputs = _Task(task, task.report_truth(spec, names, y_true, where))
    if outputs.tree is not None and outputs.observed:
        rep.notes[-1] += f" (tree {outputs.tree.name})"
    if task.report_figure == "predicted_vs_true":
        _predicted_vs_true(rep, outputs, y_pred)
    else:
        metrics = classes_metrics(y_true.argmax(axis=1), y_pred, names)
        rep.say(f"drawing {CONFUSION_PNG}")
        plot_confusion(metrics, storage.join(rep.out, CONFUSION_PNG))
        rep.add(CONFUSION_PNG, "Confusion matrix",
                "Validation galaxies, rows normalised by the true class; counts in the cells.")
    _prediction_histograms(rep, outputs, y_pred)
    rep.say(f"reading the top galaxies' cutouts from {source or config.get('config', {}).get('source')}")
    _top_predictions(rep, outputs, ids, y_pred, source or config.get("config", {}).get("source"), top,
                     source_options)
