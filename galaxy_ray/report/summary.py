"""The model summary at the top of a run's report: task (and a votes run's tree), architecture, validation metric,
merger flag."""

from __future__ import annotations

import json
from typing import Any, Mapping

from galaxy_ray import tasks
from galaxy_ray.errors import GalaxyRayError
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


def _task_line(task: str, spec: Mapping[str, Any]) -> str:
    """``gz2: the 37 GZ2 vote fractions``, ``classes (10 classes)`` or the votes task and its tree (the task's words)."""
    try:
        return tasks.get(task).describe(spec)
    except GalaxyRayError:
        return f"{task} (not a task this galaxy-ray knows)"


def model_summary(run_dir: str, config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what, value) rows describing a run's model, from its ``config.json`` and ``evaluation.json``.

    A votes run also gets ``fraction RMSE per question``: the conditional-fraction RMSE of each
    question of its tree (:func:`galaxy_ray.evaluate.votes_metrics`), when ``evaluation.json`` has it.
    """
    spec, cfg = config.get("spec", {}), config.get("config", {})
    task = spec.get("task") or cfg.get("task", "?")
    size = (spec.get("preprocess") or {}).get("image_size", cfg.get("image_size", "?"))
    rows = [("task", _task_line(task, spec)),
            ("architecture", f"{spec.get('arch', cfg.get('arch', '?'))} at {size} px, weights "
                             f"{cfg.get('weights', 'none')}, {config.get('epochs_done', '?')} epochs")]
    best = config.get("best") or {}
    if best:
        note = {"val_loss": " (the loss per validation galaxy that chose the best epoch, lower is better: for votes "
                            "the Dirichlet-multinomial negative log-likelihood of the counts, not a fraction; the "
                            "evaluation line below is the comparable figure)"}
        rows.append(("best validation metric", ", ".join(f"{k} {v:.4f}{note.get(k, '')}" for k, v in best.items())))
    evaluation = _evaluation(run_dir)
    if evaluation is None:
        rows.append(("evaluation", f"no {EVALUATION_JSON} in the run directory"))
        return rows
    rows.append(("evaluation", headline(evaluation)))
    if task in tasks.TASKS:
        rows += tasks.get(task).summary_rows(evaluation.get(task) or {})
    merger = evaluation.get("merger")
    rows.append(("merger flag", merger_line(merger) if merger else "the model has no merger output"))
    return rows
