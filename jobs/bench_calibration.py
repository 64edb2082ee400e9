"""Benchmark: is ``p_merger`` honest about its evidence?  The old isotonic map against today's choice.

For one trained network, on its validation split and on galaxies it was not
calibrated on, the two merger maps fitted on the same validation galaxies:

- **before**: isotonic regression (:class:`galaxy_ray.merger.calibration.IsotonicCalibration`,
  what checkpoints stored until issue 33);
- **after**: :func:`galaxy_ray.merger.choice.fit_merger_calibration` (Platt, beta or
  isotonic shrunk toward beta, chosen by cross-validated log loss, outputs kept
  within ``[1 / (N + 2), 1 - 1 / (N + 2)]``).

Measured for each: the share of ``p_merger`` exactly 0 or 1; the log loss and
expected calibration error (ECE, 10 bins) out of sample with 95% bootstrap
intervals, on validation (5-fold cross-fitted, stratified) and on the survey
(a map fitted on all of validation, scored against the survey's truth); and
the survey's merger fraction corrected for the flag (F1-optimal threshold on
validation, Rogan & Gladen 1978), as HEAD printed it (no evidence rule) and as
``galaxy-ray stats`` prints it now (n/a or caveat), beside the true fraction.

Data (small on purpose: a shared 2-core machine):

- ``demo``: ``jobs/demo.py``'s data at a smaller scale: a synthetic GZ DESI
  (decals-dr8) training set and survey with simulated volunteer votes, a
  ResNet-18 trained on the counts (``--task votes``) for ``--epochs``; truth:
  the cumulative ``merging_merger`` vote fraction > 0.4.
- ``gz2``: the real 450-galaxy SDSS/GZ2 sample (``--gz2`` or
  ``GALAXY_RAY_GZ2_SAMPLE``), ``--task gz2`` with ``--val-fraction 0.5``; truth
  Class8.6 > ``--gz2-vote-cut``.  The sample holds 6 galaxies above the
  default cut 0.4, so the default here is 0.1 (33 galaxies).  Its "survey" is
  the whole sample, half of which the network trained on: its scores there are
  in sample for the network (not for the calibration).

This is a statistical benchmark, not a timing one, so there is no Pillow +
PyTorch speed baseline: the baseline is the isotonic map, on the same scores.
The last line printed is JSON.

Usage::

    python jobs/bench_calibration.py --out /tmp/bench_cal [--data demo gz2] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def _run(args: list[str]) -> None:
    print(f"$ galaxy-ray {shlex.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "galaxy_ray.cli", *args], check=True)


def _read_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` and ``y_pred`` (N, K) of a predictions Parquet, rows that failed left out."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    y_true = np.asarray(table.column("y_true").to_pylist(), dtype=np.float64)
    y_pred = np.asarray(table.column("y_pred").to_pylist(), dtype=np.float64)
    ok = np.isfinite(y_pred).all(axis=1) if y_pred.ndim == 2 and len(y_pred) else np.zeros(len(y_pred), bool)
    return y_true[ok], y_pred[ok]


def _scores(run_dir: Path, survey_predictions: Path) -> dict[str, Any]:
    """Raw merger scores and truth on validation and survey, with the survey's morphology labels."""
    from galaxy_ray.io import layout
    from galaxy_ray.merger.truth import true_mergers
    from galaxy_ray.model import load_checkpoint
    from galaxy_ray.model.outputs import merger_score, morphology

    _, spec, extra = load_checkpoint(str(run_dir / layout.MODEL), with_extra=True)
    cut = (extra.get("merger") or {}).get("vote_cut")
    out: dict[str, Any] = {"spec": spec, "vote_cut": cut}
    for name, path in (("val", run_dir / layout.VALIDATION_PREDICTIONS), ("survey", survey_predictions)):
        y_true, y_pred = _read_predictions(path)
        # training stores validation predictions after the class-probability calibration; votes and gz2
        # have none, so y_pred is the network's own output and merger_score the uncalibrated score
        out[name] = (merger_score(spec, y_pred), true_mergers(spec, y_true, cut))
        if name == "survey":
            out["morphology"] = morphology(spec, y_pred.astype(np.float32))
    return out


def _cross_fitted(fit, s: np.ndarray, y: np.ndarray, folds: int = 5) -> np.ndarray:
    from galaxy_ray.merger.choice import stratified_folds

    fold = stratified_folds(y, folds, seed=1)
    p = np.empty(len(s))
    for k in range(folds):
        held = fold == k
        p[held] = fit(s[~held], y[~held])(s[held])
    return p


def _head_corrected(flagged: int, total: int, rates: dict[str, int], draws: int = 4000) -> dict[str, Any]:
    """The corrected fraction as HEAD (before issue 33) computed it: clipped to [0, 1], no evidence rule.

    Its only refusals were fewer than 10 flagged or unflagged, ``c <= e``, and a zero-width interval; the
    bootstrap is the one :func:`galaxy_ray.merger.fractions.corrected_fraction` still runs (same seed).
    """
    from galaxy_ray.merger.fractions import MIN_FLAGGED

    c = rates["val_true_positives"] / rates["val_positives"]
    e = rates["val_false_positives"] / rates["val_negatives"]
    if total == 0 or c <= e or min(flagged, total - flagged) < MIN_FLAGGED:
        return {"fraction": None, "interval": None}
    rng = np.random.default_rng(0)
    c_b = rng.binomial(rates["val_positives"], c, draws) / rates["val_positives"]
    e_b = rng.binomial(rates["val_negatives"], e, draws) / rates["val_negatives"]
    f_b = rng.binomial(total, flagged / total, draws) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.where(c_b > e_b, np.clip((f_b - e_b) / (c_b - e_b), 0.0, 1.0), np.nan)
    lo, hi = np.nanquantile(est, [0.025, 0.975])
    if lo == hi:
        return {"fraction": None, "interval": None}
    return {"fraction": float(np.clip((flagged / total - e) / (c - e), 0.0, 1.0)), "interval": [float(lo), float(hi)]}


def _fraction(flagged: int, total: int, point, ruled: bool) -> dict[str, Any]:
    """The corrected fraction as ``galaxy-ray stats`` gives it now (``ruled``), or as HEAD did."""
    from galaxy_ray.merger import fractions

    rates = dict(val_positives=point.positives, val_true_positives=point.true_positives,
                 val_negatives=point.negatives, val_false_positives=point.false_positives)
    if not ruled:
        return _head_corrected(flagged, total, rates)
    est = fractions.corrected_fraction(flagged, total, **rates)
    ok = bool(np.isfinite(est["fraction"]))
    out = {"fraction": est["fraction"] if ok else None, "interval": est["interval"] if ok else None}
    out["printed"] = fractions.format_corrected({"corrected_fraction": out["fraction"],
                                                 "corrected_fraction_95": out["interval"],
                                                 "caveat": est.get("caveat"),
                                                 "correction": None if ok else f"unavailable: {est['reason']}"})
    return out


def _one_map(name: str, fit, data: dict[str, Any]) -> dict[str, Any]:
    from galaxy_ray.merger.calibration import scores_with_intervals
    from galaxy_ray.merger.operating import choose_threshold

    (vs, vy), (ss, sy) = data["val"], data["survey"]
    cal = fit(vs, vy)
    p_val, p_survey = cal(vs).astype(np.float64), cal(ss).astype(np.float64)
    point = choose_threshold(vy, p_val)
    flags = p_survey >= point.threshold
    out = {"map": cal.to_dict()["method"],
           "exact_0_or_1_survey": float(((p_survey == 0) | (p_survey == 1)).mean()),
           "exact_0_survey": int((p_survey == 0).sum()), "exact_1_survey": int((p_survey == 1).sum()),
           "validation_cross_fitted": scores_with_intervals(_cross_fitted(fit, vs, vy), vy),
           "survey": scores_with_intervals(p_survey, sy),
           "threshold": point.threshold, "validation_tp_fp": [point.true_positives, point.false_positives],
           "corrected_head_rule": _fraction(int(flags.sum()), len(flags), point, ruled=False),
           "corrected_now": _fraction(int(flags.sum()), len(flags), point, ruled=True)}
    groups = {}
    for g in sorted(set(data["morphology"])):
        inside = data["morphology"] == g
        groups[str(g)] = {"galaxies": int(inside.sum()), "flagged": int(flags[inside].sum()),
                          "true_fraction": float(sy[inside].mean()),
                          "head": _fraction(int(flags[inside].sum()), int(inside.sum()), point, ruled=False),
                          "now": _fraction(int(flags[inside].sum()), int(inside.sum()), point, ruled=True)}
    out["by_morphology"] = groups
    print(f"  {name:<7} ({out['map']}): exactly 0 or 1 {out['exact_0_survey']} + {out['exact_1_survey']} of "
          f"{len(ss)}; survey log loss {out['survey']['log_loss']:.4f} {_iv(out['survey']['log_loss_95'])}, ECE "
          f"{out['survey']['ece']:.4f} {_iv(out['survey']['ece_95'])}; validation (cross-fitted) log loss "
          f"{out['validation_cross_fitted']['log_loss']:.4f} {_iv(out['validation_cross_fitted']['log_loss_95'])}, "
          f"ECE {out['validation_cross_fitted']['ece']:.4f} {_iv(out['validation_cross_fitted']['ece_95'])}",
          flush=True)
    head = out["corrected_head_rule"]
    print(f"          corrected fraction: HEAD's rule {_fmt(head)}; now {out['corrected_now']['printed']}", flush=True)
    for g, v in groups.items():
        print(f"          {g:<11} {v['flagged']:>4} of {v['galaxies']:<4} flagged, true {v['true_fraction']:.3f}: "
              f"HEAD {_fmt(v['head'])}; now {v['now']['printed']}", flush=True)
    return out


def _iv(pair) -> str:
    return f"[{pair[0]:.4f}, {pair[1]:.4f}]" if pair else "[n/a]"


def _fmt(est: dict) -> str:
    return "n/a" if est["fraction"] is None else f"{est['fraction']:.4f} {_iv(est['interval'])}"


def compare(data: dict[str, Any], label: str) -> dict[str, Any]:
    """Both maps on one network's scores; prints a summary and returns the JSON-ready numbers."""
    from galaxy_ray.merger.calibration import IsotonicCalibration
    from galaxy_ray.merger.choice import fit_merger_calibration

    (vs, vy), (ss, sy) = data["val"], data["survey"]
    print(f"\n== {label}: {int(vy.sum())} mergers of {len(vy)} validation galaxies; survey {int(sy.sum())} of "
          f"{len(sy)} (true fraction {sy.mean():.4f})", flush=True)
    _, selection = fit_merger_calibration(vs, vy)
    print(f"  selection: {json.dumps(selection)}", flush=True)
    return {"validation_mergers": int(vy.sum()), "validation_galaxies": int(len(vy)),
            "survey_mergers": int(sy.sum()), "survey_galaxies": int(len(sy)), "true_fraction": float(sy.mean()),
            "vote_cut": data["vote_cut"], "selection": selection,
            "before": _one_map("before", IsotonicCalibration.fit, data),
            "after": _one_map("after", lambda s, y: fit_merger_calibration(s, y)[0], data)}


def demo_data(out: Path, args) -> dict[str, Any]:
    """``jobs/demo.py``'s steps 1-3 at ``--demo-train`` / ``--demo-survey`` galaxies, then ``evaluate`` the survey."""
    size, tree = str(args.image_size), ["--tree", "decals-dr8"]
    for name, n, seed in (("train", args.demo_train, "1"), ("survey", args.demo_survey, "2")):
        if not (out / name).exists():
            _run(["synth", str(out / f"{name}_files"), "--n", str(n), "--size", size, "--format", "manifest",
                  "--seed", seed, *tree])
            _run(["pack", str(out / f"{name}_files"), str(out / name), "--rows-per-shard", "500"])
    run = out / "runs" / "bench-demo"
    if not (run / "model.pt").exists():
        _run(["train", "--source", str(out / "train"), "--task", "votes", "--schema", "decals-dr8", "--arch",
              "resnet18", "--weights", "none", "--image-size", size, "--epochs", str(args.epochs),
              "--freeze-epochs", "0", "--batch-size", "32", "--workers", "1", "--name", "bench-demo",
              "--storage", str(out / "runs")])
    ev = out / "eval-survey"
    if not (ev / "predictions.parquet").exists():
        _run(["evaluate", str(run / "model.pt"), str(out / "survey"), "--split", "all", "--out", str(ev)])
    return _scores(run, ev / "predictions.parquet")


def gz2_data(out: Path, args) -> dict[str, Any]:
    """The real SDSS/GZ2 sample: train on half, validation the other half; the "survey" is all of it."""
    run = out / "runs" / "bench-gz2"
    if not (run / "model.pt").exists():
        _run(["train", "--source", str(args.gz2), "--task", "gz2", "--arch", "resnet18", "--weights", "none",
              "--image-size", str(args.image_size), "--epochs", str(args.epochs), "--freeze-epochs", "0",
              "--batch-size", "32", "--workers", "1", "--val-fraction", "0.5", "--merger-vote-cut",
              str(args.gz2_vote_cut), "--name", "bench-gz2", "--storage", str(out / "runs")])
    ev = out / "eval-gz2"
    if not (ev / "predictions.parquet").exists():
        _run(["evaluate", str(run / "model.pt"), str(args.gz2), "--split", "all", "--out", str(ev)])
    return _scores(run, ev / "predictions.parquet")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="working folder (kept: a rerun reuses its data, runs and predictions)")
    p.add_argument("--data", nargs="+", choices=["demo", "gz2"], default=["demo", "gz2"])
    p.add_argument("--gz2", default=os.environ.get("GALAXY_RAY_GZ2_SAMPLE"), help="the SDSS/GZ2 sample folder")
    p.add_argument("--gz2-vote-cut", type=float, default=0.1)
    p.add_argument("--demo-train", type=int, default=1200)
    p.add_argument("--demo-survey", type=int, default=3000)
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--epochs", type=int, default=3)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"bench": "calibration", "epochs": args.epochs, "image_size": args.image_size}
    if "demo" in args.data:
        result["demo"] = compare(demo_data(out / "demo", args), "demo (synthetic GZ DESI votes)")
    if "gz2" in args.data:
        if not args.gz2:
            print("gz2: skipped, no sample (pass --gz2 or set GALAXY_RAY_GZ2_SAMPLE)", flush=True)
        else:
            result["gz2"] = compare(gz2_data(out / "gz2", args),
                                    f"real SDSS/GZ2 sample, Class8.6 > {args.gz2_vote_cut}")
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
