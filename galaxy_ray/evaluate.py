"""Evaluate a trained model on labelled cutouts (end of training, and ``galaxy-ray evaluate``).

Metrics, next to the baselines a skeptic would ask for:

``gz2``
    RMSE over all 37 cumulative vote fractions (the Kaggle Galaxy Challenge
    metric) and per answer, beside the mean-label baseline (predict the
    training mean for every galaxy).
``classes``
    accuracy, balanced accuracy (mean per-class recall), per-class precision
    and recall, the confusion matrix (PNG), beside the majority-class baseline.
both
    merger precision and recall at the run's ``p_merger`` threshold.

Predictions are made by Ray Data: the same decoding as training
(:func:`galaxy_ray.data.preprocess.preprocess_batch`, deterministic), the model in a
small actor pool, one GPU per actor where the cluster has GPUs.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from galaxy_ray import schema
from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C

__all__ = [
    "gz2_metrics",
    "classes_metrics",
    "merger_metrics",
    "predict_labelled",
    "evaluate_predictions",
    "evaluate_run",
    "plot_curves",
    "plot_confusion",
    "write_predictions",
    "headline",
    "main",
]


# --------------------------------------------------------------------------- metrics


def gz2_metrics(y_true: np.ndarray, y_pred: np.ndarray, train_mean: Sequence[float] | None = None) -> dict[str, Any]:
    """RMSE overall and per answer, and the same for the mean-label baseline.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (N, 37)
        Cumulative vote fractions in Kaggle order.
    train_mean : sequence of 37 floats, optional
        The training-set mean; the baseline predicts it for every galaxy.
        Without it the evaluated set's own mean is used (flattering the baseline).
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    mean = np.asarray(train_mean if train_mean is not None else y_true.mean(axis=0), dtype=np.float64)
    err = (y_pred - y_true) ** 2
    base = (mean[None, :] - y_true) ** 2
    per_answer = {
        name: {"column": col, "rmse": float(np.sqrt(err[:, i].mean())), "baseline_rmse": float(np.sqrt(base[:, i].mean()))}
        for i, (name, col) in enumerate(zip(schema.GZ2_KAGGLE_COLUMNS, schema.GZ2_ANSWER_COLUMNS))
    }
    rmse, baseline = float(np.sqrt(err.mean())), float(np.sqrt(base.mean()))
    return {
        "rows": int(len(y_true)),
        "rmse": rmse,
        "baseline_rmse": baseline,
        "baseline": "training mean" if train_mean is not None else "evaluated set mean",
        "rmse_over_baseline": rmse / baseline if baseline > 0 else float("nan"),
        "per_answer": per_answer,
    }


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


def _num(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) or np.isnan(x) else float(x)


def merger_metrics(true_merger: np.ndarray, p_merger: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision and recall of ``p_merger >= threshold`` against the true mergers."""
    true_merger = np.asarray(true_merger, dtype=bool)
    predicted = np.asarray(p_merger, dtype=np.float64) >= threshold
    tp = int((predicted & true_merger).sum())
    return {
        "threshold": float(threshold),
        "true_mergers": int(true_merger.sum()),
        "predicted_mergers": int(predicted.sum()),
        "precision": tp / int(predicted.sum()) if predicted.any() else None,
        "recall": tp / int(true_merger.sum()) if true_merger.any() else None,
    }


# --------------------------------------------------------------------------- predictions


class _Predictor:
    """Ray Data actor: decode (deterministic) and predict with one loaded checkpoint."""

    def __init__(self, checkpoint: str, label: str, split: str | None, val_fraction: float, tta: bool = False) -> None:
        import torch

        from galaxy_ray.model import load_checkpoint

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model, self.spec = load_checkpoint(checkpoint, map_location=device)
        self.label, self.split, self.val_fraction, self.tta = label, split, val_fraction, tta
        self.class_index = {n: i for i, n in enumerate(self.spec.output_names)}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from galaxy_ray.model import predict_numpy
        from galaxy_ray.data.preprocess import preprocess_batch
        from galaxy_ray.train import _present, split_mask

        labels = batch[self.label]
        keep = _present(labels)
        if self.spec.task == "classes":
            keep &= np.array([str(v) in self.class_index for v in labels], dtype=bool)
        if self.split is not None:
            keep &= split_mask(batch[C.OBJECT_ID], self.val_fraction, self.split)
        sub = {k: v[keep] for k, v in batch.items() if k in (C.OBJECT_ID, C.IMAGE, C.SOURCE, C.ERROR, self.label)}
        out = preprocess_batch(sub, self.spec.preprocess, augment=False)
        n, k = len(out[C.OBJECT_ID]), self.spec.num_outputs
        ok = np.array([e is None for e in out[C.ERROR]], dtype=bool)
        y_pred = np.full((n, k), np.nan, dtype=np.float32)
        if ok.any():
            y_pred[ok] = predict_numpy(self.model, out["pixels"][ok], tta=self.tta)
        if self.spec.task == "gz2":
            y_true = np.zeros((n, k), dtype=np.float32)
            if n:
                y_true[:] = np.stack([np.asarray(v, dtype=np.float32) for v in out[self.label]]).reshape(n, k)
        else:
            y_true = np.zeros((n, k), dtype=np.float32)
            y_true[np.arange(n), [self.class_index[str(v)] for v in out[self.label]]] = 1.0
        # "" rather than None: a column of only None would come back from Arrow as float NaN
        errors = np.array(["" if e is None else str(e) for e in out[C.ERROR]], dtype=object)
        return {C.OBJECT_ID: np.asarray(out[C.OBJECT_ID], dtype=object), "y_true": y_true, "y_pred": y_pred,
                C.ERROR: errors}


def predict_labelled(ds, checkpoint: str, label: str, *, split: str | None = None, val_fraction: float = 0.2,
                     batch_size: int = 64, tta: bool = False) -> dict[str, np.ndarray]:
    """Predictions and targets for the labelled rows of a cutout Dataset.

    Parameters
    ----------
    ds : ray.data.Dataset
        The cutout table.
    checkpoint : str
        Our checkpoint (``model.pt`` or its directory).
    label : str
        Target column (``votes`` or ``label``).
    split : str, optional
        Keep only ``train`` or ``val`` rows of :func:`galaxy_ray.train.split_of`.
    tta : bool
        Average each prediction over the 8 rotations and flips, as ``galaxy-ray infer --tta``.

    Returns
    -------
    dict
        ``object_id`` (N,), ``y_true`` and ``y_pred`` float32 (N, outputs)
        (classes: one-hot truth), ``error`` (N,) for rows that failed to decode
        (their predictions are NaN).
    """
    import ray
    from ray.data import ActorPoolStrategy

    gpus = int(ray.cluster_resources().get("GPU", 0))
    from galaxy_ray.train import _column_names

    columns = [c for c in (C.OBJECT_ID, C.IMAGE, C.SOURCE, C.ERROR, label) if c in _column_names(ds)]
    pool = ActorPoolStrategy(min_size=1, max_size=max(1, gpus)) if gpus else ActorPoolStrategy(min_size=1, max_size=2)
    preds = ds.select_columns(columns).map_batches(
        _Predictor, fn_constructor_kwargs=dict(checkpoint=checkpoint, label=label, split=split, val_fraction=val_fraction,
                                               tta=tta),
        batch_size=batch_size, batch_format="numpy", compute=pool, num_gpus=1 if gpus else 0,
    )
    parts = list(preds.iter_batches(batch_size=None, batch_format="numpy"))
    parts = [p for p in parts if len(p[C.OBJECT_ID])]
    if not parts:
        return {C.OBJECT_ID: np.array([], dtype=object), "y_true": np.zeros((0, 0), np.float32),
                "y_pred": np.zeros((0, 0), np.float32), C.ERROR: np.array([], dtype=object)}
    out = {key: np.concatenate([np.asarray(p[key]) for p in parts]) for key in (C.OBJECT_ID, "y_true", "y_pred", C.ERROR)}
    errors = np.empty(len(out[C.ERROR]), dtype=object)
    errors[:] = [str(e) if isinstance(e, str) and e else None for e in out[C.ERROR]]
    out[C.ERROR] = errors
    order = np.argsort(out[C.OBJECT_ID].astype(str), kind="stable")  # stable output whatever the task order
    return {k: v[order] for k, v in out.items()}


def write_predictions(uri: str, preds: Mapping[str, np.ndarray]) -> None:
    """``object_id``, ``y_true`` and ``y_pred`` (list<float32>, output order) as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def as_list(a: np.ndarray) -> pa.Array:
        a = np.asarray(a, dtype=np.float32)
        width = a.shape[1] if a.ndim == 2 else 0
        offsets = pa.array(np.arange(len(a) + 1, dtype=np.int32) * width)
        return pa.ListArray.from_arrays(offsets, pa.array(a.reshape(-1), type=pa.float32()))

    table = pa.table({
        C.OBJECT_ID: pa.array([str(i) for i in preds[C.OBJECT_ID]], type=pa.string()),
        "y_true": as_list(preds["y_true"]),
        "y_pred": as_list(preds["y_pred"]),
    })
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.write_bytes_atomic(uri, buf.getvalue())


def evaluate_predictions(spec, preds: Mapping[str, np.ndarray], *, threshold: float = 0.5,
                         train_mean: Sequence[float] | None = None,
                         class_counts: Sequence[int] | None = None) -> dict[str, Any]:
    """The evaluation report (a JSON-ready dict) of predictions made by a model of ``spec``."""
    from galaxy_ray.model import merger_index, merger_probability

    ok = np.array([e is None for e in preds[C.ERROR]], dtype=bool)
    y_true, y_pred = np.asarray(preds["y_true"])[ok], np.asarray(preds["y_pred"])[ok]
    if not len(y_true):
        raise GalaxyRayError("no labelled cutout could be evaluated (all rows failed to decode or had no label)")
    report: dict[str, Any] = {"task": spec.task, "rows": int(len(y_true)), "error_rows": int((~ok).sum()),
                              "output_names": list(spec.output_names)}
    if spec.task == "gz2":
        report["gz2"] = gz2_metrics(y_true, y_pred, train_mean)
    else:
        report["classes"] = classes_metrics(y_true.argmax(axis=1), y_pred, spec.output_names, class_counts)
    index = merger_index(spec)
    if index is not None:
        report["merger"] = dict(merger_metrics(y_true[:, index] >= threshold if spec.task == "gz2" else
                                               y_true[:, index] > 0.5, merger_probability(spec, y_pred), threshold),
                                output=spec.merger)
    return report


def headline(report: Mapping[str, Any]) -> str:
    """One line of the key figures."""
    split = {"val": "validation", "validation": "validation", "train": "training", "all": "all-rows"}.get(
        report.get("split", "validation"), "validation")
    if "gz2" in report:
        g = report["gz2"]
        return f"{split} RMSE {g['rmse']:.4f} vs {g['baseline_rmse']:.4f} for the mean baseline ({g['rows']} galaxies)"
    c = report["classes"]
    return (f"{split} accuracy {c['accuracy']:.3f} (balanced {c['balanced_accuracy']:.3f}) vs "
            f"{c['baseline_accuracy']:.3f} for the majority baseline ({c['rows']} galaxies)")


# --------------------------------------------------------------------------- plots


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
    import csv

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


def write_report(report: Mapping[str, Any], out: str) -> list[str]:
    """``evaluation.json`` and its PNGs in ``out``; returns the URIs written."""
    written = [storage.join(out, "evaluation.json")]
    storage.write_bytes_atomic(written[0], json.dumps(report, indent=2).encode("utf-8"))
    if "classes" in report:
        written.append(storage.join(out, "confusion_matrix.png"))
        plot_confusion(report["classes"], written[-1])
    if "gz2" in report:
        written.append(storage.join(out, "rmse_per_answer.png"))
        plot_per_answer(report["gz2"], written[-1])
    return written


# --------------------------------------------------------------------------- entry points


def evaluate_run(run_dir: str, ds, cfg, summary) -> dict[str, Any]:
    """End-of-training evaluation of ``run_dir/model.pt`` on the validation split."""
    from galaxy_ray.model import load_checkpoint

    model_uri = storage.join(run_dir, "model.pt")
    _, spec = load_checkpoint(model_uri)
    preds = predict_labelled(ds, model_uri, cfg.label, split="val", val_fraction=cfg.val_fraction,
                             batch_size=max(cfg.batch_size, 64))
    write_predictions(storage.join(run_dir, "validation_predictions.parquet"), preds)
    report = evaluate_predictions(spec, preds, threshold=cfg.merger_threshold, train_mean=summary.train_mean,
                                  class_counts=summary.class_counts)
    report.update(split="validation", checkpoint=model_uri, source=cfg.source)
    write_report(report, run_dir)
    return report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="galaxy-ray evaluate",
                                description="Evaluate a trained checkpoint on a labelled source.")
    p.add_argument("checkpoint", help="model.pt (or its run directory), local or s3://")
    p.add_argument("source", help="labelled cutouts: path or s3:// URI")
    p.add_argument("--out", help="directory for evaluation.json and PNGs (default: beside the checkpoint, eval-<source>)")
    p.add_argument("--format", help="source format, when detection is not enough")
    p.add_argument("--label-column", help="target column (default: votes for gz2, label for classes)")
    p.add_argument("--votes", default="fraction", choices=["fraction", "debiased"], help="gz2-catalog sources")
    p.add_argument("--split", choices=["all", "train", "val"], default="all",
                   help="evaluate only one side of the training split of object ids (default all)")
    p.add_argument("--val-fraction", type=float, default=None, help="of the split (default: the checkpoint's run)")
    p.add_argument("--merger-threshold", type=float, help="default: the checkpoint's run")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--tta", action="store_true",
                   help="average over the 8 rotations and flips of each cutout, as `galaxy-ray infer --tta`")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray evaluate CHECKPOINT SOURCE [--out DIR]``."""
    from galaxy_ray.model import load_checkpoint
    from galaxy_ray.data.sources import read_source
    from galaxy_ray.train import _column_names, ensure_ray

    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    _, spec, extra = load_checkpoint(args.checkpoint, with_extra=True)
    model_uri = str(args.checkpoint)
    ckpt_dir = model_uri.rsplit("/", 1)[0] if model_uri.endswith((".pt", ".pth")) and "/" in model_uri else (
        "." if model_uri.endswith((".pt", ".pth")) else model_uri)
    label = args.label_column or (C.VOTES if spec.task == "gz2" else C.LABEL)
    out = args.out or storage.join(ckpt_dir, f"eval-{schema.slugify(Path(str(args.source).rstrip('/')).name)}")
    threshold = args.merger_threshold if args.merger_threshold is not None else float(extra.get("merger_threshold", 0.5))
    ensure_ray()
    ds = read_source(args.source, args.format, votes=args.votes)
    names = _column_names(ds)
    if label not in names:
        raise GalaxyRayError(f"{args.source}: no column {label!r} (columns: {', '.join(names)}); pass --label-column")
    val_fraction = args.val_fraction if args.val_fraction is not None else 0.2
    preds = predict_labelled(ds, model_uri, label, split=None if args.split == "all" else args.split,
                             val_fraction=val_fraction, batch_size=args.batch_size, tta=args.tta)
    if not len(preds[C.OBJECT_ID]):
        raise GalaxyRayError(f"{args.source}: no rows with labels the model knows in column {label!r}")
    report = evaluate_predictions(spec, preds, threshold=threshold, train_mean=extra.get("train_mean"),
                                  class_counts=extra.get("class_counts"))
    report.update(split=args.split, checkpoint=str(args.checkpoint), source=args.source, tta=bool(args.tta),
                  seconds=round(time.perf_counter() - t0, 2))
    write_predictions(storage.join(out, "predictions.parquet"), preds)
    written = write_report(report, out)
    metrics_csv = storage.join(ckpt_dir, "metrics.csv")
    if storage.exists(metrics_csv):  # evaluating a run's model.pt: its training curves too
        written.append(storage.join(out, "curves.png"))
        curves_from_csv(metrics_csv, written[-1])
    print(f"galaxy-ray evaluate: {headline(report)}", flush=True)
    if "merger" in report:
        m = report["merger"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
        print(f"galaxy-ray evaluate: mergers at p_merger >= {m['threshold']}: precision {fmt(m['precision'])}, "
              f"recall {fmt(m['recall'])} ({m['true_mergers']} true, {m['predicted_mergers']} predicted)")
    print(f"galaxy-ray evaluate: wrote {', '.join(written)}", flush=True)
    return 0
