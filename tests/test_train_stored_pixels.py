"""Training and evaluation on cutouts packed at the model's size (``pack --image-size``): used as stored, refused
for another size; and the training datasets keep ``pixels`` an Arrow tensor column."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.cli import run_entry_point
from galaxy_ray.data.sources import pack_main
from galaxy_ray.evaluate import main as evaluate_main
from galaxy_ray.train import TrainConfig, build_datasets, validate
from galaxy_ray.train import main as train_main
from galaxy_ray.synthetic import synthesize

ROWS = 90


@pytest.fixture(scope="module")
def packed(tmp_path_factory, ray_cluster) -> str:
    """90 synthetic 48-px galaxies packed with ``--image-size 32`` (one shard)."""
    root = tmp_path_factory.mktemp("train_stored")
    src = synthesize(str(root / "src"), ROWS, size=48, fmt="shards", seed=11, workers=1)
    out = str(root / "p32")
    assert run_entry_point(pack_main, [src, out, "--image-size", "32"]) == 0
    return out


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("galaxy-ray: error:")]
    assert len(err) == 1, err
    return err[0]


def test_train_refuses_another_model_size_before_training(packed, tmp_path, capsys):
    runs = tmp_path / "runs"
    for flags, side in ((["--image-size", "16"], 16), (["--image-size", "32", "--crop-fraction", "0.8"], 40)):
        argv = ["--source", packed, *flags, "--epochs", "1", "--name", "refused", "--storage", str(runs)]
        assert run_entry_point(train_main, argv) == 2
        line = _error_line(capsys)
        assert "packed at 32 px" in line and f"resizes to {side} px" in line and "galaxy-ray pack" in line
    assert not (runs / "refused").exists()  # nothing started


def test_evaluate_refuses_a_checkpoint_of_another_size(packed, tmp_path, tiny_checkpoint, capsys):
    checkpoint = tiny_checkpoint(str(tmp_path / "model48.pt"), size=48)
    out = tmp_path / "eval"
    assert run_entry_point(evaluate_main, [checkpoint, packed, "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert "packed at 32 px" in line and "resizes to 48 px" in line and "--image-size 48" in line
    assert not out.exists()


def test_training_batches_are_the_stored_pixels_as_tensors(packed, tmp_path):
    """Validation batches hold exactly the decoded stored PNGs, and no batch goes to Arrow as pickled objects.

    The rows are ordered training rows first, so Ray Data's first batch of 64 rows holds no
    validation row: the stage that prepares validation batches then has nothing to return.
    """
    import ray.data

    cfg = validate(TrainConfig(source=packed, image_size=32, bn_samples=0, storage=str(tmp_path)))
    table = pq.read_table(f"{packed}/part-00000.parquet")
    is_val = cfg.split.mask(table["object_id"].to_pylist(), "val")
    assert (~is_val).sum() >= 64 and is_val.sum() >= 1  # the first batch of 64 rows is all training rows
    ordered = pa.concat_tables([table.filter(pa.array(~is_val)), table.filter(pa.array(is_val))])
    context = ray.data.DataContext.get_current()
    fallback = context.enable_fallback_to_arrow_object_ext_type
    context.enable_fallback_to_arrow_object_ext_type = False  # a pickled column raises instead of warning
    try:
        datasets = build_datasets(ray.data.from_arrow(ordered), cfg, None, PreprocessConfig(32))
        val = datasets["val"].materialize()
    finally:
        context.enable_fallback_to_arrow_object_ext_type = fallback
    assert "Tensor" in type(val.schema().base_schema.field("pixels").type).__name__
    batch = val.take_batch(ROWS, batch_format="numpy")
    val_rows = ordered.slice(int((~is_val).sum()))
    expected = np.stack([np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).transpose(2, 0, 1)
                         for png in val_rows["image"].to_pylist()])
    assert batch["pixels"].dtype == np.uint8 and batch["pixels"].shape == (int(is_val.sum()), 3, 32, 32)
    np.testing.assert_array_equal(batch["pixels"], expected)  # decoding a stored PNG is exact, the resize a no-op


@pytest.mark.slow
def test_training_and_evaluation_at_the_stored_size(packed, tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["--source", packed, "--image-size", "32", "--epochs", "1", "--workers", "1", "--batch-size", "16",
            "--bn-samples", "0", "--name", "stored", "--storage", str(runs)]
    assert run_entry_point(train_main, argv) == 0
    model = runs / "stored" / "model.pt"
    assert model.exists()
    assert json.loads((runs / "stored" / "config.json").read_text())["spec"]["preprocess"]["image_size"] == 32
    out = tmp_path / "eval"
    assert run_entry_point(evaluate_main, [str(model), packed, "--out", str(out)]) == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert report["rows"] == ROWS and report["error_rows"] == 0
    assert "galaxy-ray: error" not in capsys.readouterr().err
