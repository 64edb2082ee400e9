"""``galaxy-ray train --task votes`` end to end on a synthetic GZ DECaLS vote table: Ray Train, the
Dirichlet-multinomial loss, validation metrics, calibration of p_merger, and ``evaluate`` of the model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from galaxy_ray.cli import run_entry_point
from galaxy_ray.model import load_checkpoint
from galaxy_ray.synthetic.survey import synthesize
from galaxy_ray.trees import DECALS_DR5
from galaxy_ray.trees.fractions import observed_fractions


def _train(argv: list[str]) -> int:
    from galaxy_ray.train import config_from_args, run_training

    def main(args) -> int:
        run_training(config_from_args(args))
        return 0

    return run_entry_point(main, argv)


@pytest.mark.slow
def test_votes_run_trains_on_counts_and_evaluates(ray_cluster, tmp_path, capsys):
    from galaxy_ray.evaluate import main as evaluate_main

    survey = synthesize(str(tmp_path / "survey"), 96, 32, "manifest", seed=7, workers=1, tree="decals-dr5")
    assert _train(["--source", survey, "--task", "votes", "--epochs", "2", "--image-size", "32", "--workers", "1",
                   "--batch-size", "16", "--bn-samples", "32", "--storage", str(tmp_path / "runs"),
                   "--name", "v"]) == 0
    run = tmp_path / "runs" / "v"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(np.isfinite(float(r["val_loss"])) and 0 < float(r["val_fraction_rmse"]) < 1 for r in rows)
    _, spec, extra = load_checkpoint(str(run / "model.pt"), with_extra=True)
    assert (spec.task, spec.tree, spec.merger) == ("votes", "decals-dr5", "merging_merger")  # the tree was detected
    assert extra["merger"]["vote_cut"] == pytest.approx(0.4)

    # the stored evaluation is the per-question RMSE of the validation predictions, recomputed here
    report = json.loads((run / "evaluation.json").read_text())["votes"]
    preds = pq.read_table(run / "validation_predictions.parquet").to_pydict()
    counts, fractions = np.array(preds["y_true"], dtype=np.float64), np.array(preds["y_pred"], dtype=np.float64)
    assert counts.shape == (report["rows"], 34) and (counts == np.round(counts)).all()  # y_true holds the counts
    observed = observed_fractions(counts, DECALS_DR5)
    q = DECALS_DR5.question("smooth-or-featured")
    got = fractions[:, q.start:q.stop] - observed[:, q.start:q.stop]
    answered = counts[:, q.start:q.stop].sum(axis=1) > 0
    assert report["per_question"][q.key]["rmse"] == pytest.approx(np.sqrt((got[answered] ** 2).mean()), rel=1e-5)

    # evaluate on the same source finds the counts again (the checkpoint's tree) and agrees
    out = tmp_path / "ev"
    assert run_entry_point(evaluate_main, [str(run / "model.pt"), survey, "--out", str(out), "--split", "val"]) == 0
    again = json.loads((out / "evaluation.json").read_text())["votes"]
    assert again["rmse"] == pytest.approx(report["rmse"], abs=1e-6)
    assert "conditional-fraction RMSE" in capsys.readouterr().out
