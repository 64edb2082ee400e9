"""``classes``: K class logits, read as probabilities by softmax.

Targets are class indices (int64) of the labels the run saw; the loss cross-entropy with
optional per-class weights and label smoothing; the monitored metric balanced accuracy.
Class probabilities are temperature-scaled on validation at the end of training, and a
true merger is a galaxy labelled with the merger class.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from galaxy_ray import schema
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.figures import literal_text, pyplot, save_figure
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.tasks.base import Task

__all__ = ["plot_confusion", "classes_metrics", "ClassesTask"]


class ClassesTask(Task):
    """Class probabilities (see the module's text).

    The monitored metric is balanced accuracy (mean per-class recall), not accuracy, which
    rewards predicting the majority class and on an imbalanced set keeps the epoch that
    never predicts the rare class.  Not macro-F1 either: F1 needs each class's precision,
    which for a class of a few validation galaxies swings with every stray false positive
    among thousands of others, and depends on the base rate; the merger flag's precision is
    set afterwards by its threshold, chosen on validation.
    """

    name = "classes"
    summary = "the classes of a label column"
    default_label = C.LABEL
    target_dtype = "int64"
    monitor = ("val_balanced_accuracy", "max")
    temperature = True
    takes_class_weights = True

    def missing_label_hint(self) -> str:
        return "pass --label-column"

    def labelled(self, values: np.ndarray, output_names: Sequence[str] | None = None) -> np.ndarray:
        """Set, and (given the model's classes) one of them."""
        known = super().labelled(values)
        if output_names is not None:
            names = set(output_names)
            known &= np.array([str(v) in names for v in values], dtype=bool)
        return known

    def targets(self, values: np.ndarray, output_names: Sequence[str]) -> np.ndarray:
        index = {n: i for i, n in enumerate(output_names)}
        return np.array([index[str(v)] for v in values], dtype=np.int64)

    def target_matrix(self, values: np.ndarray, output_names: Sequence[str]) -> np.ndarray:
        y = np.zeros((len(values), len(output_names)), dtype=np.float32)
        y[np.arange(len(values)), self.targets(values, output_names)] = 1.0
        return y

    def summarize(self, summary, values: np.ndarray, is_val: np.ndarray, cfg) -> None:
        """The classes (Galaxy10's ten in their order when the labels are among them), counts, majority baseline."""
        names = sorted({str(v) for v in values})
        if set(names) <= set(schema.GALAXY10_CLASSES):
            names = list(schema.GALAXY10_CLASSES)  # keep the standard order and all ten columns
        if len(names) < 2:
            raise GalaxyRayError(f"{cfg.source}: column {cfg.label!r} has a single class {names}; need at least 2")
        labels = np.array([str(v) for v in values], dtype=object)
        counts = [int((labels[~is_val] == n).sum()) for n in names]
        summary.class_names, summary.class_counts = names, counts
        majority = names[int(np.argmax(counts))]
        summary.baseline_val_accuracy = float((labels[is_val] == majority).mean())

    def outputs(self, cfg, summary) -> dict[str, Any]:
        return {"output_names": list(summary.class_names), "merger": self.default_merger(cfg, summary.class_names)}

    def default_merger(self, cfg, names: Sequence[str] | None) -> str | None:
        """``--merger``, Galaxy10's merger class, or the first class whose name says merger."""
        if cfg.merger:
            return cfg.merger
        if schema.GALAXY10_MERGER_CLASS in names:
            return schema.GALAXY10_MERGER_CLASS
        return next((n for n in names if "merg" in n.lower()), None)

    def check_spec(self, spec) -> None:
        if len(spec.output_names) < 2:
            raise GalaxyRayError(f"classes task needs at least 2 classes, got {spec.output_names}")

    # ------------------------------------------------------------------ network

    def probabilities(self, net, out):
        import torch

        return torch.softmax(out, dim=1)

    def loss(self, spec, class_weights: Sequence[float] | None = None, label_smoothing: float = 0.0):
        """Cross-entropy on class indices, with optional per-class weights and label smoothing.

        Raises
        ------
        GalaxyRayError
            ``label_smoothing`` outside [0, 1), or not one weight per class.
        """
        import torch
        from torch import nn

        if not 0.0 <= label_smoothing < 1.0:
            raise GalaxyRayError(f"--label-smoothing {label_smoothing}: must be in [0, 1)")
        weight = None
        if class_weights is not None:
            if len(class_weights) != spec.num_outputs:
                raise GalaxyRayError(f"--class-weights: {len(class_weights)} values for {spec.num_outputs} classes")
            weight = torch.tensor(list(class_weights), dtype=torch.float32)
        ce = nn.CrossEntropyLoss(weight=weight, label_smoothing=float(label_smoothing))

        def loss(out, target):
            if ce.weight is not None and ce.weight.device != out.device:
                ce.to(out.device)
            return ce(out.float(), target.long())

        return loss

    def validation_step(self, sums, net, out, target) -> None:
        """Per-class hits and support (``sums.hits``/``sums.support``, torch float64 (K,) during the pass)."""
        import torch

        y = target.long().cpu()
        correct = (out.argmax(dim=1).cpu() == y).double()
        sums.hits.index_add_(0, y, correct)
        sums.support.index_add_(0, y, torch.ones_like(correct))

    def validation_metrics(self, sums, num_outputs: int) -> dict[str, float]:
        """Accuracy and balanced accuracy: the mean recall over the classes present in validation
        (Brodersen et al. 2010)."""
        present = sums.support > 0
        recall = sums.hits[present] / sums.support[present]
        return {"val_accuracy": float(sums.hits.sum() / max(sums.samples, 1)),
                "val_balanced_accuracy": float(recall.mean()) if present.any() else float("nan")}

    # ------------------------------------------------------------------ reading outputs

    def output_columns(self, spec) -> list[str]:
        return schema.class_columns(spec.output_names)  # distinct even where two class names slugify alike

    def column_meaning(self, spec) -> str:
        scaled = (spec.calibration or {}).get("probabilities")
        return "class probabilities (softmax" + (
            ", temperature-scaled on the training run's validation split)" if scaled else ")")

    def output_descriptions(self, output_names: Sequence[str], calibration: Mapping | None,
                            tree: str | None) -> dict[str, str]:
        scaled = (", temperature-scaled on the training run's validation split"
                  if (calibration or {}).get("probabilities") else "")
        out = {column: f"probability of class {n!r} (softmax{scaled})"
               for column, n in zip(schema.class_columns(output_names), output_names)}
        out[C.MORPHOLOGY] = "the most probable class"
        return out

    def morphology(self, spec, probs: np.ndarray) -> np.ndarray:
        """The most probable class."""
        names = np.asarray(spec.output_names, dtype=object)
        return names[np.argmax(probs, axis=1)]

    def morphology_probability(self, spec, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        index = {name: i for i, name in enumerate(spec.output_names)}
        rows = np.array([index[str(label)] for label in labels], dtype=np.int64)
        return probs[np.arange(len(probs)), rows].astype(np.float32)

    # ------------------------------------------------------------------ evaluation and report

    def metrics(self, spec, y_true, y_pred, train_mean, class_counts) -> dict[str, Any]:
        return classes_metrics(np.asarray(y_true).argmax(axis=1), y_pred, spec.output_names, class_counts)

    def headline(self, section: Mapping[str, Any], split: str) -> str:
        return (f"{split} accuracy {section['accuracy']:.3f} (balanced {section['balanced_accuracy']:.3f}) vs "
                f"{section['baseline_accuracy']:.3f} for the majority baseline ({section['rows']} galaxies)")

    def plots(self, section: Mapping[str, Any], out: str) -> list[str]:
        from galaxy_ray.io import layout, storage

        written = [storage.join(out, layout.CONFUSION_PNG)]
        plot_confusion(section, written[0])
        return written


def _num(x: float) -> float | None:
    """A JSON number, or None for NaN."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) or np.isnan(x) else float(x)


def classes_metrics(true_index: np.ndarray, probs: np.ndarray, names: Sequence[str],
                    class_counts: Sequence[int] | None = None) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class precision/recall and the confusion matrix.

    ``confusion[i][j]`` counts galaxies of true class i predicted as j.
    """
    true_index = np.asarray(true_index, dtype=np.int64)
    pred = np.asarray(probs).argmax(axis=1)
    k = len(names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (true_index, pred), 1)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    diag = np.diag(confusion)
    recall = np.where(support > 0, diag / np.maximum(support, 1), np.nan)
    precision = np.where(predicted > 0, diag / np.maximum(predicted, 1), np.nan)
    present = support > 0
    majority = int(np.argmax(class_counts)) if class_counts is not None else int(np.argmax(support))
    return {
        "rows": int(len(true_index)),
        "accuracy": float((pred == true_index).mean()) if len(pred) else float("nan"),
        "balanced_accuracy": float(np.nanmean(recall[present])) if present.any() else float("nan"),
        "baseline_accuracy": float((true_index == majority).mean()) if len(pred) else float("nan"),
        "baseline": f"majority class ({names[majority]})",
        "chance_accuracy": 1.0 / k,
        "per_class": {
            name: {"precision": _num(precision[i]), "recall": _num(recall[i]), "support": int(support[i])}
            for i, name in enumerate(names)
        },
        "class_names": list(names),
        "confusion_matrix": confusion.tolist(),
    }




@literal_text
def plot_confusion(classes: Mapping[str, Any], uri: str) -> None:
    """Row-normalised confusion matrix with counts (``confusion_matrix.png``)."""
    plt = pyplot()
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
    save_figure(fig, uri)
