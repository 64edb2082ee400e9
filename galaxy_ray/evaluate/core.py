"""Predict on labelled cutouts and score them: the library under ``galaxy-ray evaluate``, training's end and the API.

Predictions are made by Ray Data: the same decoding as training
(:func:`galaxy_ray.data.transforms.preprocess_batch`, deterministic), the model
through :class:`galaxy_ray.model.predict.Predictor` in a small actor pool, one
GPU per actor where the cluster has GPUs.  A split of ``train`` or ``val`` scores one side
of the split the checkpoint was trained with (stored in its ``extra``).
:func:`evaluate_checkpoint` is the whole evaluation of a checkpoint on a source;
:mod:`galaxy_ray.evaluate.run` is its command and :func:`galaxy_ray.api.evaluate` its Python face.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from galaxy_ray import raycompat, runtime, schema, tasks
from galaxy_ray.data.labels import column_names
from galaxy_ray.data.split import Split
from galaxy_ray.data.packed import check_stored_pixels
from galaxy_ray.data.transforms import nonempty_batch, ok_rows, preprocess_batch
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.merger.operating import format_threshold
from galaxy_ray.merger.truth import operating_summary, true_mergers, truth_rule
from galaxy_ray.evaluate.metrics import error_summary, errors_by_reason, merger_metrics
from galaxy_ray.evaluate.plots import curves_from_csv, plot_precision_recall, plot_reliability
from galaxy_ray.io import layout, storage
from galaxy_ray.model import load_checkpoint, merger_probability, view_spread
from galaxy_ray.merger.operating import point_at, precision_recall_curve
from galaxy_ray.merger.rule import MergerRule
from galaxy_ray.model.predict import Predictor
from galaxy_ray.schema import CatalogColumns as C

__all__ = [
    "SPREAD",
    "checkpoint_split",
    "evaluate_checkpoint",
    "evaluate_predictions",
    "headline",
    "merger_report",
    "predict_labelled",
    "print_summary",
    "spread_report",
    "write_flagged_predictions",
    "write_predictions",
    "write_report",
]

#: Per-row spread of ``p_merger`` over the test-time views (``--tta``).
SPREAD = "p_merger_std"


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

    def __init__(self, checkpoint: str, label: str, subset: str | None, split: Split | None, tta: bool,
                 calibrated: bool = True) -> None:
        self.predictor = Predictor.from_checkpoint(checkpoint, device="auto", tta=tta, calibrated=calibrated)
        self.spec = self.predictor.spec
        self.label, self.subset, self.split = label, subset, split
        self.task = self.spec.task_of

    def _known(self, labels: np.ndarray) -> np.ndarray:
        """Rows with a label this model can be scored on (the task's labelled-row filter, as training's)."""
        return self.task.labelled(labels, self.spec.output_names)

    def _targets(self, labels: np.ndarray) -> np.ndarray:
        """(N, outputs) float32 targets; zero on rows without a known label (rows the reader could not read)."""
        y_true = np.zeros((len(labels), self.spec.num_outputs), dtype=np.float32)
        rows = np.flatnonzero(self._known(labels))
        if len(rows):
            y_true[rows] = self.task.target_matrix(labels[rows], self.spec.output_names)
        return y_true

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        """The batch's predictions; none when no row is kept (:func:`~galaxy_ray.data.transforms.nonempty_batch`)."""
        for kept in nonempty_batch(self.predict(batch), C.OBJECT_ID):
            yield raycompat.typed_batch(kept)  # an error column of only None stays None

    def predict(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Targets, predictions, TTA spread and errors of the kept rows of one batch of the cutout table."""
        labels = batch[self.label]
        # a row the reader could not read (a corrupt shard's row group) may have lost its label too:
        # it is kept as an error row, so that the report counts it rather than dropping it unseen
        unread = ~ok_rows(batch[C.ERROR]) if C.ERROR in batch else np.zeros(len(labels), dtype=bool)
        keep = self._known(labels) | unread
        if self.subset is not None:
            keep &= self.split.mask(batch[C.OBJECT_ID], self.subset)
        sub = {k: v[keep] for k, v in batch.items() if k in (C.OBJECT_ID, C.IMAGE, C.SOURCE, C.ERROR, self.label)}
        out = preprocess_batch(sub, self.spec.preprocess, augment=False)
        ok = ok_rows(out[C.ERROR])
        y_pred = np.full((len(ok), self.spec.num_outputs), np.nan, dtype=np.float32)
        spread = np.full(len(ok), np.nan, dtype=np.float32)
        if ok.any() and self.predictor.tta:
            y_pred[ok], views = self.predictor.predict_with_views(out["pixels"][ok])
            spread[ok] = view_spread(self.spec, views, y_pred[ok])["p_merger_std"]
        elif ok.any():
            y_pred[ok] = self.predictor(out["pixels"][ok])
        errors = np.array([None if e is None else str(e) for e in out[C.ERROR]], dtype=object)
        return {C.OBJECT_ID: np.asarray(out[C.OBJECT_ID], dtype=object), "y_true": self._targets(out[self.label]),
                "y_pred": y_pred, SPREAD: spread, C.ERROR: errors}


def predict_labelled(ds, checkpoint: str, label: str, *, subset: str | None = None, split: Split | None = None,
                     batch_size: int = 64, tta: bool = False, calibrated: bool = True) -> dict[str, np.ndarray]:
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
    calibrated : bool
        Apply the checkpoint's class-probability calibration (False: the network's own probabilities).

    Returns
    -------
    dict
        ``object_id`` (N,), ``y_true`` and ``y_pred`` float32 (N, outputs)
        (classes: one-hot truth), ``p_merger_std`` (N,) (the spread of
        ``p_merger`` over the 8 views with ``tta``, else NaN), ``error`` (N,)
        for rows that failed to decode (their predictions are NaN); sorted by
        ``object_id``.
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
                                                      tta=tta, calibrated=calibrated),
        batch_size=batch_size, batch_format="numpy", compute=pool, num_gpus=1 if gpus else 0,
    )
    parts = [p for p in preds.iter_batches(batch_size=None, batch_format="numpy") if len(p[C.OBJECT_ID])]
    if not parts:
        return {C.OBJECT_ID: np.array([], dtype=object), "y_true": np.zeros((0, 0), np.float32),
                "y_pred": np.zeros((0, 0), np.float32), SPREAD: np.zeros(0, np.float32),
                C.ERROR: np.array([], dtype=object)}
    out = {key: np.concatenate([np.asarray(p[key]) for p in parts])
           for key in (C.OBJECT_ID, "y_true", "y_pred", SPREAD, C.ERROR)}
    order = np.argsort(out[C.OBJECT_ID].astype(str), kind="stable")  # stable output whatever the task order
    return {k: v[order] for k, v in out.items()}


def write_predictions(uri: str, preds: Mapping[str, np.ndarray], *, p_merger: np.ndarray | None = None,
                      true_merger: np.ndarray | None = None, rule: MergerRule | None = None) -> None:
    """``object_id``, ``y_true`` and ``y_pred`` (list<float32>, output order) as Parquet.

    ``p_merger`` (calibrated) and ``true_merger`` (1.0 / 0.0, NaN for rows that
    failed), float32 (N,), are added when given, so the report can redraw the
    merger figures from this file.  With a ``rule`` (and ``p_merger``),
    ``is_merger`` (bool, null where ``p_merger`` is NaN) is the rule's flag, as
    ``infer`` and ``predict`` set it.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    def as_list(a: np.ndarray) -> pa.Array:
        a = np.asarray(a, dtype=np.float32)
        width = a.shape[1] if a.ndim == 2 else 0
        offsets = pa.array(np.arange(len(a) + 1, dtype=np.int32) * width)
        return pa.ListArray.from_arrays(offsets, pa.array(a.reshape(-1), type=pa.float32()))

    columns = {
        C.OBJECT_ID: pa.array([str(i) for i in preds[C.OBJECT_ID]], type=pa.string()),
        "y_true": as_list(preds["y_true"]),
        "y_pred": as_list(preds["y_pred"]),
    }
    for name, values in ((C.P_MERGER, p_merger), ("true_merger", true_merger)):
        if values is not None:
            columns[name] = pa.array(np.asarray(values, dtype=np.float32), type=pa.float32())
    if rule is not None:
        p = np.asarray(p_merger, dtype=np.float32)
        columns[C.IS_MERGER] = pa.array(rule.flag(p), type=pa.bool_(), mask=~np.isfinite(p))
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    storage.write_bytes_atomic(uri, buf.getvalue())


def write_flagged_predictions(uri: str, spec, preds: Mapping[str, np.ndarray], rule: MergerRule) -> None:
    """:func:`write_predictions` with ``p_merger`` and the rule's ``is_merger`` when the model has a merger output."""
    if spec.merger is None:
        return write_predictions(uri, preds)
    ok = ok_rows(preds[C.ERROR])
    p_merger = np.full(len(ok), np.nan, dtype=np.float32)
    p_merger[ok] = merger_probability(spec, np.asarray(preds["y_pred"])[ok])
    return write_predictions(uri, preds, p_merger=p_merger, rule=rule)


def merger_report(spec, y_true: np.ndarray, probs: np.ndarray, threshold: float,
                  vote_cut: float | None) -> dict[str, Any]:
    """Precision and recall of ``p_merger >= threshold`` (95% Wilson intervals), the truth rule, the counts.

    Parameters
    ----------
    y_true, probs : numpy.ndarray, shape (N, K)
        Targets and probabilities (as the Predictor returns them; ``p_merger``
        follows the spec's calibration).
    """
    truth = true_mergers(spec, y_true, vote_cut)
    p_merger = merger_probability(spec, probs)
    point = point_at(precision_recall_curve(truth, p_merger), int(truth.sum()), int((~truth).sum()), threshold)
    return dict(merger_metrics(truth, p_merger, threshold), output=spec.merger, truth=truth_rule(spec, vote_cut),
                precision_interval=list(point.precision_interval), recall_interval=list(point.recall_interval),
                false_positive_rate=point.false_positive_rate, positives=point.positives,
                negatives=point.negatives, true_positives=point.true_positives,
                false_positives=point.false_positives)


def evaluate_predictions(spec, preds: Mapping[str, np.ndarray], *, threshold: float, vote_cut: float | None,
                         train_mean: Sequence[float] | None = None,
                         class_counts: Sequence[int] | None = None) -> dict[str, Any]:
    """The evaluation report (a JSON-ready dict) of predictions made by a model of ``spec``.

    ``merger`` (when the model has a merger output) holds :func:`merger_report`
    at ``threshold``; a true merger is the labelled merger class, or for GZ2
    votes ``Class8.6 > vote_cut`` (:mod:`galaxy_ray.merger.truth`).

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
                              "errors_by_reason": errors_by_reason(preds[C.ERROR]),
                              "output_names": list(spec.output_names)}
    report[spec.task] = spec.task_of.metrics(spec, y_true, y_pred, train_mean, class_counts)
    if spec.merger is not None:
        report["merger"] = merger_report(spec, y_true, y_pred, threshold, vote_cut)
        spread = np.asarray(preds.get(SPREAD, np.full(len(ok), np.nan)), dtype=np.float64)[ok]
        if len(spread) and np.isfinite(spread).all():
            wrong = (merger_probability(spec, y_pred) >= threshold) != true_mergers(spec, y_true, vote_cut)
            report["merger"]["tta_spread"] = spread_report(spread, wrong)
    return report


def spread_report(spread: np.ndarray, wrong: np.ndarray) -> dict[str, Any]:
    """Is the spread over the 8 views informative?  Its mean, and how well it ranks wrong flags above right ones.

    ``auc_wrong_flags`` is the probability that a galaxy whose flag is wrong
    has a larger spread than one whose flag is right (the Mann-Whitney
    statistic; 0.5: the spread says nothing about the flag's errors).
    """
    out = {"mean_p_merger_std": float(spread.mean()), "median_p_merger_std": float(np.median(spread)),
           "wrong_flags": int(wrong.sum()), "auc_wrong_flags": None}
    if wrong.any() and not wrong.all():
        ranks = rankdata(spread)
        n1, n0 = int(wrong.sum()), int((~wrong).sum())
        out["auc_wrong_flags"] = float((ranks[wrong].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    return out


def headline(report: Mapping[str, Any]) -> str:
    """One line of the key figures."""
    split = {"val": "validation", "validation": "validation", "train": "training", "all": "all-rows"}.get(
        report.get("split", "validation"), "validation")
    task = tasks.get(report["task"])
    return task.headline(report[task.name], split)


def write_report(report: Mapping[str, Any], out: str) -> list[str]:
    """``evaluation.json`` and its PNGs in ``out``; returns the URIs written."""
    written = [storage.join(out, layout.EVALUATION_JSON)]
    storage.write_bytes_atomic(written[0], json.dumps(report, indent=2).encode("utf-8"))
    task = tasks.get(report["task"])
    written += task.plots(report[task.name], out)
    merger = report.get("merger") or {}
    if merger.get("curve"):
        written.append(storage.join(out, layout.PRECISION_RECALL_PNG))
        plot_precision_recall(merger, written[-1])
    if merger.get("reliability"):
        written.append(storage.join(out, layout.RELIABILITY_PNG))
        plot_reliability(merger["reliability"]["raw"], merger["reliability"]["calibrated"], written[-1])
    return written



def print_summary(report: Mapping[str, Any], written: list[str], first_error: str | None = None) -> None:
    """The command's lines: the headline, errors, the merger flag's rates and the files written."""
    print(f"galaxy-ray evaluate: {headline(report)}", flush=True)
    errors = error_summary(report, first_error)
    if errors:
        print(f"galaxy-ray evaluate: warning: {errors}", flush=True)
    if "merger" in report:
        m = report["merger"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"galaxy-ray evaluate: mergers at p_merger >= {format_threshold(m['threshold'])} ({m.get('threshold_source', 'given')})"
              f": precision {fmt(m['precision'])}, recall {fmt(m['recall'])} ({m['true_mergers']} true, "
              f"{m['predicted_mergers']} predicted; truth: {m['truth'].split(' (')[0]})")
        if m.get("validation"):
            print(f"galaxy-ray evaluate: on the training run's validation split: {operating_summary(m['validation'])}")
        if m.get("tta_spread"):
            t = m["tta_spread"]
            auc = "n/a" if t["auc_wrong_flags"] is None else f"{t['auc_wrong_flags']:.2f}"
            print(f"galaxy-ray evaluate: p_merger spread over the 8 views: median {t['median_p_merger_std']:.4f}; "
                  f"ranks the {t['wrong_flags']} wrong flags above the right ones with AUC {auc} (0.5: uninformative)")
    print(f"galaxy-ray evaluate: wrote {', '.join(written)}", flush=True)

def evaluate_checkpoint(checkpoint: str, source: str, *, out: str | None = None, split: str = "all",
                        val_fraction: float | None = None, tta: bool = False, merger_threshold: float | str = "auto",
                        merger_precision: float | None = None, batch_size: int = 64, format: str | None = None,
                        label_column: str | None = None, votes: str = "fraction",
                        allow_outside_paths: bool = False) -> tuple[dict[str, Any], list[str], str | None]:
    """Score a checkpoint on a labelled source and write ``evaluation.json``, its figures and the predictions.

    Parameters
    ----------
    checkpoint, source : str
        ``model.pt`` (or its run directory) and the labelled cutouts, paths or ``s3://``.
    out : str, optional
        Where the files go (default: ``eval-<source name>`` beside the checkpoint).
    split : {"all", "train", "val"}
        Every row, or one side of the checkpoint's split (``val_fraction`` over it).
    tta, merger_threshold, merger_precision, batch_size, format, label_column, votes, allow_outside_paths
        As the ``galaxy-ray evaluate`` flags of the same names.

    Returns
    -------
    (report, written, first_error)
        The report as written, the URIs written, and the first row error (None without one).

    Raises
    ------
    GalaxyRayError
        An unreadable checkpoint or source, a source without the label column,
        or cutouts packed for another model size than the checkpoint's (before
        anything runs).
    """
    from galaxy_ray.data.sources import open_source

    t0 = time.perf_counter()
    _, spec, extra = load_checkpoint(checkpoint, with_extra=True)
    model_uri = layout.checkpoint_file(str(checkpoint))
    ckpt_dir = model_uri.rsplit("/", 1)[0] if "/" in model_uri else "."
    task = spec.task_of
    label = task.evaluation_label(spec, label_column)
    out = out or storage.join(ckpt_dir, f"eval-{schema.slugify(Path(str(source).rstrip('/')).name)}")
    rule = MergerRule.from_checkpoint(spec, extra, merger_threshold, merger_precision)
    subset = None if split == "all" else split
    sides = checkpoint_split(extra, val_fraction) if subset else None
    opened = open_source(source, format, votes=votes, allow_outside_paths=allow_outside_paths)
    check_stored_pixels(opened, spec.preprocess)
    runtime.ensure_ray()
    ds, _ = task.prepare_source(opened.dataset(), spec.tree, source, label, bool(label_column))
    names = column_names(ds)
    if label not in names:
        raise GalaxyRayError(f"{source}: no column {label!r} (columns: {', '.join(names)}); pass --label-column")
    preds = predict_labelled(ds, model_uri, label, subset=subset, split=sides, batch_size=batch_size, tta=tta)
    if not len(preds[C.OBJECT_ID]):
        raise GalaxyRayError(f"{source}: no rows with labels the model knows in column {label!r}")
    report = evaluate_predictions(spec, preds, threshold=rule.threshold, train_mean=extra.get("train_mean"),
                                  class_counts=extra.get("class_counts"), vote_cut=rule.vote_cut)
    if "merger" in report:
        report["merger"].update(threshold_source=rule.threshold_source, validation=rule.validation)
    report.update(split=split, checkpoint=str(checkpoint), source=source, tta=bool(tta),
                  seconds=round(time.perf_counter() - t0, 2))
    if sides is not None:
        report["split_definition"] = sides.to_dict()
    write_flagged_predictions(storage.join(out, layout.PREDICTIONS), spec, preds, rule)
    written = write_report(report, out)
    metrics_csv = storage.join(ckpt_dir, layout.METRICS_CSV)
    if storage.exists(metrics_csv):  # evaluating a run's model.pt: its training curves too
        written.append(storage.join(out, layout.CURVES_PNG))
        curves_from_csv(metrics_csv, written[-1])
    return report, written, next((str(e) for e in preds[C.ERROR] if e is not None), None)
