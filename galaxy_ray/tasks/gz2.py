"""``gz2``: Kaggle's 37 cumulative GZ2 vote fractions, kept consistent with the decision tree.

Targets are the 37 fractions in Kaggle order (Class1.1 ... Class11.6); the head is a
softmax per question times the parent answer (:class:`galaxy_ray.tasks.heads.GZ2TreeHead`,
Dieleman et al. 2015), the loss mean squared error, whose root is the Kaggle Galaxy
Challenge RMSE.  The merger output is Class8.6 (odd x merger); a true merger is
``Class8.6 > --merger-vote-cut`` (Darg et al. 2010).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from galaxy_ray import schema
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.figures import literal_text, pyplot, save_figure
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.tasks.base import ReportTruth, Task, stack_rows

__all__ = ["plot_per_answer", "gz2_metrics", "GZ2Task", "MORPHOLOGY_ANSWER", "VOTE_CUT_REFERENCE"]

#: For a gz2 morphology label, the Kaggle output that is its probability (cumulative vote fraction).
MORPHOLOGY_ANSWER = {"elliptical": "Class1.1", "artifact": "Class1.3", "edge_on": "Class2.1",
                     "spiral": "Class4.1", "disk": "Class4.2"}
VOTE_CUT_REFERENCE = ("Darg et al. 2010, MNRAS 401, 1043: Galaxy Zoo 1 mergers have merger vote fraction "
                      "f_m > 0.4; Class8.6 (odd x merger) is GZ2's fraction of all volunteers answering merger")


class GZ2Task(Task):
    """37 tree-consistent cumulative vote fractions (see the module's text)."""

    name = "gz2"
    summary = "Kaggle's 37 cumulative vote fractions"
    default_label = C.VOTES
    monitor = ("val_rmse", "min")
    vote_truth = True

    def summarize(self, summary, values: np.ndarray, is_val: np.ndarray, cfg) -> None:
        """The training mean of the 37 fractions and its validation RMSE (the mean-label baseline)."""
        try:
            votes = np.stack([np.asarray(v, dtype=np.float64) for v in values])
        except (TypeError, ValueError):
            votes = np.zeros((0, 0))
        if votes.ndim != 2 or votes.shape[1] != len(schema.GZ2_KAGGLE_COLUMNS):
            raise GalaxyRayError(f"{cfg.source}: column {cfg.label!r} does not hold 37 GZ2 vote fractions per row; "
                                 "use --task classes for class labels")
        mean = votes[~is_val].mean(axis=0)
        summary.train_mean = mean.tolist()
        summary.baseline_val_rmse = float(np.sqrt(((votes[is_val] - mean) ** 2).mean()))

    def targets(self, values: np.ndarray, output_names: Sequence[str] | None) -> np.ndarray:
        return stack_rows(values, len(schema.GZ2_KAGGLE_COLUMNS))

    def outputs(self, cfg, summary) -> dict[str, Any]:
        return {"output_names": list(schema.GZ2_KAGGLE_COLUMNS), "merger": cfg.merger}

    def default_merger(self, cfg, names: Sequence[str] | None) -> str | None:
        return schema.GZ2_KAGGLE_COLUMNS[schema.GZ2_MERGER_INDEX]

    def check_spec(self, spec) -> None:
        if tuple(spec.output_names) != schema.GZ2_KAGGLE_COLUMNS:
            raise GalaxyRayError("gz2 models have the 37 Kaggle outputs Class1.1 ... Class11.6, in order")
        if spec.merger is None:
            spec.merger = schema.GZ2_KAGGLE_COLUMNS[schema.GZ2_MERGER_INDEX]

    def tree(self, spec):
        from galaxy_ray.trees import GZ2

        return GZ2

    def activation(self, spec):
        from galaxy_ray.tasks.heads import GZ2TreeHead

        return GZ2TreeHead()

    # ------------------------------------------------------------------ reading outputs

    def output_columns(self, spec) -> list[str]:
        return list(schema.GZ2_ANSWER_COLUMNS)

    def column_meaning(self, spec) -> str:
        return "cumulative GZ2 vote fractions (Kaggle Class1.1 ... Class11.6 order)"

    def provenance(self, spec) -> dict[str, Any]:
        return {"kaggle_columns": list(schema.GZ2_KAGGLE_COLUMNS)}

    def output_descriptions(self, output_names: Sequence[str], calibration: Mapping | None,
                            tree: str | None) -> dict[str, str]:
        from galaxy_ray.tasks.tree_text import morphology_description, tree_descriptions

        gz2 = self.tree(None)
        out = tree_descriptions(gz2, cumulative=True)
        out[C.MORPHOLOGY] = morphology_description(gz2.title)
        return out

    def tree_column_names(self, spec) -> list[str]:
        from galaxy_ray.trees.columns import cumulative_column_names

        return cumulative_column_names(self.tree(spec))

    def tree_columns(self, spec, outputs: np.ndarray, concentrations: np.ndarray | None = None) -> dict[str, np.ndarray]:
        from galaxy_ray.trees.columns import cumulative_columns

        return cumulative_columns(self.tree(spec), outputs)

    def merger_uncalibrated(self, merger: str) -> str:
        return (f"uncalibrated: the model's {merger} cumulative vote fraction itself (the checkpoint holds no "
                "merger calibration), a vote fraction, not a probability of being a merger")

    def truth_rule(self, spec, vote_cut: float | None) -> str:
        return f"{spec.merger} vote fraction > {vote_cut:g} ({VOTE_CUT_REFERENCE})"

    def morphology(self, spec, probs: np.ndarray) -> np.ndarray:
        """The decision-tree reading of :func:`galaxy_ray.schema.gz2_morphology`."""
        return schema.gz2_morphology(probs)

    def morphology_probability(self, spec, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The cumulative vote fraction of the answer the label names (:data:`MORPHOLOGY_ANSWER`)."""
        index = {name: spec.output_names.index(col) for name, col in MORPHOLOGY_ANSWER.items()}
        rows = np.array([index[str(label)] for label in labels], dtype=np.int64)
        return probs[np.arange(len(probs)), rows].astype(np.float32)

    # ------------------------------------------------------------------ evaluation and report

    def metrics(self, spec, y_true, y_pred, train_mean, class_counts) -> dict[str, Any]:
        return gz2_metrics(y_true, y_pred, train_mean)

    def plots(self, section: Mapping[str, Any], out: str) -> list[str]:
        from galaxy_ray.io import layout, storage

        written = [storage.join(out, layout.RMSE_PER_ANSWER_PNG)]
        plot_per_answer(section, written[0])
        return written

    report_value = "vote fraction"
    report_plural = "vote fractions"
    report_figure = "predicted_vs_true"
    catalog_value = "vote fraction"
    report_panel_caption = ("Validation galaxies, one panel per GZ2 answer: true against predicted cumulative vote "
                            "fraction, hexagons coloured by their count on one log scale (colour bar); red: the 1:1 "
                            "line.")

    def describe(self, spec: Mapping[str, Any]) -> str:
        return "gz2: the 37 GZ2 vote fractions"

    def report_truth(self, spec, names, y_true, where):
        columns = list(schema.GZ2_ANSWER_COLUMNS) if len(names) == len(schema.GZ2_ANSWER_COLUMNS) else list(names)
        return ReportTruth(columns, y_true, np.ones(y_true.shape, dtype=bool))


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




@literal_text
def plot_per_answer(gz2: Mapping[str, Any], uri: str) -> None:
    """RMSE per GZ2 answer, model next to the mean baseline (``rmse_per_answer.png``)."""
    plt = pyplot()
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
    save_figure(fig, uri)
