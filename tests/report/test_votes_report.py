"""The report of a ``--task votes`` run: the tree's conditional fractions, observed against predicted.

A votes run's ``validation_predictions.parquet`` holds the volunteers' vote *counts* as ``y_true``
and the model's expected conditional fractions as ``y_pred``, both in the tree's answer order
(``tests/votes/test_vote_training.py`` checks that on a real training run).  The run built here has
the same files: the counts of a synthetic GZ DECaLS DR5 vote table of the shared 30-galaxy survey,
predictions mixed from the table's true vote probabilities and noise, and the evaluation that
training's finalize writes.  Expected values come from the table's own published ``_fraction``
columns (NaN where nobody reached a question), not from the counts the report reads.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from galaxy_ray import evaluate, report
from galaxy_ray.cli import run_entry_point
from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io.layout import CONFIG_JSON, METRICS_CSV, VALIDATION_PREDICTIONS
from galaxy_ray.merger.truth import choose_operating_point
from galaxy_ray.model.spec import ModelSpec
from galaxy_ray.report.summary import model_summary
from galaxy_ray.synthetic.votes import decals_vote_table
from galaxy_ray.trees import DECALS_DR5
from test_figures import KeptReport  # the Report that keeps each figure it saves
from test_report import source  # noqa: F401  (the shared 30-galaxy survey, seed 3)

TREE = DECALS_DR5
THRESHOLD = 0.3
BEST = 44.5992  # the best val_loss (the monitored metric), as config.json stores it


def votes_run(tmp_path, source, evaluation: bool = True):
    """A votes run directory (docs/contracts.md's files) over ``source``'s galaxies.

    Returns
    -------
    (pathlib.Path, dict)
        The run and what the test knows: ``published`` (N, 34) conditional fractions of the vote
        table (NaN: nobody reached the question) and ``y_pred`` (N, 34), in the tree's answer order.
    """
    table = decals_vote_table(3, 30, TREE)  # survey seed 3: the same object ids as `source`
    counts = table[list(TREE.count_forms["galaxy-datasets"])].to_numpy(np.float64)
    published = table[list(TREE.fraction_forms["galaxy-datasets"])].to_numpy(np.float64)
    truth = table[[f"true_{name}" for name in TREE.answer_names]].to_numpy(np.float64)
    rng = np.random.default_rng(5)
    y_pred = np.empty_like(truth)
    for start, stop in TREE.slices:  # each question's prediction sums to 1, as expected fractions do
        y_pred[:, start:stop] = 0.7 * truth[:, start:stop] + 0.3 * rng.dirichlet(np.ones(stop - start), len(truth))
    y_pred = y_pred.astype(np.float32).astype(np.float64)  # the values the report reads back from Parquet

    run = tmp_path / "run-votes"
    run.mkdir()
    with open(run / METRICS_CSV, "w", newline="") as f:
        w = csv.DictWriter(f, ["epoch", "phase", "train_loss", "val_loss", "val_fraction_rmse", "lr", "seconds"])
        w.writeheader()
        for e in range(1, 4):
            w.writerow({"epoch": e, "phase": "frozen" if e == 1 else "finetune", "train_loss": 40 / e,
                        "val_loss": 45 / e, "val_fraction_rmse": 0.3 / e, "lr": 1e-3, "seconds": 2})
    spec = ModelSpec.for_votes("resnet18", TREE.name, PreprocessConfig(32))
    preds = {"object_id": table["object_id"].to_numpy(), "y_true": counts.astype(np.float32),
             "y_pred": y_pred.astype(np.float32)}
    evaluate.write_predictions(str(run / VALIDATION_PREDICTIONS), preds)
    (run / CONFIG_JSON).write_text(json.dumps({
        "config": {"source": str(source), "task": "votes", "weights": "none"}, "spec": spec.to_dict(),
        "output_columns": list(TREE.fraction_columns), "best": {"val_loss": BEST}, "epochs_done": 3}))
    if evaluation:  # as training's finalize writes it: evaluation.json and the merger's precision-recall figure
        preds["error"] = np.array([None] * len(counts), dtype=object)
        result = evaluate.evaluate_predictions(spec, preds, threshold=THRESHOLD, vote_cut=0.4)
        point = choose_operating_point(spec, counts, y_pred, threshold=THRESHOLD, vote_cut=0.4)
        result["merger"]["curve"] = point["curve"]
        evaluate.write_report(result, str(run))
    return run, {"published": published, "y_pred": y_pred}


def _rmse(pred: np.ndarray, published: np.ndarray) -> float:
    voted = ~np.isnan(published)
    return float(np.sqrt(np.mean((pred[voted] - published[voted]) ** 2)))


def test_votes_summary_names_the_tree_and_the_fraction_rmse(source, tmp_path):
    run, known = votes_run(tmp_path, source)
    config = json.loads((run / CONFIG_JSON).read_text())
    rows = dict(model_summary(str(run), config))
    assert rows["task"].startswith("votes on the GZ DECaLS DR5 tree (decals-dr5)"), rows["task"]
    assert "34 answers in 10 questions" in rows["task"] and "conditional vote fractions" in rows["task"]
    assert "classes" not in rows["task"]
    assert rows["best validation metric"].startswith(f"val_loss {BEST:.4f} (the loss per validation galaxy")
    assert "Dirichlet-multinomial negative log-likelihood" in rows["best validation metric"]  # said what it is
    overall = _rmse(known["y_pred"], known["published"])
    assert rows["evaluation"].startswith(f"validation conditional-fraction RMSE {overall:.4f} vs "), rows["evaluation"]
    assert rows["evaluation"].endswith("(30 galaxies)")
    per_question = rows["fraction RMSE per question"]
    for q in TREE.questions:
        published = known["published"][:, q.start:q.stop]
        voted = int((~np.isnan(published[:, 0])).sum())
        if voted:
            want = f"{q.key} {_rmse(known['y_pred'][:, q.start:q.stop], published):.3f} (mean baseline "
            assert want in per_question and f"{voted} galaxies)" in per_question, (q.key, per_question)
        else:
            assert f"{q.key} n/a (mean baseline n/a, 0 galaxies)" in per_question
    assert rows["merger flag"].startswith(f"p_merger >= {THRESHOLD} ")


def test_a_votes_run_without_a_known_tree_is_one_line(source, tmp_path, capsys):
    run, _ = votes_run(tmp_path, source, evaluation=False)
    config = json.loads((run / CONFIG_JSON).read_text())
    config["spec"]["tree"] = "gz3"
    (run / CONFIG_JSON).write_text(json.dumps(config))
    assert run_entry_point(report.main, [str(run), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "config.json: a votes run without a known tree (spec.tree 'gz3')" in err and "decals-dr5" in err
    with pytest.raises(GalaxyRayError, match="gz3"):
        report.run_figures(report.Report(str(tmp_path / "out"), "t"), str(run))


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>"]


@pytest.mark.slow  # 34 hexbin and 34 histogram panels: ~15 s on 2 cores
def test_votes_run_report_shows_observed_against_predicted_conditional_fractions(source, tmp_path):
    run, known = votes_run(tmp_path, source)
    published, y_pred = known["published"], known["y_pred"]
    out = tmp_path / "out"
    out.mkdir()
    rep = KeptReport(str(out), "t")
    top = 2
    report.run_figures(rep, str(run), top=top)
    assert [name for name, _, _ in rep.figures] == ["curves.png", "merger_precision_recall.png",
                                                    "predicted_vs_true.png", "prediction_histograms.png",
                                                    "top_predictions.png"]  # no confusion matrix of answers
    titles = dict((name, title) for name, title, _ in rep.figures)
    assert titles["predicted_vs_true.png"] == "Predicted versus observed conditional vote fractions"
    page = open(rep.write_index()).read()
    assert "GZ DECaLS DR5" in page and "<th>fraction RMSE per question</th>" in page
    for name in titles:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"src='{name}'" in page

    hexes = _panels(rep.kept["predicted_vs_true.png"])
    assert len(hexes) == len(TREE.answers) == 34
    for k, (ax, answer) in enumerate(zip(hexes, TREE.answers)):
        voted = ~np.isnan(published[:, k])
        assert ax.get_xlabel() == "observed fraction" and ax.get_ylabel() == "predicted fraction"
        question, answer_line, rmse = ax.get_title().split("\n")
        assert (question, answer_line) == (f"{answer.question}:", answer.key)
        if voted.any():
            # the RMSE over the galaxies with a vote on the question, against the published fractions
            assert rmse == f"RMSE {_rmse(y_pred[:, k], published[:, k]):.3f} ({int(voted.sum())} galaxies)"
            assert ax.collections[0].get_array().sum() == voted.sum()  # hexagons hold exactly those galaxies
        else:
            assert rmse == "no votes (0 galaxies)"

    hists = _panels(rep.kept["prediction_histograms.png"])
    assert len(hists) == 34
    for k, ax in enumerate(hists):
        assert ax.get_xlabel() == "conditional vote fraction"
        grey = [p.get_height() for p in ax.patches if p.get_facecolor()[:3] == pytest.approx((0.75,) * 3)]
        if (~np.isnan(published[:, k])).any():
            assert sum(grey) == pytest.approx(1.0)  # fractions of the galaxies with votes on the question
        bins = np.histogram(published[~np.isnan(published[:, k]), k], bins=np.linspace(0, 1, 21))[0]
        assert np.count_nonzero(grey) == np.count_nonzero(bins), k

    # each image: the predicted / the published fraction ("no votes" where nobody reached the question)
    grid = rep.kept["top_predictions.png"]
    texts = [ax.get_title(loc="left").split("\n")[-1] for ax in grid.axes if ax.get_title(loc="left")]
    want = []
    for k in range(34):
        # only galaxies asked the question compete for its answers (the rest rank last)
        asked = np.where(np.isnan(published[:, k]), -np.inf, y_pred[:, k])
        for j in np.argsort(-asked, kind="stable")[:top]:
            seen = "no votes" if np.isnan(published[j, k]) else f"{published[j, k]:.2f}"
            want.append(f"{y_pred[j, k]:.2f} / {seen}")
    assert texts == want
    # the rule bites here: on some deep question a galaxy never asked has a higher prediction than the asked
    # ones shown, and is left out although enough galaxies were asked
    assert any(np.isnan(published[np.argsort(-y_pred[:, k], kind="stable")[:top], k]).any()
               and np.count_nonzero(~np.isnan(published[:, k])) >= top for k in range(34))
