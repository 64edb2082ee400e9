"""``pack --image-size``: model-sized lossless cutouts, recorded in the metadata, refused for another model size."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from galaxy_ray import infer
from galaxy_ray.cli import run_entry_point
from galaxy_ray.data.sources import pack, pack_main
from galaxy_ray.data.sources.shards import Shards, stored_pixels
from galaxy_ray.data.packed import check_stored_pixels, model_sized_png, stored_version
from galaxy_ray.data.transforms import PreprocessConfig, preprocess_batch
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.synthetic import synthesize


def _rows(table) -> dict:
    return {k: np.array(table[k].to_pylist(), dtype=object) for k in ("object_id", "image", "source")}


@pytest.fixture(scope="module")
def packed(tmp_path_factory, ray_cluster):
    """A 64-px synthetic source and its `pack --image-size 32` (two shards)."""
    root = tmp_path_factory.mktemp("pack_pixels")
    src = synthesize(str(root / "src"), 12, size=64, fmt="shards", seed=3, rows_per_shard=12)
    out = root / "p32"
    assert run_entry_point(pack_main, [src, str(out), "--rows-per-shard", "6", "--image-size", "32"]) == 0
    return src, out


def test_packed_pixels_equal_preprocessing_of_the_original(packed):
    src, out = packed
    original = pq.read_table(f"{src}/part-00000.parquet")
    stored = pa.concat_tables([pq.read_table(out / f"part-0000{k}.parquet") for k in range(2)])
    assert stored["object_id"].to_pylist() == original["object_id"].to_pylist()
    for data in stored["image"].to_pylist():
        image = Image.open(io.BytesIO(data))
        assert (image.format, image.size, image.mode) == ("PNG", (32, 32), "RGB")
    expected = preprocess_batch(_rows(original), PreprocessConfig(32))["pixels"]
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(d))).transpose(2, 0, 1) for d in stored["image"].to_pylist()])
    assert np.abs(decoded.astype(int) - expected.astype(int)).max() <= 1
    # the model's own preprocessing of the stored cutouts: the resize is a no-op
    again = preprocess_batch(_rows(stored), PreprocessConfig(32))["pixels"]
    assert np.abs(again.astype(int) - expected.astype(int)).max() <= 1


def test_the_pack_records_its_pixels(packed):
    _, out = packed
    record = {"image_size": 32, "crop_fraction": 1.0, "stored_size": 32, "version": 2}
    assert json.loads((out / "_pack.json").read_text())["pixels"] == record
    meta = json.loads(pq.read_schema(out / "part-00001.parquet").metadata[b"galaxy_ray_pack"])
    assert meta["pixels"] == record
    assert stored_pixels(Shards(str(out))) == record
    assert check_stored_pixels(Shards(str(out)), PreprocessConfig(32)) == record
    # a pack of another size into the same OUT would mix two packings
    with pytest.raises(GalaxyRayError, match="pixels"):
        pack(str(packed[0]), str(out), rows_per_shard=6, image_size=48, verbose=False)


def test_another_model_size_is_refused_with_one_line(packed, tmp_path, tiny_checkpoint):
    src, out = packed
    assert stored_pixels(Shards(src)) is None  # original images: any preprocessing applies
    assert check_stored_pixels(Shards(src), PreprocessConfig(48)) is None
    with pytest.raises(GalaxyRayError) as info:
        check_stored_pixels(Shards(str(out)), PreprocessConfig(48))
    message = str(info.value)
    assert "\n" not in message and "32 px" in message and "48" in message and "--image-size 48" in message
    # inference refuses before it starts the model
    checkpoint = tiny_checkpoint(str(tmp_path / "model48.pt"), size=48)
    with pytest.raises(GalaxyRayError, match="packed at 32 px"):
        infer.run_inference(checkpoint, str(out), str(tmp_path / "catalog"), log=lambda s: None)


def test_crop_fraction_stores_the_uncropped_resize():
    yy, xx = np.mgrid[:64, :64] - 32
    galaxy = (255 * np.exp(-(xx**2 + yy**2) / 80.0)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.stack([galaxy] * 3, axis=-1)).save(buf, "PNG")
    config = PreprocessConfig(32, 0.8)
    png = model_sized_png(buf.getvalue(), "g.png", config)
    assert Image.open(io.BytesIO(png)).size == (40, 40)  # round(32 / 0.8): corners kept for rotations
    batch = {"object_id": np.array(["g"], dtype=object), "source": np.array(["g.png"], dtype=object)}
    direct = preprocess_batch(dict(batch, image=np.array([buf.getvalue()], dtype=object)), config)["pixels"]
    stored = preprocess_batch(dict(batch, image=np.array([png], dtype=object)), config)["pixels"]
    assert stored.shape == (1, 3, 32, 32) and np.abs(stored.astype(int) - direct.astype(int)).max() <= 1
    with pytest.raises(GalaxyRayError, match="only with --image-size"):
        pack("unused", "unused", crop_fraction=0.8)


def test_a_model_of_another_preprocessing_version_is_refused_and_training_takes_the_packs(packed):
    _, out = packed
    old = PreprocessConfig(32, 1.0, 1)  # a checkpoint trained before preprocessing versions
    with pytest.raises(GalaxyRayError, match=r"packed with preprocessing version 2, but this model was trained on "
                                             r"version 1 pixels .*repack"):
        check_stored_pixels(Shards(str(out)), old)
    assert stored_version(Shards(str(out)), old) == PreprocessConfig(32, 1.0, 2)
    assert stored_version([], old) is old  # no pack: the version asked for
