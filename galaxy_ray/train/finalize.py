"""The end of a training run: calibrate on validation, choose the merger threshold, publish ``model.pt`` once.

The best epoch's weights arrive staged beside the run (``layout.STAGED_MODEL``),
never as ``model.pt``.  On the validation rows of the run's own split, with
the network's own (uncalibrated) probabilities:

1. fit the calibration (:func:`galaxy_ray.merger.truth.fit_calibration`)
   and store it in the checkpoint's spec, so that every later prediction
   (``evaluate``, ``infer``, ``predict``) is calibrated the same way;
2. choose the merger operating point on the calibrated ``p_merger``
   (:func:`galaxy_ray.merger.truth.choose_operating_point`) and store it,
   with the validation precision-recall table, in ``extra["merger"]``;
3. publish ``model.pt``: one atomic write of the calibrated checkpoint, so a
   run killed at any point leaves the previous ``model.pt`` or none, never
   weights without their calibration and threshold;
4. write ``validation_predictions.parquet`` (the outputs as the published
   ``model.pt`` predicts them, ``p_merger`` and the truth), ``evaluation.json``
   and its figures.
"""

from __future__ import annotations

from dataclasses import replace

from typing import Any, Sequence

import numpy as np

from galaxy_ray import runtime
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.merger.truth import (choose_operating_point, classes_reliability,
                                        fit_calibration, merger_reliability, operating_summary, true_mergers)
from galaxy_ray.evaluate.core import (checkpoint_split, evaluate_predictions, predict_labelled, write_predictions,
                                      write_report)
from galaxy_ray.io import layout, storage
from galaxy_ray.model import load_checkpoint, merger_probability, save_checkpoint
from galaxy_ray.merger.calibration import probability_calibration
from galaxy_ray.merger.operating import format_threshold
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["calibrate_and_choose", "finalize_run", "publish_checkpoint", "refuse_non_finite_predictions"]

#: Validation mergers below which the operating point gets a warning.
FEW_MERGERS = 10
#: Rows of the precision-recall table kept in ``evaluation.json`` (enough to draw it).
REPORT_CURVE_POINTS = 200


def calibrate_and_choose(spec, y_true: np.ndarray, y_raw: np.ndarray, *, threshold: float | str = "auto",
                         precision: float | None = None,
                         vote_cut: float | None) -> tuple[Any, np.ndarray, dict[str, Any] | None]:
    """Calibration and operating point from validation targets and uncalibrated probabilities.

    Returns
    -------
    (spec, probs, merger)
        The spec with its ``calibration``; the calibrated probabilities (N, K);
        the checkpoint's ``extra["merger"]`` (None without a merger output).
        A threshold of ``auto`` with no validation merger keeps 0.5 and says so
        in ``merger["reason"]``.
    """
    calibrated = replace(spec, calibration=fit_calibration(spec, y_true, y_raw, vote_cut))
    scale = probability_calibration(calibrated.calibration)
    probs = scale(y_raw) if scale is not None else y_raw
    if calibrated.merger is None:
        return calibrated, probs, None
    try:
        merger = choose_operating_point(calibrated, y_true, probs, threshold=threshold, precision=precision,
                                        vote_cut=vote_cut)
    except GalaxyRayError as exc:  # a precision out of reach: training is done, so keep the F1 point and say so
        runtime.say(f"galaxy-ray: warning: {exc}; keeping the F1-optimal threshold")
        merger = choose_operating_point(calibrated, y_true, probs, threshold="auto", vote_cut=vote_cut)
        merger["note"] = str(exc)
    if 0 < merger.get("positives", 0) < FEW_MERGERS:
        runtime.say(f"galaxy-ray: warning: only {merger['positives']} merger(s) in the validation split: the merger "
                    "threshold, its precision and recall, and fractions corrected with them are very uncertain "
                    "(see their intervals); validate on more labelled mergers")
    if "threshold" not in merger:
        merger["threshold"] = 0.5 if threshold == "auto" else float(threshold)
        runtime.say(f"galaxy-ray: warning: {merger['reason']}; the merger flag keeps p_merger >= "
                    f"{format_threshold(merger['threshold'])}, and its purity and completeness are unknown")
    return calibrated, probs, merger


def refuse_non_finite_predictions(y_raw: np.ndarray, staged_uri: str) -> None:
    """One line, and nothing published, when the best epoch's weights predict NaN or infinity on validation.

    The loop stops a run whose losses go non-finite (:func:`galaxy_ray.train.loop.divergence`); this is
    the last guard before ``model.pt``, for weights whose outputs break only on some rows.

    Raises
    ------
    GalaxyRayError
        How many validation rows, and what to do.
    """
    values = np.asarray(y_raw, dtype=np.float64)
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1) if values.size else np.zeros(0, dtype=bool)
    if bad.any():
        raise GalaxyRayError(f"{staged_uri}: the best epoch's weights predict NaN or infinity for {int(bad.sum())} of "
                             f"{len(values)} validation rows: training diverged, no model.pt published; lower --lr and "
                             "train again under another --name")


def publish_checkpoint(staged_uri: str, model_uri: str, spec, merger: dict[str, Any] | None) -> None:
    """Write ``model_uri`` once, atomically: the staged weights with the calibrated spec and the operating point."""
    model, _, extra = load_checkpoint(staged_uri, with_extra=True)
    extra = dict(extra)
    if merger is not None:
        extra["merger"] = merger
        extra["merger_threshold"] = float(merger["threshold"])
    save_checkpoint(model_uri, model, spec, extra)


def _merger_section(spec, y_true, y_raw, probs, merger: dict[str, Any], vote_cut: float) -> dict[str, Any]:
    section = {k: v for k, v in merger.items() if k != "curve"}
    if "curve" in merger:
        section["curve"] = _thin(merger["curve"], REPORT_CURVE_POINTS)
    if (spec.calibration or {}).get("merger"):
        section["reliability"] = merger_reliability(spec, y_true, y_raw, probs, vote_cut)
    if "reason" in merger:
        section["threshold_source"] = f"{format_threshold(merger['threshold'])}: {merger['reason']}"
    elif merger.get("rule") == "given":
        section["threshold_source"] = "given"
    else:
        section["threshold_source"] = f"validation ({'F1-optimal' if merger['rule'] == 'f1' else merger['rule']})"
    return section


def _thin(curve: dict[str, list], points: int) -> dict[str, list]:
    n = len(curve["threshold"])
    if n <= points:
        return curve
    keep = np.unique(np.linspace(0, n - 1, points).round().astype(int))
    return {k: [v[i] for i in keep] for k, v in curve.items()}


def finalize_run(run_dir: str, staged_uri: str, ds, label: str, *, batch_size: int = 64,
                 train_mean: Sequence[float] | None = None,
                 class_counts: Sequence[int] | None = None, source: str | None = None,
                 merger_threshold: float | str = "auto", merger_precision: float | None = None,
                 vote_cut: float | None) -> dict[str, Any]:
    """Calibrate the staged best weights on the validation rows of their own split and publish ``model.pt``.

    Chooses the merger threshold (``auto``: F1-optimal, or the lowest meeting
    ``merger_precision``; a number is kept), publishes ``run_dir/model.pt``
    with both in one atomic write, removes the staged file, and writes
    ``validation_predictions.parquet``, ``evaluation.json`` and its PNGs in
    ``run_dir``.

    Parameters
    ----------
    run_dir : str
        The run directory, path or ``s3://``.
    staged_uri : str
        The best epoch's checkpoint, uncalibrated (``layout.STAGED_MODEL``).
    ds : ray.data.Dataset
        The labelled training source.

    Raises
    ------
    GalaxyRayError
        No validation row could be evaluated.
    """
    model_uri = storage.join(run_dir, layout.MODEL)
    _, spec, extra = load_checkpoint(staged_uri, with_extra=True)
    spec = replace(spec, calibration=None)
    preds = predict_labelled(ds, staged_uri, label, subset="val", split=checkpoint_split(extra), batch_size=batch_size,
                             calibrated=False)
    ok = np.array([e is None for e in preds[C.ERROR]], dtype=bool)
    y_true, y_raw = np.asarray(preds["y_true"])[ok], np.asarray(preds["y_pred"])[ok]
    refuse_non_finite_predictions(y_raw, staged_uri)
    spec, probs, merger = calibrate_and_choose(spec, y_true, y_raw, threshold=merger_threshold,
                                               precision=merger_precision, vote_cut=vote_cut)
    calibrated_preds = dict(preds, y_pred=np.asarray(preds["y_pred"]).copy())
    calibrated_preds["y_pred"][ok] = probs
    report = evaluate_predictions(spec, calibrated_preds, threshold=merger["threshold"] if merger else 0.5,
                                  train_mean=train_mean, class_counts=class_counts, vote_cut=vote_cut)
    if merger is not None:
        report["merger"].update(_merger_section(spec, y_true, y_raw, probs, merger, vote_cut))
    if spec.task_of.temperature:
        report["calibration"] = {"probabilities": (spec.calibration or {}).get("probabilities"),
                                 "top_class_reliability": classes_reliability(y_true, y_raw, probs)}
    report.update(split="validation", checkpoint=model_uri, source=source)
    # Published only once everything it is judged by is known, and before the files that describe it.
    publish_checkpoint(staged_uri, model_uri, spec, merger)
    storage.remove(staged_uri)
    write_predictions(storage.join(run_dir, layout.VALIDATION_PREDICTIONS), calibrated_preds,
                      p_merger=_column(ok, merger_probability(spec, probs)) if merger else None,
                      true_merger=_column(ok, true_mergers(spec, y_true, vote_cut)) if merger else None)
    write_report(report, run_dir)
    if merger is not None:
        print(f"galaxy-ray train: {operating_summary(merger)}; p_merger calibrated on validation "
              f"({merger.get('calibration', 'none')})", flush=True)
    return report


def _column(ok: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` (of the ok rows) spread back over all rows, NaN elsewhere."""
    out = np.full(len(ok), np.nan, dtype=np.float32)
    out[ok] = values
    return out
