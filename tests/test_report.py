"""`galaxy-ray report`: every figure for a labelled source, a training run and a catalog."""

from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pytest

from galaxy_ray import catalog, evaluate, report
from galaxy_ray.cli import run_entry_point
from galaxy_ray.io.layout import CONFIG_JSON, METRICS_CSV, VALIDATION_PREDICTIONS
from galaxy_ray.schema import GALAXY10_CLASSES, GZ2_ANSWER_COLUMNS, GZ2_KAGGLE_COLUMNS, class_column

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A real synthetic survey (packed shards: votes and Galaxy10 labels), 30 galaxies of 32 px."""
    from galaxy_ray.synthetic import synthesize

    out = tmp_path_factory.mktemp("survey")
    synthesize(str(out), 30, size=32, fmt="shards", seed=3, workers=1)
    return out


def labelled(source):
    data = report.read_labelled(str(source))
    assert len(data.object_id) == 30 and data.votes.shape == (30, 37) and data.label is not None
    return data


def assert_figures(out, names):
    index = (out / "index.html").read_text()
    for name in names:
        path = out / name
        assert path.read_bytes()[:8] == PNG, name
        assert path.stat().st_size > 5000, name  # a drawn figure, not an empty canvas
        assert f"src='{name}'" in index, name


@pytest.mark.slow
def test_source_report(source, tmp_path, capsys):
    out = tmp_path / "source_report"
    assert run_entry_point(report.main, [str(source), str(out), "--top", "2"]) == 0
    assert_figures(out, ["label_histograms.png", "answer_correlation.png", "prototypes.png",
                         "class_counts.png", "class_examples.png"])
    assert "wrote 5 figures" in capsys.readouterr().out


def test_prototypes_are_the_highest_votes(source):
    data = labelled(source)
    top = 3
    chosen = report.prototypes(data, top)
    assert list(chosen) == list(GZ2_ANSWER_COLUMNS)
    for i, name in enumerate(GZ2_ANSWER_COLUMNS):
        # the report's choice holds the top vote fractions of the answer, highest first
        want = -np.sort(-data.votes[:, i])[:top]  # NaN (no votes) sorts last
        assert list(data.votes[chosen[name], i]) == list(want), name
    best = data.object_id[np.argmax(data.votes[:, GZ2_ANSWER_COLUMNS.index("odd_feature_merger")])]
    assert data.object_id[chosen["odd_feature_merger"][0]] == best
    assert best in data.images and data.images[best][0] is not None
    # the correlation matrix the report draws: symmetric, unit diagonal where answers vary
    corr = report.answer_correlation(data.votes)
    varies = data.votes.std(axis=0) > 0
    assert corr.shape == (37, 37) and np.allclose(corr, corr.T, equal_nan=True)
    assert np.allclose(np.diag(corr)[varies], 1.0)


def fake_run(tmp_path, source, task):
    """A training run directory per docs/contracts.md, predictions from the source's real labels plus noise."""
    data = labelled(source)
    run = tmp_path / f"run-{task}"
    run.mkdir()
    metric = "val_rmse" if task == "gz2" else "val_accuracy"
    with open(run / METRICS_CSV, "w", newline="") as f:
        w = csv.DictWriter(f, ["epoch", "phase", "train_loss", "val_loss", metric, "lr", "seconds"])
        w.writeheader()
        for e in range(1, 4):
            w.writerow({"epoch": e, "phase": "frozen" if e == 1 else "finetune", "train_loss": 1 / e,
                        "val_loss": 1.2 / e, metric: 0.2 / e if task == "gz2" else 0.3 * e, "lr": 1e-3, "seconds": 2})
    rng = np.random.default_rng(0)
    if task == "gz2":
        names, y_true = list(GZ2_KAGGLE_COLUMNS), data.votes
        y_pred = np.clip(y_true + rng.normal(0, 0.05, y_true.shape), 0, 1)
        columns = list(GZ2_ANSWER_COLUMNS)
    else:
        names = list(GALAXY10_CLASSES)
        y_true = np.eye(len(names))[[names.index(v) for v in data.label]]
        y_pred = 0.6 * y_true + 0.4 * rng.dirichlet(np.ones(len(names)), len(y_true))
        columns = [class_column(n) for n in names]
    evaluate.write_predictions(str(run / VALIDATION_PREDICTIONS), {
        "object_id": data.object_id, "y_true": y_true.astype(np.float32), "y_pred": y_pred.astype(np.float32)})
    (run / CONFIG_JSON).write_text(json.dumps({
        "config": {"source": str(source), "task": task},
        "spec": {"arch": "resnet18", "task": task, "output_names": names, "merger": None},
        "output_columns": columns}))
    return run


@pytest.mark.slow
@pytest.mark.parametrize("task", ["gz2", "classes"])
def test_run_report(source, tmp_path, task):
    run = fake_run(tmp_path, source, task)
    cat_dir = tmp_path / "catalog"
    write_catalog(cat_dir, 3000)
    out = tmp_path / "run_report"
    assert run_entry_point(report.main, [str(run), str(out), "--catalog", str(cat_dir), "--top", "2"]) == 0
    figures = ["curves.png", "prediction_histograms.png", "top_predictions.png", "sky_map.png",
               "catalog_histograms.png", "morphology.png"]
    figures += ["predicted_vs_true.png"] if task == "gz2" else ["confusion_matrix.png"]
    assert_figures(out, figures)
    assert "could not" not in (out / "index.html").read_text()


def write_catalog(path, n):
    rng = np.random.default_rng(1)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    cols = {"object_id": [f"c{i}" for i in range(n)], "ra": ra, "dec": dec}
    for name in GZ2_ANSWER_COLUMNS:
        cols[name] = rng.random(n).astype(np.float32)
    p = rng.random(n).astype(np.float32)
    cols.update(morphology=rng.choice(["spiral", "elliptical", "merger"], n), p_merger=p, is_merger=p > 0.8,
                error=[None] * n)
    prov = {"task": "gz2", "output_columns": list(GZ2_ANSWER_COLUMNS)}
    catalog.write_catalog_file(pa.table(cols), str(path / "part-00000.parquet"), prov)
    catalog.write_catalog_summary(str(path), prov)


@pytest.mark.slow
def test_catalog_report_and_sky_cells(tmp_path):
    cat_dir = tmp_path / "catalog"
    write_catalog(cat_dir, 5000)
    out = tmp_path / "catalog_report"
    assert run_entry_point(report.main, [str(cat_dir), str(out), "--order", "3"]) == 0
    assert_figures(out, ["sky_map.png", "catalog_histograms.png", "morphology.png"])
    cells = report.sky_cells(catalog.open_catalog(str(cat_dir)), 3)
    assert cells["rows"].sum() == 5000 and cells["cell"].max() < 12 * 4**3
    assert cells["mergers"].sum() == catalog.merger_stats(str(cat_dir))["mergers"]


def test_bad_input_is_one_line(tmp_path, capsys):
    assert run_entry_point(report.main, [str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such file or directory" in err and "\n" not in err
