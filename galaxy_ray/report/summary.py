"""The model summary at the top of a run's report: task, architecture, validation metric, merger flag."""

from __future__ import annotations

import json
from typing import Any, Mapping

from galaxy_ray.evaluate import headline
from galaxy_ray.io import storage
from galaxy_ray.io.layout import EVALUATION_JSON
from galaxy_ray.merger.operating import format_threshold

__all__ = ["merger_line", "model_summary"]


def _interval(values: Any) -> str:
    return f" [{values[0]:.2f}, {values[1]:.2f}]" if values and None not in values else ""


def merger_line(merger: Mapping[str, Any]) -> str:
    """``p_merger >= 0.1724 (validation (F1-optimal)): precision 0.19 [0.09, 0.34], recall 0.88 [...]; 8 mergers``."""
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    source = merger.get("threshold_source") or merger.get("rule") or "given"
    return (f"p_merger >= {format_threshold(merger['threshold'])} ({source}): precision "
            f"{fmt(merger.get('precision'))}{_interval(merger.get('precision_interval'))}, recall "
            f"{fmt(merger.get('recall'))}{_interval(merger.get('recall_interval'))} (95% Wilson) on "
            f"{merger.get('positives', merger.get('true_mergers', '?'))} validation mergers and "
            f"{merger.get('negatives', '?')} others; truth: {merger.get('truth', '?')}")


def _evaluation(run_dir: str) -> dict | None:
    try:
        return json.loads(storage.read_bytes(storage.join(run_dir, EVALUATION_JSON)))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def model_summary(run_dir: str, config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what, value) rows describing a run's model, from its ``config.json`` and ``evaluation.json``."""
    spec, cfg = config.get("spec", {}), config.get("config", {})
    task = spec.get("task") or cfg.get("task", "?")
    size = (spec.get("preprocess") or {}).get("image_size", cfg.get("image_size", "?"))
    rows = [("task", {"gz2": "gz2: the 37 GZ2 vote fractions", "classes": "classes"}.get(task, str(task))
             + ("" if task == "gz2" else f" ({len(spec.get('output_names') or [])} classes)")),
            ("architecture", f"{spec.get('arch', cfg.get('arch', '?'))} at {size} px, weights "
                             f"{cfg.get('weights', 'none')}, {config.get('epochs_done', '?')} epochs")]
    best = config.get("best") or {}
    if best:
        rows.append(("best validation metric", ", ".join(f"{k} {v:.4f}" for k, v in best.items())))
    evaluation = _evaluation(run_dir)
    if evaluation is None:
        rows.append(("evaluation", f"no {EVALUATION_JSON} in the run directory"))
        return rows
    rows.append(("evaluation", headline(evaluation)))
    merger = evaluation.get("merger")
    rows.append(("merger flag", merger_line(merger) if merger else "the model has no merger output"))
    return rows
