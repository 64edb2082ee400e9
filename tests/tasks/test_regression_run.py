"""Issue 32: ``--task regression`` end to end on synthetic cutouts whose targets are known functions of the image.

Each cutout is one round Gaussian galaxy of drawn width and peak; the two label columns are
``size``, its width (10 x sigma over the image side), and ``brightness``, 10 x the mean of its
8-bit pixels over 255 -- computed from the very pixels written, so both are functions of the
image alone.  A network trained on them must beat the mean baseline (R^2 > 0) on validation
galaxies it never trained on; the catalog, a query and the run's report follow.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from galaxy_ray.cli import main as cli_main
from galaxy_ray.cli import run_entry_point
from galaxy_ray.model import load_checkpoint

SIDE = 32


def blob(rng: np.random.Generator) -> tuple[bytes, float, float]:
    """A PNG of one Gaussian blob, its size label and its brightness label."""
    sigma, peak = rng.uniform(0.05, 0.2), rng.uniform(0.4, 1.0)
    yy, xx = (np.mgrid[:SIDE, :SIDE] - SIDE / 2 + 0.5) / SIDE
    img = peak * np.exp(-(xx**2 + yy**2) / (2 * sigma**2)) + rng.normal(0, 0.02, (SIDE, SIDE))
    pixels = (255 * np.clip(np.stack([img, 0.9 * img, 0.8 * img], -1), 0, 1)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue(), 10 * sigma, 10 * float(pixels.mean()) / 255


def blob_table(n: int, seed: int = 3) -> pa.Table:
    rng = np.random.default_rng(seed)
    images, size, brightness = zip(*(blob(rng) for _ in range(n)))
    return pa.table({"object_id": [f"b{i:04d}" for i in range(n)], "ra": rng.uniform(0, 360, n),
                     "dec": rng.uniform(-30, 60, n), "image": pa.array(images, pa.binary()),
                     "source": [f"blob[{i}]" for i in range(n)], "size": list(size), "brightness": list(brightness)})


def _train(argv: list[str]) -> int:
    from galaxy_ray.train import config_from_args, run_training

    def main(args) -> int:
        run_training(config_from_args(args))
        return 0

    return run_entry_point(main, argv)


@pytest.mark.slow
def test_regression_run_learns_a_function_of_the_image_and_its_catalog_query_and_report(
        ray_cluster, tmp_path, write_shards, capsys):
    shards = str(tmp_path / "shards")
    write_shards(blob_table(192), shards, rows_per_shard=96)
    assert _train(["--source", shards, "--task", "regression", "--label-column", "size,brightness", "--epochs", "6",
                   "--image-size", "32", "--workers", "1", "--batch-size", "16", "--bn-samples", "64",
                   "--storage", str(tmp_path / "runs"), "--name", "r"]) == 0
    run = tmp_path / "runs" / "r"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert len(rows) == 6 and all(np.isfinite(float(r["val_rmse"])) for r in rows)
    _, spec = load_checkpoint(str(run / "model.pt"))
    assert (spec.task, spec.output_names, spec.merger) == ("regression", ["size", "brightness"], None)

    # learned: better than predicting the training mean, on the validation galaxies, for both columns
    report = json.loads((run / "evaluation.json").read_text())
    assert "merger" not in report
    section = report["regression"]
    assert section["baseline"] == "training mean"
    assert section["per_output"]["size"]["r2"] > 0 and section["per_output"]["brightness"]["r2"] > 0, section
    # the stored RMSE is the validation predictions' own, recomputed here
    preds = pq.read_table(run / "validation_predictions.parquet").to_pydict()
    y_true, y_pred = np.array(preds["y_true"]), np.array(preds["y_pred"])
    assert section["rmse"] == pytest.approx(np.sqrt(((y_true - y_pred) ** 2).mean()), rel=1e-5)
    assert (run / "predicted_vs_true.png").stat().st_size > 0
    capsys.readouterr()

    # the catalog's <label>_pred columns are the same network's predictions
    cat = tmp_path / "cat"
    assert cli_main(["infer", "--checkpoint", str(run / "model.pt"), "--source", shards, "--out", str(cat)]) == 0
    table = pq.read_table(cat).to_pandas().set_index("object_id")
    assert {"size_pred", "brightness_pred"} <= set(table.columns)
    assert table["p_merger"].isna().all() and table["morphology"].isna().all()
    got = table.loc[preds["object_id"], ["size_pred", "brightness_pred"]].to_numpy()
    np.testing.assert_allclose(got, y_pred, atol=1e-4)

    out = tmp_path / "big.csv"
    assert cli_main(["query", str(cat), "--where", "size_pred > 1.2", "--columns", "object_id,size_pred",
                     "--out", str(out)]) == 0
    picked = list(csv.DictReader(out.open()))
    assert len(picked) == int((table["size_pred"] > 1.2).sum()) and all(float(r["size_pred"]) > 1.2 for r in picked)

    assert cli_main(["report", str(run), str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert "predicted_vs_true.png" in page and "regression on size, brightness" in page
