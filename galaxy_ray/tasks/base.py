"""What every task answers: the :class:`Task` base class.

A task is what a model predicts and everything that follows from it: which
column holds its labels and what a labelled row is, the targets and their dtype,
the outputs' names and catalog columns, how the network's outputs become
probabilities, the loss, the validation and evaluation metrics and the monitored
one, the merger score and the merger truth, the morphology label, and the
report's words.  Each task is one module of :mod:`galaxy_ray.tasks`; code
elsewhere asks the task (``tasks.get(spec.task)``) instead of comparing names.

This module and the task modules import no torch: the methods that build a head
or a loss import it (and :mod:`galaxy_ray.tasks.heads`) when called.  The
``spec`` arguments are :class:`galaxy_ray.model.spec.ModelSpec` objects, or
anything with its ``task``, ``output_names``, ``merger``, ``tree`` and
``calibration``; ``cfg`` arguments are :class:`galaxy_ray.train.config.TrainConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from galaxy_ray.data.labels import label_present
from galaxy_ray.errors import GalaxyRayError

__all__ = ["ReportTruth", "Task", "stack_rows"]


def stack_rows(values: Sequence[Any], width: int | None = None) -> np.ndarray:
    """Label values (numbers, or lists of numbers) of N rows as float32 (N, K); (0, width or 0) for none."""
    if not len(values):
        return np.zeros((0, width or 0), dtype=np.float32)
    return np.stack([np.asarray(v, dtype=np.float32) for v in values]).reshape(len(values), -1)


class Task:
    """One kind of prediction.  Subclasses set the attributes and override what differs.

    Attributes
    ----------
    name : str
        The ``--task`` value, stored in every checkpoint's spec.
    summary : str
        What it predicts, a few words for ``--task``'s help.
    default_label : str or None
        The label column when ``--label-column`` is not given (None: the flag is required).
    target_dtype : str
        The numpy dtype of training targets (``int64`` class indices or ``float32``).
    monitor : (str, str)
        The validation metric that picks the best epoch and stops early, and ``min`` or ``max``.
    vote_truth : bool
        Merger truth is a volunteer vote cut (``--merger-vote-cut``), not a labelled class.
    temperature : bool
        Class probabilities are temperature-scaled on validation at the end of training.
    takes_class_weights, takes_schema : bool
        ``--class-weights`` and ``--schema`` apply to this task.
    dirichlet : bool
        The training outputs are Dirichlet concentrations: a catalog averages its views as
        concentrations and keeps them for the fractions' intervals.
    """

    name: str = ""
    summary: str = ""
    default_label: str | None = None
    target_dtype: str = "float32"
    monitor: tuple[str, str] = ("val_loss", "min")
    vote_truth: bool = False
    temperature: bool = False
    takes_class_weights: bool = False
    takes_schema: bool = False
    dirichlet: bool = False

    def __repr__(self) -> str:
        return f"<task {self.name}>"

    # ------------------------------------------------------------------ options and labels

    def check_config(self, cfg) -> None:
        """Refuse options that do not apply to this task, in one line (``--class-weights``, ``--schema``)."""
        if cfg.class_weights and not self.takes_class_weights:
            raise GalaxyRayError("--class-weights applies to --task classes only")
        if cfg.schema is not None and not self.takes_schema:
            raise GalaxyRayError(f"--schema {cfg.schema}: a tree for --task votes (gz2 trains Kaggle's 37 "
                                 "fractions); pass --task votes")

    def label_column(self, given: str | None) -> str:
        """The label column: ``given`` (``--label-column``) or this task's default.

        Raises
        ------
        GalaxyRayError
            Neither (a task whose labels have no standard column).
        """
        if given:
            return given
        if self.default_label is None:
            raise GalaxyRayError(f"--task {self.name} needs --label-column COLUMN: the numeric column(s) to predict")
        return self.default_label

    def evaluation_label(self, spec, given: str | None) -> str:
        """The label column to score a model of ``spec`` on: ``given`` (``--label-column``) or the default."""
        return self.label_column(given)

    def missing_label_hint(self) -> str:
        """What to do when the source lacks the label column."""
        return "is it a labelled GZ2 source? pass --label-column"

    def prepare_source(self, ds, tree: str | None, source: str, label: str, given: bool):
        """The source's Dataset made ready for this task's ``label`` column, and its tree (``tree`` unchanged: none).

        ``given``: the label column came from ``--label-column``.  Most tasks read the label
        column as it is; votes assembles its count column first.
        """
        return ds, tree

    def labelled(self, values: np.ndarray, output_names: Sequence[str] | None = None) -> np.ndarray:
        """bool (N,): rows this task can train or be scored on (the one labelled-row filter)."""
        return label_present(values)

    def targets(self, values: np.ndarray, output_names: Sequence[str] | None) -> np.ndarray:
        """Training targets of labelled rows: float32 (N, K) (or int64 (N,) class indices).

        ``output_names`` are the model's outputs where the task needs them to read a label
        (classes: the class index), else None.
        """
        return stack_rows(values, len(output_names) if output_names is not None else None)

    def target_matrix(self, values: np.ndarray, output_names: Sequence[str]) -> np.ndarray:
        """Evaluation targets of labelled rows, float32 (N, K) (class labels one-hot)."""
        return stack_rows(values, len(output_names)).reshape(len(values), len(output_names))

    def summarize(self, summary, values: np.ndarray, is_val: np.ndarray, cfg) -> None:
        """Fill ``summary`` (:class:`galaxy_ray.train.data.DataSummary`) from the labelled rows' values."""
        raise NotImplementedError

    def outputs(self, cfg, summary) -> dict[str, Any]:
        """The spec's ``output_names``, ``merger`` and ``tree`` of a run (keyword arguments of ``ModelSpec``)."""
        raise NotImplementedError

    def check_spec(self, spec) -> None:
        """Refuse a spec whose outputs do not fit this task; fill in the task's default merger and tree."""

    def tree(self, spec):
        """The :class:`~galaxy_ray.trees.Schema` the outputs follow (None: no tree)."""
        return None

    # ------------------------------------------------------------------ network (torch, on call)

    def activation(self, spec):
        """The module between the linear head and the training outputs (a torch module, or None)."""
        return None

    def question_slices(self, spec) -> list[tuple[int, int]]:
        """Each question's (start, stop) in the outputs (vote models; empty otherwise)."""
        return []

    def probabilities(self, net, out):
        """The network's training outputs ``out`` (N, K) as the outputs a catalog reads, float32."""
        return out

    def loss(self, spec, class_weights: Sequence[float] | None = None, label_smoothing: float = 0.0):
        """``loss(model(x), target)``: mean squared error unless a task says otherwise."""
        from torch import nn

        return lambda out, target: nn.functional.mse_loss(out.float(), target.float())

    def validation_step(self, sums, net, out, target) -> None:
        """Add one validation batch to ``sums`` (:class:`galaxy_ray.train.steps.ValidationSums`): squared error."""
        sums.squared_error += float(((out.float() - target.float()) ** 2).sum())

    def validation_metrics(self, sums, num_outputs: int) -> dict[str, float]:
        """The validation metrics of one epoch from the all-reduced ``sums``: RMSE over all outputs."""
        import math

        return {"val_rmse": math.sqrt(sums.squared_error / max(sums.samples * num_outputs, 1))}

    # ------------------------------------------------------------------ reading outputs

    def output_columns(self, spec) -> list[str]:
        """Catalog column names of the outputs, in output order."""
        raise NotImplementedError

    def column_meaning(self, spec) -> str:
        """What the output columns are, one line (the catalog's provenance)."""
        raise NotImplementedError

    def provenance(self, spec) -> dict[str, Any]:
        """Task-specific entries of a catalog's provenance (besides ``column_meaning``)."""
        return {}

    def output_descriptions(self, output_names: Sequence[str], calibration: Mapping | None,
                            tree: str | None) -> dict[str, str]:
        """Catalog column -> one-line description of the outputs, tree columns and ``morphology``."""
        raise NotImplementedError

    def tree_column_names(self, spec) -> list[str]:
        """The catalog columns after the outputs (a tree's fractions, proportions asked, intervals)."""
        return []

    def tree_columns(self, spec, outputs: np.ndarray, concentrations: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The values of :meth:`tree_column_names`, float32 (N,) each."""
        return {}

    def merger_score(self, spec, probs: np.ndarray, index: int) -> np.ndarray:
        """The uncalibrated merger score per row, float64 (N,), from output ``index``."""
        return np.asarray(probs, dtype=np.float64)[:, index]

    def merger_uncalibrated(self, merger: str) -> str:
        """What an uncalibrated ``p_merger`` is, for the catalog's column description."""
        return f"probability of the class {merger!r}, uncalibrated (the checkpoint holds no merger calibration)"

    def default_merger(self, cfg, names: Sequence[str] | None) -> str | None:
        """The merger output when ``--merger`` is not given (None: no merger output)."""
        return None

    def merger_truth_values(self, spec, y_true: np.ndarray) -> np.ndarray:
        """The merger answer's value in evaluation targets, float64 (N,), compared with the truth's cut."""
        return np.asarray(y_true, dtype=np.float64)[:, spec.output_names.index(spec.merger)]

    def truth_rule(self, spec, vote_cut: float | None) -> str:
        """The sentence stored with every merger rate: what counted as a true merger."""
        return f"labelled class {spec.merger!r}"

    def morphology(self, spec, probs: np.ndarray) -> np.ndarray:
        """The label a person would quote per row (object array; None where the task has none)."""
        return np.full(len(probs), None, dtype=object)

    def morphology_probability(self, spec, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The output behind each row's morphology label, float32 (N,) (NaN without a label)."""
        return np.full(len(probs), np.nan, dtype=np.float32)

    # ------------------------------------------------------------------ evaluation and report

    def metrics(self, spec, y_true: np.ndarray, y_pred: np.ndarray, train_mean: Sequence[float] | None,
                class_counts: Sequence[int] | None) -> dict[str, Any]:
        """This task's section of ``evaluation.json`` (stored under the task's name)."""
        raise NotImplementedError

    def headline(self, section: Mapping[str, Any], split: str) -> str:
        """One line of the key figures of :meth:`metrics`' section."""
        return (f"{split} RMSE {section['rmse']:.4f} vs {section['baseline_rmse']:.4f} for the mean baseline "
                f"({section['rows']} galaxies)")

    def plots(self, section: Mapping[str, Any], out: str) -> list[str]:
        """The task's figures of the evaluation report, written in ``out``; their URIs."""
        return []

    # the report's words and figures (galaxy_ray.report reads these; nothing there names a task)
    #: One output's value, and the outputs in plural, in captions and axis labels.
    report_value: str = "probability"
    report_plural: str = "class probabilities"
    #: What the output columns of a catalog are, on its histograms' axes.
    catalog_value: str = "class probability"
    #: The report's figure of predictions against the truth: ``predicted_vs_true`` panels or a ``confusion`` matrix.
    report_figure: str = "confusion"
    #: The caption of the ``predicted_vs_true`` figure.
    report_panel_caption: str = ("Validation galaxies, one panel per output: true against predicted value, hexagons "
                                 "coloured by their count on one log scale (colour bar); red: the 1:1 line.")

    def describe(self, spec: Mapping[str, Any]) -> str:
        """The report's one-line ``task`` row for a stored spec (a ``config.json``'s ``spec`` dict)."""
        return f"{self.name} ({len(spec.get('output_names') or [])} classes)"

    def summary_rows(self, section: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Extra (what, value) rows of the report's model summary from this task's evaluation section."""
        return []

    def report_truth(self, spec: Mapping[str, Any], names: list[str], y_true: np.ndarray, where: tuple[str, str]):
        """What the report compares predictions with: a :class:`ReportTruth` of the validation targets.

        ``where`` is (the run's ``config.json``, its validation predictions), for messages.
        """
        return ReportTruth(list(names), y_true, np.ones(y_true.shape, dtype=bool))

    def usable_truth(self, y_true: np.ndarray) -> np.ndarray:
        """bool (N,): validation rows whose stored targets the report can use (no NaN)."""
        return ~np.isnan(y_true).any(axis=1)

    def value_range(self, true: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
        """The axes' range of the report's predicted-versus-true panels (fractions and probabilities: 0 to 1)."""
        return 0.0, 1.0


@dataclass
class ReportTruth:
    """The validation truth a report draws: panel labels, true values (N, K), which of them count, the tree.

    ``observed``: the truth is the volunteers' observed fractions (vote counts), not a label.
    """

    labels: list[str]
    true: np.ndarray
    counted: np.ndarray
    tree: Any = None
    observed: bool = False
