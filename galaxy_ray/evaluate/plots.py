"""The figures of an evaluation (PNG, any storage).

Training curves, confusion matrix, RMSE per GZ2 answer, and for the merger
flag the precision-recall curve with its operating point and reliability
diagrams before and after calibration.  Each function takes the plain
dicts of ``evaluation.json``, so the report can redraw them from that file.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Mapping, Sequence

import numpy as np

from galaxy_ray.figures import literal_text, pyplot, save_figure
from galaxy_ray.io import storage
from galaxy_ray.merger.operating import format_threshold
from galaxy_ray.tasks.classes import plot_confusion
from galaxy_ray.tasks.gz2 import plot_per_answer

__all__ = ["pyplot", "save_figure", "curves_from_csv", "plot_confusion", "plot_curves", "plot_per_answer", "plot_precision_recall",
           "plot_reliability"]


@literal_text
def plot_curves(history: Sequence[Mapping[str, Any]], uri: str, metric: str | None = None) -> None:
    """Training and validation loss per epoch, and the validation metric (``curves.png``)."""
    plt = pyplot()
    present = history[0] if history else {}
    if metric in (None, "val_loss"):  # the metric that picked the best epoch (votes: the loss, already drawn)
        metric = next((m for m in ("val_rmse", "val_fraction_rmse", "val_balanced_accuracy") if m in present),
                      "val_accuracy")
    epochs = [int(r["epoch"]) for r in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(epochs, [float(r["train_loss"]) for r in history], "o-", label="training")
    ax1.plot(epochs, [float(r["val_loss"]) for r in history], "o-", label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    frozen = [e for e, r in zip(epochs, history) if r.get("phase") == "frozen"]
    for ax in (ax1, ax2):
        if frozen:
            ax.axvspan(min(frozen) - 0.5, max(frozen) + 0.5, color="0.9", label="frozen backbone")
    ax2.plot(epochs, [float(r[metric]) for r in history], "o-", color="C2")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel(metric.replace("_", " "))
    fig.suptitle("training curves")
    save_figure(fig, uri)


def curves_from_csv(metrics_csv: str, uri: str) -> None:
    """``curves.png`` from a run's ``metrics.csv``."""
    rows = list(csv.DictReader(io.StringIO(storage.read_bytes(metrics_csv).decode("utf-8"))))
    plot_curves(rows, uri)


@literal_text
def plot_precision_recall(merger: Mapping[str, Any], uri: str) -> None:
    """Validation precision against recall of ``p_merger >= t``, with the chosen operating point.

    Parameters
    ----------
    merger : mapping
        ``evaluation.json``'s ``merger``: ``curve`` (``threshold``, ``tp``,
        ``fp``), ``positives``, and the operating point (``threshold``,
        ``precision``, ``recall`` and their ``*_interval``).
    uri : str
        Where the PNG goes (``merger_precision_recall.png``).
    """
    plt = pyplot()
    curve = merger["curve"]
    tp, fp = np.asarray(curve["tp"], dtype=float), np.asarray(curve["fp"], dtype=float)
    recall = tp / max(merger["positives"], 1)
    precision = tp / np.maximum(tp + fp, 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.plot(recall, precision, "-", color="C0", drawstyle="steps-post", label="validation")
    base = merger["positives"] / max(merger["positives"] + merger["negatives"], 1)
    ax.axhline(base, color="0.6", ls=":", label=f"base rate {base:.3f}")
    if "precision_interval" in merger:  # a fallback threshold (no validation merger) has no point to draw
        (plo, phi), (rlo, rhi) = merger["precision_interval"], merger["recall_interval"]
        # a Wilson bound at 0 or 1 can sit a rounding error inside the point; matplotlib refuses negative bars
        ax.errorbar([merger["recall"]], [merger["precision"]],
                    xerr=[[max(merger["recall"] - rlo, 0.0)], [max(rhi - merger["recall"], 0.0)]],
                    yerr=[[max(merger["precision"] - plo, 0.0)], [max(phi - merger["precision"], 0.0)]],
                    fmt="o", color="C3",
                    capsize=3, label=f"p_merger >= {format_threshold(merger['threshold'])} ({merger.get('rule', 'given')})")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall (completeness)")
    ax.set_ylabel("precision (purity)")
    ax.set_title(f"mergers: {merger['positives']} of {merger['positives'] + merger['negatives']} validation galaxies",
                 fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    save_figure(fig, uri)


def _reliability_curve(ax, rel: Mapping[str, Any], label: str, color: str) -> None:
    """One curve of :func:`plot_reliability`: points with Wilson error bars and bin counts."""
    bars = rel.get("frequency_95") or [None] * len(rel["count"])
    pairs = [(m, f, c, b) for m, f, c, b in zip(rel["mean_score"], rel["frequency"], rel["count"], bars)
             if c and m is not None]
    if not pairs:
        return
    m, f, c = (np.asarray(v, dtype=float) for v in list(zip(*pairs))[:3])
    text = f"{label} (ECE {rel['ece']:.3f}"
    if rel.get("ece_95"):
        text += f" [{rel['ece_95'][0]:.3f}, {rel['ece_95'][1]:.3f}]"
    if rel.get("log_loss") is not None:
        text += f", log loss {rel['log_loss']:.3f}"
    ax.plot(m, f, "o-", color=color, label=text + ")")
    if all(b is not None and None not in b for *_, b in pairs):
        lo, hi = np.asarray([b for *_, b in pairs], dtype=float).T
        # a Wilson bound can sit a rounding error inside the point; matplotlib refuses negative bars
        ax.errorbar(m, f, yerr=[np.maximum(f - lo, 0.0), np.maximum(hi - f, 0.0)], fmt="none", ecolor=color,
                    capsize=2, lw=0.8)
    for x, y, n in zip(m, f, c):
        ax.annotate(str(int(n)), (x, y), textcoords="offset points", xytext=(3, -10), fontsize=6, color=color)


@literal_text
def plot_reliability(before: Mapping[str, Any], after: Mapping[str, Any] | None, uri: str,
                     what: str = "p_merger") -> None:
    """Reliability diagram: observed frequency against mean predicted probability per bin.

    Parameters
    ----------
    before, after : mapping
        ``mean_score``, ``frequency``, ``count`` (per bin) and ``ece``, as in
        ``evaluation.json`` (``merger.reliability.raw`` / ``.calibrated``);
        ``after`` may be None.  With ``frequency_95`` (per bin ``[lo, hi]``,
        Wilson intervals; older reports lack it) each point gets its binomial
        error bar, and with ``log_loss`` the legend gives it.
    uri : str
        Where the PNG goes (``reliability.png``).
    what : str
        What the probability is, for the axis label.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.plot([0, 1], [0, 1], ls=":", color="0.5", label="perfectly calibrated")
    # "scored" says the calibrated curve is out of sample (cross-fitted); older reports lack it.
    after_label = "calibrated, out of sample" if after and after.get("scored") else "calibrated"
    for rel, label, color in ((before, "network output", "C1"), (after, after_label, "C0")):
        if rel is None:
            continue
        _reliability_curve(ax, rel, label, color)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"mean predicted {what} in bin")
    ax.set_ylabel("observed fraction")
    ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, uri)
