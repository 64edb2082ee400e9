"""Predict on labelled cutouts and write the evaluation report (end of training, and ``galaxy-ray evaluate``).

Predictions are made by Ray Data: the same decoding as training
(:func:`galaxy_ray.data.transforms.preprocess_batch`, deterministic), the model
through :class:`galaxy_ray.model.predict.Predictor` in a small actor pool, one
GPU per actor where the cluster has GPUs.  ``--split train|val`` scores one side
of the split the checkpoint was trained with (stored in its ``extra``).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from galaxy_ray import runtime, schema
from galaxy_ray.data.labels import column_names, label_present
from galaxy_ray.data.split import Split
from galaxy_ray.data.transforms import ok_rows, preprocess_batch
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.evaluate.metrics import classes_metrics, gz2_metrics, merger_metrics
from galaxy_ray.evaluate.plots import curves_from_csv, plot_confusion, plot_per_answer
from galaxy_ray.io import layout, storage
from galaxy_ray.model import load_checkpoint, merger_index, merger_probability
from galaxy_ray.model.predict import Predictor
from galaxy_ray.schema import CatalogColumns as C

__all__ = [
    "build_parser",
    "checkpoint_split",
    "evaluate_predictions",
    "evaluate_run",
    "headline",
    "main",
    "predict_labelled",
    "write_predictions",
    "write_report",
]

#: Files of an evaluation besides ``evaluation.json``.


def checkpoint_split(extra: Mapping[str, Any], val_fraction: float | None = None) -> Split:
    """The split a checkpoint was trained with (its ``extra["split"]``), or ``val_fraction`` over it.

    A checkpoint that records no split was trained with the default salt; without
    ``val_fraction`` the default fraction (0.2) is assumed, and said.
    """
    recorded = Split.from_dict(extra["split"]) if extra.get("split") else None
    if val_fraction is not None:
        return Split(float(val_fraction), recorded.salt if recorded else Split().salt)
    if recorded is None:
        runtime.say(f"galaxy-ray: the checkpoint records no split; assuming --val-fraction {Split().val_fraction}")
        return Split()
    return recorded


class LabelledPredictor:
    """Ray Data actor: keep the labelled rows (of one subset), decode, predict with one checkpoint."""

    def __init__(self, checkpoint: str, label: str, subset: str | None, split: Split | None, tta: bool) -> None:
        self.predictor = Predictor.from_checkpoint(checkpoint, device="auto", tta=tta)
        self.spec = self.predictor.spec
        self.label, self.subset, self.split = label, subset, split
        self.class_index = {n: i for i, n in enumerate(self.spec.output_names)}

    def _targets(self, labels: np.ndarray) -> np.ndarray:
        n, k = len(labels), self.spec.num_outputs
        y_true = np.zeros((n, k), dtype=np.float32)
        if self.spec.task == "gz2":
            if n:
                y_true[:] = np.stack([np.asarray(v, dtype=np.float32) for v in labels]).reshape(n, k)
        else:
            y_true[np.arange(n), [self.class_index[str(v)] for v in labels]] = 1.0
        return y_true

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        labels = batch[self.label]
        keep = label_present(labels)
        if self.spec.task == "classes":
            keep &= np.array([str(v) in self.class_index for v in labels], dtype=bool)
        if self.subset is not None:
            keep &= self.split.mask(batch[C.OBJECT_ID], self.subset)
        sub = {k: v[keep] for k, v in batch.items() if k in (C.OBJECT_ID, C.IMAGE, C.SOURCE, C.ERROR, self.label)}
        out = preprocess_batch(sub, self.spec.preprocess, augment=False)
        ok = ok_rows(out[C.ERROR])
        y_pred = np.full((len(ok), self.spec.num_outputs), np.nan, dtype=np.float32)
        if ok.any():
            y_pred[ok] = self.predictor(out["pixels"][ok])
        # "" rather than None: a column of only None would come back from Arrow as float NaN
        errors = np.array(["" if e is None else str(e) for e in out[C.ERROR]], dtype=object)
        return {C.OBJECT_ID: np.asarray(out[C.OBJECT_ID], dtype=object), "y_true": self._targets(out[self.label]),
                "y_pred": y_pred, C.ERROR: errors}


def predict_labelled(ds, checkpoint: str, label: str, *, subset: str | None = None, split: Split | None = None,
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
    subset : str, optional
        Keep only the ``train`` or ``val`` rows of ``split`` (required then).
    tta : bool
        Average each prediction over the 8 rotations and flips, as ``galaxy-ray infer --tta``.

    Returns
    -------
    dict
        ``object_id`` (N,), ``y_true`` and ``y_pred`` float32 (N, outputs)
        (classes: one-hot truth), ``error`` (N,) for rows that failed to decode
        (their predictions are NaN); sorted by ``object_id``.
    """
    import ray
    from ray.data import ActorPoolStrategy

    if subset is not None and split is None:
        raise ValueError("predict_labelled: a subset needs the split it belongs to")
    gpus = int(ray.cluster_resources().get("GPU", 0))
    columns = [c for c in (C.OBJECT_ID, C.IMAGE, C.SOURCE, C.ERROR, label) if c in column_names(ds)]
    pool = ActorPoolStrategy(min_size=1, max_size=max(1, gpus)) if gpus else ActorPoolStrategy(min_size=1, max_size=2)
    preds = ds.select_columns(columns).map_batches(
        LabelledPredictor, fn_constructor_kwargs=dict(checkpoint=checkpoint, label=label, subset=subset, split=split,
                                                      tta=tta),
        batch_size=batch_size, batch_format="numpy", compute=pool, num_gpus=1 if gpus else 0,
    )
    parts = [p for p in preds.iter_batches(batch_size=None, batch_format="numpy") if len(p[C.OBJECT_ID])]
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
    """The evaluation report (a JSON-ready dict) of predictions made by a model of ``spec``.

    Raises
    ------
    GalaxyRayError
        No row could be evaluated.
    """
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


def write_report(report: Mapping[str, Any], out: str) -> list[str]:
    """``evaluation.json`` and its PNGs in ``out``; returns the URIs written."""
    written = [storage.join(out, layout.EVALUATION_JSON)]
    storage.write_bytes_atomic(written[0], json.dumps(report, indent=2).encode("utf-8"))
    if "classes" in report:
        written.append(storage.join(out, layout.CONFUSION_PNG))
        plot_confusion(report["classes"], written[-1])
    if "gz2" in report:
        written.append(storage.join(out, layout.RMSE_PER_ANSWER_PNG))
        plot_per_answer(report["gz2"], written[-1])
    return written


def evaluate_run(run_dir: str, ds, label: str, *, batch_size: int = 64, train_mean: Sequence[float] | None = None,
                 class_counts: Sequence[int] | None = None, source: str | None = None) -> dict[str, Any]:
    """End-of-training evaluation of ``run_dir/model.pt`` on the validation rows of its own split.

    Writes ``validation_predictions.parquet``, ``evaluation.json`` and its PNGs in ``run_dir``.
    """
    model_uri = storage.join(run_dir, layout.MODEL)
    _, spec, extra = load_checkpoint(model_uri, with_extra=True)
    preds = predict_labelled(ds, model_uri, label, subset="val", split=checkpoint_split(extra), batch_size=batch_size)
    write_predictions(storage.join(run_dir, layout.VALIDATION_PREDICTIONS), preds)
    report = evaluate_predictions(spec, preds, threshold=float(extra.get("merger_threshold", 0.5)),
                                  train_mean=train_mean, class_counts=class_counts)
    report.update(split="validation", checkpoint=model_uri, source=source)
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


def _print_summary(report: Mapping[str, Any], written: list[str]) -> None:
    print(f"galaxy-ray evaluate: {headline(report)}", flush=True)
    if "merger" in report:
        m = report["merger"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"galaxy-ray evaluate: mergers at p_merger >= {m['threshold']}: precision {fmt(m['precision'])}, "
              f"recall {fmt(m['recall'])} ({m['true_mergers']} true, {m['predicted_mergers']} predicted)")
    print(f"galaxy-ray evaluate: wrote {', '.join(written)}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray evaluate CHECKPOINT SOURCE [--out DIR]``."""
    from galaxy_ray.data.sources import read_source

    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    _, spec, extra = load_checkpoint(args.checkpoint, with_extra=True)
    model_uri = layout.checkpoint_file(str(args.checkpoint))
    ckpt_dir = model_uri.rsplit("/", 1)[0] if "/" in model_uri else "."
    label = args.label_column or (C.VOTES if spec.task == "gz2" else C.LABEL)
    out = args.out or storage.join(ckpt_dir, f"eval-{schema.slugify(Path(str(args.source).rstrip('/')).name)}")
    threshold = args.merger_threshold if args.merger_threshold is not None else float(extra.get("merger_threshold", 0.5))
    subset = None if args.split == "all" else args.split
    split = checkpoint_split(extra, args.val_fraction) if subset else None
    runtime.ensure_ray()
    ds = read_source(args.source, args.format, votes=args.votes)
    names = column_names(ds)
    if label not in names:
        raise GalaxyRayError(f"{args.source}: no column {label!r} (columns: {', '.join(names)}); pass --label-column")
    preds = predict_labelled(ds, model_uri, label, subset=subset, split=split, batch_size=args.batch_size,
                             tta=args.tta)
    if not len(preds[C.OBJECT_ID]):
        raise GalaxyRayError(f"{args.source}: no rows with labels the model knows in column {label!r}")
    report = evaluate_predictions(spec, preds, threshold=threshold, train_mean=extra.get("train_mean"),
                                  class_counts=extra.get("class_counts"))
    report.update(split=args.split, checkpoint=str(args.checkpoint), source=args.source, tta=bool(args.tta),
                  seconds=round(time.perf_counter() - t0, 2))
    if split is not None:
        report["split_definition"] = split.to_dict()
    write_predictions(storage.join(out, layout.PREDICTIONS), preds)
    written = write_report(report, out)
    metrics_csv = storage.join(ckpt_dir, layout.METRICS_CSV)
    if storage.exists(metrics_csv):  # evaluating a run's model.pt: its training curves too
        written.append(storage.join(out, layout.CURVES_PNG))
        curves_from_csv(metrics_csv, written[-1])
    _print_summary(report, written)
    return 0
