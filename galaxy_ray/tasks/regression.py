"""``regression``: one or more numeric label columns (a vote fraction, a redshift, a size), mean squared error.

As Zoobot's finetuneable regressor: the linear head's outputs are the predictions themselves,
trained by mean squared error on the raw values of ``--label-column NAME[,NAME...]`` (several
columns are one model with one output each).  The catalog gets ``<name>_pred`` per column; the
evaluation, each column's RMSE beside the mean baseline (predict the training mean for every
galaxy) and its coefficient of determination R^2 = 1 - SSE / SST, where SST is the squared
error of that same mean baseline (R^2 > 0: better than the mean).  The monitored metric is the
validation RMSE over all outputs.  No merger output, no morphology.

The targets are not rescaled: columns of very different scales weigh in the loss by their
variance, so give columns of comparable scale (or one model per column).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from galaxy_ray import schema
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.tasks.base import ReportTruth, Task, stack_rows

__all__ = ["RegressionTask", "label_names", "prediction_column"]

#: Most (true, predicted) pairs an evaluation keeps for its scatter figure.
SCATTER_POINTS = 500


def label_names(label: str) -> list[str]:
    """The columns of ``--label-column a,b``: ``["a", "b"]`` (spaces around names dropped)."""
    return [name.strip() for name in str(label).split(",") if name.strip()]


def prediction_column(name: str) -> str:
    """The catalog column of a predicted label: ``<name>_pred`` (``redshift`` -> ``redshift_pred``)."""
    return f"{schema.slugify(name)}_pred"


def _stack_labels(batch: dict[str, np.ndarray], names: list[str], into: str) -> dict[str, np.ndarray]:
    """Ray Data stage: the ``names`` columns as one list column ``into`` (None where any value is missing)."""
    values = np.stack([np.asarray(batch[n], dtype=np.float64) for n in names], axis=1)
    out = dict(batch)
    out[into] = np.array([None if not np.isfinite(row).all() else row.tolist() for row in values], dtype=object)
    return out


class RegressionTask(Task):
    """Numeric label columns (see the module's text)."""

    name = "regression"
    summary = "numeric label column(s), mean squared error"
    default_label = None  # --label-column is required
    monitor = ("val_rmse", "min")
    report_value = "value"
    report_plural = "predicted values"
    catalog_value = "predicted value"
    report_figure = "predicted_vs_true"

    def missing_label_hint(self) -> str:
        return "pass --label-column COLUMN[,COLUMN...] naming numeric columns of the source"

    def evaluation_label(self, spec, given: str | None) -> str:
        """``--label-column``, else the columns the model was trained on."""
        return given or ",".join(spec.output_names)

    def prepare_source(self, ds, tree: str | None, source: str, label: str, given: bool):
        """Several columns are stacked into one list column named as the flag's value (``a,b``)."""
        names = label_names(label)
        if len(names) < 2:
            return ds, tree
        from galaxy_ray.data.labels import column_names

        missing = [n for n in names if n not in column_names(ds)]
        if missing:
            raise GalaxyRayError(f"{source}: no column {missing[0]!r} of --label-column {label} (columns: "
                                 f"{', '.join(column_names(ds))})")
        return ds.map_batches(_stack_labels, fn_kwargs={"names": names, "into": label}, batch_format="numpy"), tree

    def labelled(self, values: np.ndarray, output_names: Sequence[str] | None = None) -> np.ndarray:
        """Set and finite in every column (a NaN is no label)."""
        known = super().labelled(values)
        for i in np.flatnonzero(known):
            try:
                known[i] = bool(np.isfinite(np.asarray(values[i], dtype=np.float64)).all())
            except (TypeError, ValueError):
                known[i] = False
        return known

    def summarize(self, summary, values: np.ndarray, is_val: np.ndarray, cfg) -> None:
        """The training mean of each column and the validation RMSE of predicting it (the mean baseline).

        Raises
        ------
        GalaxyRayError
            Labels that are not numbers, or another number of values than columns.
        """
        names = label_names(cfg.label)
        try:
            y = np.stack([np.asarray(v, dtype=np.float64).reshape(-1) for v in values])
        except (TypeError, ValueError):
            raise GalaxyRayError(f"{cfg.source}: column {cfg.label!r} holds values that are not numbers; "
                                 "--task regression predicts numeric columns") from None
        if y.shape[1] != len(names):
            raise GalaxyRayError(f"{cfg.source}: column {cfg.label!r} holds {y.shape[1]} values per row for "
                                 f"{len(names)} label names; name each column in --label-column a,b")
        mean = y[~is_val].mean(axis=0)
        summary.train_mean = mean.tolist()
        summary.baseline_val_rmse = float(np.sqrt(((y[is_val] - mean) ** 2).mean()))

    def outputs(self, cfg, summary) -> dict[str, Any]:
        return {"output_names": label_names(cfg.label), "merger": None}

    def check_spec(self, spec) -> None:
        if not spec.output_names:
            raise GalaxyRayError("a regression model needs at least one label column")
        if spec.merger is not None:
            raise GalaxyRayError(f"--merger {spec.merger!r}: a regression model has no merger output")

    def targets(self, values: np.ndarray, output_names: Sequence[str] | None) -> np.ndarray:
        return stack_rows(values, len(output_names) if output_names is not None else None)

    # ------------------------------------------------------------------ reading outputs

    def output_columns(self, spec) -> list[str]:
        return [prediction_column(n) for n in spec.output_names]

    def column_meaning(self, spec) -> str:
        return f"predicted values of the label columns {', '.join(spec.output_names)} (mean squared error regression)"

    def output_descriptions(self, output_names: Sequence[str], calibration: Mapping | None,
                            tree: str | None) -> dict[str, str]:
        out = {prediction_column(n): f"predicted {n}, in the units of the training label column {n!r} "
                                     "(regression trained by mean squared error)" for n in output_names}
        out[C.MORPHOLOGY] = "none: a regression model gives no morphology (always null)"
        return out

    # ------------------------------------------------------------------ evaluation and report

    def metrics(self, spec, y_true, y_pred, train_mean, class_counts) -> dict[str, Any]:
        """RMSE and R^2 against the mean baseline, overall and per column, and a sample of points for the scatter."""
        y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
        mean = np.asarray(train_mean if train_mean is not None else y_true.mean(axis=0), dtype=np.float64)
        sse, sst = ((y_pred - y_true) ** 2).sum(axis=0), ((mean[None, :] - y_true) ** 2).sum(axis=0)
        n = max(len(y_true), 1)
        r2 = lambda a, b: float(1.0 - a / b) if b > 0 else float("nan")  # noqa: E731
        per_output = {name: {"rmse": float(np.sqrt(sse[i] / n)), "baseline_rmse": float(np.sqrt(sst[i] / n)),
                             "r2": r2(sse[i], sst[i])} for i, name in enumerate(spec.output_names)}
        rmse, baseline = float(np.sqrt(sse.sum() / (n * len(sse)))), float(np.sqrt(sst.sum() / (n * len(sst))))
        rows = np.random.default_rng(0).permutation(len(y_true))[:SCATTER_POINTS]
        return {"rows": int(len(y_true)), "rmse": rmse, "baseline_rmse": baseline, "r2": r2(sse.sum(), sst.sum()),
                "baseline": "training mean" if train_mean is not None else "evaluated set mean",
                "rmse_over_baseline": rmse / baseline if baseline > 0 else float("nan"), "per_output": per_output,
                "sample": {"true": y_true[np.sort(rows)].tolist(), "predicted": y_pred[np.sort(rows)].tolist()}}

    def headline(self, section: Mapping[str, Any], split: str) -> str:
        return (f"{split} RMSE {section['rmse']:.4g} vs {section['baseline_rmse']:.4g} for the mean baseline, "
                f"R^2 {section['r2']:.3f} ({section['rows']} galaxies)")

    def summary_rows(self, section: Mapping[str, Any]) -> list[tuple[str, str]]:
        per = section.get("per_output") or {}
        return [("RMSE and R^2 per column", "; ".join(f"{k} {v['rmse']:.4g} (mean baseline {v['baseline_rmse']:.4g}, "
                                                      f"R^2 {v['r2']:.3f})" for k, v in per.items()))] if per else []

    def plots(self, section: Mapping[str, Any], out: str) -> list[str]:
        """``predicted_vs_true.png``: one scatter panel per column, with the 1:1 line, RMSE and R^2."""
        from galaxy_ray.figures import pyplot, save_figure
        from galaxy_ray.io import storage

        plt = pyplot()
        names = list(section["per_output"])
        true, pred = np.asarray(section["sample"]["true"]), np.asarray(section["sample"]["predicted"])
        fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.6), squeeze=False)
        for i, (ax, name) in enumerate(zip(axes[0], names)):
            t, p = (true[:, i], pred[:, i]) if true.size else (np.zeros(0), np.zeros(0))
            lo, hi = self.value_range(t, p)
            ax.scatter(t, p, s=6, alpha=0.6)
            ax.plot([lo, hi], [lo, hi], "r-", lw=0.8)
            m = section["per_output"][name]
            ax.set_title(f"{name}: RMSE {m['rmse']:.3g}, R^2 {m['r2']:.2f}", fontsize=9)
            ax.set_xlabel(f"true {name}")
            ax.set_ylabel(f"predicted {name}")
        written = [storage.join(out, "predicted_vs_true.png")]
        save_figure(fig, written[0])
        return written

    def describe(self, spec: Mapping[str, Any]) -> str:
        return f"regression on {', '.join(spec.get('output_names') or [])} (mean squared error)"

    def value_range(self, true: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
        """The range of the true and predicted values, padded by 5% (0 to 1 without values)."""
        values = np.concatenate([np.ravel(true), np.ravel(pred)]).astype(np.float64)
        values = values[np.isfinite(values)]
        if not values.size:
            return 0.0, 1.0
        lo, hi = float(values.min()), float(values.max())
        pad = 0.05 * (hi - lo) if hi > lo else 0.5
        return lo - pad, hi + pad

    def report_truth(self, spec, names, y_true, where):
        return ReportTruth([prediction_column(n) for n in names], y_true, np.ones(y_true.shape, dtype=bool))
