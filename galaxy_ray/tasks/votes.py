"""``votes``: one Dirichlet concentration per answer of a Galaxy Zoo tree, trained on vote counts.

The tree is ``gz2``, ``decals-dr5`` or ``decals-dr8`` (``--schema``, detected from the
count columns otherwise); targets are the volunteers' vote counts, the loss the
Dirichlet-multinomial likelihood (Walmsley et al. 2022, MNRAS 509, 3966), and the outputs
the expected *conditional* vote fractions.  The merger score is the merger answer's
cumulative fraction; a true merger is that fraction observed above ``--merger-vote-cut``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.tasks.base import ReportTruth, Task
from galaxy_ray.tasks.gz2 import VOTE_CUT_REFERENCE

__all__ = ["votes_metrics", "VotesTask"]


def _tree(name: str | None):
    from galaxy_ray.trees import get_schema

    return get_schema(name)


class VotesTask(Task):
    """Dirichlet concentrations over a Galaxy Zoo tree's answers (see the module's text)."""

    name = "votes"
    summary = "vote counts of a Galaxy Zoo tree, Dirichlet-multinomial likelihood"
    default_label = C.VOTE_COUNTS
    # the Dirichlet-multinomial likelihood is the proper score of counts; it weighs galaxies by their votes
    monitor = ("val_loss", "min")
    vote_truth = True
    takes_schema = True
    dirichlet = True

    def prepare_source(self, ds, tree: str | None, source: str, label: str, given: bool):
        """Without ``--label-column``, the tree's count columns assembled into ``vote_counts``."""
        if given:
            return ds, tree
        from galaxy_ray.data.vote_counts import attach_vote_counts

        ds, found = attach_vote_counts(ds, tree, source)
        return ds, found.name

    def summarize(self, summary, values: np.ndarray, is_val: np.ndarray, cfg) -> None:
        """The training mean of the observed conditional fractions, and its validation RMSE.

        The RMSE runs over the (galaxy, answer) pairs whose question got a vote: an unasked
        question has no fraction to predict.
        """
        from galaxy_ray.trees.dirichlet import question_totals
        from galaxy_ray.trees.fractions import observed_fractions

        tree = _tree(cfg.schema)
        counts = np.stack([np.asarray(v, dtype=np.float64) for v in values])
        if counts.ndim != 2 or counts.shape[1] != len(tree.answers):
            raise GalaxyRayError(f"{cfg.source}: column {cfg.label!r} does not hold the {len(tree.answers)} "
                                 f"{tree.title} vote counts per row")
        observed = observed_fractions(counts, tree)
        answered = question_totals(counts, tree) > 0
        train = answered[~is_val]
        mean = np.where(train.sum(axis=0) > 0,
                        (observed[~is_val] * train).sum(axis=0) / np.maximum(train.sum(axis=0), 1), 0.0)
        summary.train_mean = mean.tolist()
        err = ((observed[is_val] - mean) ** 2)[answered[is_val]]
        summary.baseline_val_rmse = float(np.sqrt(err.mean())) if err.size else float("nan")

    def outputs(self, cfg, summary) -> dict[str, Any]:
        tree = _tree(cfg.schema)
        return {"output_names": list(tree.answer_names), "merger": self.default_merger(cfg, None), "tree": tree.name}

    def default_merger(self, cfg, names: Sequence[str] | None) -> str | None:
        return cfg.merger or (_tree(cfg.schema).merger_answers or (None,))[0]

    def check_spec(self, spec) -> None:
        if spec.tree is None:
            raise GalaxyRayError("a votes model needs its tree: --schema gz2, decals-dr5 or decals-dr8")
        tree = _tree(spec.tree)
        spec.tree = tree.name
        if tuple(spec.output_names) != tree.answer_names:
            raise GalaxyRayError(f"a {tree.title} votes model has the tree's {len(tree.answer_names)} answers, "
                                 f"in order ({tree.answer_names[0]} ...)")
        if spec.merger is None and tree.merger_answers:
            spec.merger = tree.merger_answers[0]

    def tree(self, spec):
        return _tree(spec.tree) if spec.tree is not None else None

    # ------------------------------------------------------------------ network

    def activation(self, spec):
        from galaxy_ray.tasks.heads import ConcentrationHead

        return ConcentrationHead()

    def question_slices(self, spec) -> list[tuple[int, int]]:
        return list(self.tree(spec).slices)

    def probabilities(self, net, out):
        return net.expected_fractions(out)

    def loss(self, spec, class_weights=None, label_smoothing: float = 0.0):
        from galaxy_ray.tasks.heads import vote_count_loss

        return vote_count_loss(self.tree(spec).slices)

    def validation_step(self, sums, net, out, target) -> None:
        """Squared error of expected against observed fractions over the answered questions, and their count."""
        import torch

        counts = target.float()
        expected = net.expected_fractions(out)
        totals = torch.cat([counts[:, a:b].sum(dim=1, keepdim=True).expand(-1, b - a)
                            for a, b in net.question_slices], dim=1)
        answered = totals > 0
        observed = torch.where(answered, counts / totals.clamp(min=1e-12), torch.zeros_like(counts))
        sums.squared_error += float((((expected - observed) ** 2) * answered).sum())
        sums.answered += float(answered.sum())

    def validation_metrics(self, sums, num_outputs: int) -> dict[str, float]:
        import math

        return {"val_fraction_rmse": math.sqrt(sums.squared_error / sums.answered) if sums.answered else float("nan")}

    # ------------------------------------------------------------------ reading outputs

    def output_columns(self, spec) -> list[str]:
        return list(self.tree(spec).fraction_columns)

    def column_meaning(self, spec) -> str:
        return (f"expected conditional {self.tree(spec).title} vote fractions of a vote-count "
                "(Dirichlet-multinomial) model, with 90% intervals")

    def provenance(self, spec) -> dict[str, Any]:
        return {"tree": spec.tree}

    def output_descriptions(self, output_names: Sequence[str], calibration: Mapping | None,
                            tree: str | None) -> dict[str, str]:
        from galaxy_ray.tasks.tree_text import morphology_description, tree_descriptions

        if tree is None:
            return {}
        schema = _tree(tree)
        out = tree_descriptions(schema, cumulative=False, dirichlet=True)
        out[C.MORPHOLOGY] = morphology_description(schema.title)
        return out

    def tree_column_names(self, spec) -> list[str]:
        from galaxy_ray.trees.columns import vote_column_names

        return vote_column_names(self.tree(spec))

    def tree_columns(self, spec, outputs: np.ndarray, concentrations: np.ndarray | None = None) -> dict[str, np.ndarray]:
        from galaxy_ray.trees.columns import vote_columns

        return vote_columns(self.tree(spec), outputs, concentrations)

    def merger_score(self, spec, probs: np.ndarray, index: int) -> np.ndarray:
        """The merger answer's *cumulative* fraction: its expected conditional fraction times its
        question's proportion asked, the fraction of all volunteers who would answer merger, as GZ2's
        Class8.6 is; on the DECaLS trees, whose merging question is asked of every galaxy, the same."""
        from galaxy_ray.trees.fractions import to_cumulative

        return to_cumulative(np.asarray(probs, dtype=np.float64), self.tree(spec))[:, index]

    def merger_uncalibrated(self, merger: str) -> str:
        return (f"uncalibrated: the model's {merger} cumulative vote fraction itself (the checkpoint holds no "
                "merger calibration), a vote fraction, not a probability of being a merger")

    def merger_truth_values(self, spec, y_true: np.ndarray) -> np.ndarray:
        """Targets are vote counts: the merger answer's cumulative observed fraction."""
        from galaxy_ray.trees.fractions import observed_fractions, to_cumulative

        tree = self.tree(spec)
        index = spec.output_names.index(spec.merger)
        return to_cumulative(observed_fractions(np.asarray(y_true, dtype=np.float64), tree), tree)[:, index]

    def truth_rule(self, spec, vote_cut: float | None) -> str:
        return (f"volunteers' cumulative {spec.merger} vote fraction (votes for {spec.merger} over all volunteers "
                f"of the galaxy) > {vote_cut:g} ({VOTE_CUT_REFERENCE})")

    def morphology(self, spec, probs: np.ndarray) -> np.ndarray:
        from galaxy_ray.trees.morphology import tree_morphology

        return tree_morphology(probs, self.tree(spec))

    def morphology_probability(self, spec, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        from galaxy_ray.trees.morphology import label_probability

        return label_probability(probs, self.tree(spec), labels)

    # ------------------------------------------------------------------ evaluation and report

    def metrics(self, spec, y_true, y_pred, train_mean, class_counts) -> dict[str, Any]:
        return votes_metrics(y_true, y_pred, self.tree(spec), train_mean)

    def headline(self, section: Mapping[str, Any], split: str) -> str:
        return (f"{split} conditional-fraction RMSE {section['rmse']:.4f} vs {section['baseline_rmse']:.4f} for the "
                f"mean baseline ({section['rows']} galaxies)")

    report_value = "conditional vote fraction"
    report_plural = "conditional vote fractions"
    report_figure = "predicted_vs_true"
    catalog_value = "vote fraction"

    def describe(self, spec: Mapping[str, Any]) -> str:
        name = spec.get("tree")
        try:
            tree = _tree(name)
        except GalaxyRayError:
            return f"votes on tree {name!r} (not a known tree)"
        return (f"votes on the {tree.title} tree ({tree.name}): Dirichlet concentrations fitted to the vote counts "
                f"of its {len(tree.answers)} answers in {len(tree.questions)} questions, read as expected "
                "conditional vote fractions")

    def summary_rows(self, section: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``fraction RMSE per question``: ``smooth-or-featured 0.123 (mean baseline 0.201, 30 galaxies); ...``."""
        if not section.get("per_question"):
            return []
        fmt = lambda v: "n/a" if v is None or v != v else f"{v:.3f}"  # noqa: E731  (NaN: no galaxy had a vote)
        line = "; ".join(f"{key} {fmt(q.get('rmse'))} (mean baseline {fmt(q.get('baseline_rmse'))}, "
                         f"{q.get('rows', '?')} galaxies)" for key, q in section["per_question"].items())
        return [("fraction RMSE per question", line)]

    def report_truth(self, spec, names, counts, where):
        """The tree's answers, the observed fractions of ``counts`` and who voted.

        Raises
        ------
        GalaxyRayError
            ``spec`` names no known tree, or the predictions have another number of answers.
        """
        from galaxy_ray.trees.dirichlet import question_totals
        from galaxy_ray.trees.fractions import observed_fractions

        try:
            tree = _tree(spec.get("tree"))
        except GalaxyRayError as exc:
            raise GalaxyRayError(f"{where[0]}: a votes run without a known tree (spec.tree {spec.get('tree')!r}): "
                                 f"{exc}") from None
        if counts.shape[1] != len(tree.answers):
            raise GalaxyRayError(f"{where[1]}: {counts.shape[1]} values per row, but the {tree.title} tree of this "
                                 f"votes run has {len(tree.answers)} answers")
        voted = question_totals(np.nan_to_num(counts), tree) > 0  # votes_metrics counts the same (galaxy, answer)s
        return ReportTruth([f"{a.question}: {a.key}" for a in tree.answers], observed_fractions(counts, tree),
                           voted, tree, observed=True)

    def usable_truth(self, y_true: np.ndarray) -> np.ndarray:
        """Vote counts: NaN counts as none; a row is unusable only when all are NaN."""
        return ~np.isnan(y_true).all(axis=1)


def votes_metrics(counts: np.ndarray, y_pred: np.ndarray, tree, train_mean: Sequence[float] | None = None) -> dict[str, Any]:
    """Conditional-fraction RMSE of a votes model, overall and per question, beside the mean baseline.

    Parameters
    ----------
    counts : array_like, shape (N, K)
        The volunteers' vote counts in the tree's answer order.
    y_pred : array_like, shape (N, K)
        Expected conditional vote fractions (each question sums to 1).
    tree : galaxy_ray.trees.Schema
    train_mean : sequence of K floats, optional
        The training set's mean observed fractions (the baseline); the evaluated set's otherwise.

    Returns
    -------
    dict
        ``rmse`` and ``baseline_rmse`` over every (galaxy, answer) whose question got at least one
        vote, and ``per_question``: ``rows`` (galaxies with a vote on it), ``rmse``, ``baseline_rmse``.

    Notes
    -----
    The observed fraction of a question answered by n volunteers carries binomial noise of
    about sqrt(f (1 - f) / n), so even a perfect model has an RMSE above 0 here
    (``jobs/vote_noise_floor.py`` measures that floor on real GZ2 votes).
    """
    from galaxy_ray.trees.dirichlet import question_totals
    from galaxy_ray.trees.fractions import observed_fractions

    counts = tree.answer_rows(counts, "vote counts")
    y_pred = tree.answer_rows(y_pred, "fractions")
    observed = observed_fractions(counts, tree)
    answered = question_totals(np.nan_to_num(counts), tree) > 0
    if train_mean is not None:
        mean = np.asarray(train_mean, dtype=np.float64)
    else:
        mean = (observed * answered).sum(axis=0) / np.maximum(answered.sum(axis=0), 1)
    err, base = (y_pred - observed) ** 2, (mean[None, :] - observed) ** 2

    def rmse(values: np.ndarray, mask: np.ndarray) -> float:
        return float(np.sqrt(values[mask].mean())) if mask.any() else float("nan")

    per_question = {q.key: {"rows": int(answered[:, q.start].sum()),
                            "rmse": rmse(err[:, q.start:q.stop], answered[:, q.start:q.stop]),
                            "baseline_rmse": rmse(base[:, q.start:q.stop], answered[:, q.start:q.stop])}
                    for q in tree.questions}
    overall, baseline = rmse(err, answered), rmse(base, answered)
    return {"rows": int(len(counts)), "tree": tree.name, "rmse": overall, "baseline_rmse": baseline,
            "baseline": "training mean" if train_mean is not None else "evaluated set mean",
            "rmse_over_baseline": overall / baseline if baseline > 0 else float("nan"),
            "per_question": per_question}
