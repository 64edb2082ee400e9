"""The figures of an evaluation: training curves, confusion matrix, RMSE per GZ2 answer (PNG, any storage)."""

from __future__ import annotations

import csv
import io
from typing import Any, Mapping, Sequence

import numpy as np

from galaxy_ray.io import storage

__all__ = ["curves_from_csv", "plot_confusion", "plot_curves", "plot_per_answer"]


def _save_figure(fig, uri: str) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    storage.write_bytes_atomic(uri, buf.getvalue())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[Mapping[str, Any]], uri: str, metric: str | None = None) -> None:
    """Training and validation loss per epoch, and the validation metric (``curves.png``)."""
    plt = _pyplot()
    if metric is None:
        metric = "val_rmse" if history and "val_rmse" in history[0] else "val_accuracy"
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
    _save_figure(fig, uri)


def curves_from_csv(metrics_csv: str, uri: str) -> None:
    """``curves.png`` from a run's ``metrics.csv``."""
    rows = list(csv.DictReader(io.StringIO(storage.read_bytes(metrics_csv).decode("utf-8"))))
    plot_curves(rows, uri)


def plot_confusion(classes: Mapping[str, Any], uri: str) -> None:
    """Row-normalised confusion matrix with counts (``confusion_matrix.png``)."""
    plt = _pyplot()
    cm = np.asarray(classes["confusion_matrix"], dtype=np.float64)
    names = classes["class_names"]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = 2.5 + 0.55 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {classes['accuracy']:.3f}, balanced {classes['balanced_accuracy']:.3f}")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    _save_figure(fig, uri)


def plot_per_answer(gz2: Mapping[str, Any], uri: str) -> None:
    """RMSE per GZ2 answer, model next to the mean baseline (``rmse_per_answer.png``)."""
    plt = _pyplot()
    names = list(gz2["per_answer"])
    model = [gz2["per_answer"][n]["rmse"] for n in names]
    base = [gz2["per_answer"][n]["baseline_rmse"] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(13, 4))
    ax.bar(x - 0.2, base, 0.4, label=f"mean baseline ({gz2['baseline_rmse']:.4f})", color="0.7")
    ax.bar(x + 0.2, model, 0.4, label=f"model ({gz2['rmse']:.4f})", color="C0")
    ax.set_xticks(x, names, rotation=90)
    ax.set_ylabel("RMSE of the cumulative vote fraction")
    ax.legend()
    _save_figure(fig, uri)
