"""galaxy_ray.api.predict on an in-memory array of cutouts and on image files: the same rows for the same pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from galaxy_ray import api, schema
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.synthetic import synthetic_table


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_checkpoint):
    return tiny_checkpoint(str(tmp_path_factory.mktemp("api_predict") / "model.pt"), task="classes", size=32)


def _cutouts(n: int) -> np.ndarray:
    table = synthetic_table(n, size=48, seed=5)
    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in table.column("image").to_pylist()])


def test_an_array_and_the_same_pixels_as_png_files_give_the_same_rows(checkpoint, tmp_path):
    cutouts = _cutouts(5)
    assert cutouts.shape == (5, 48, 48, 3) and cutouts.dtype == np.uint8
    files = []
    for i, c in enumerate(cutouts):
        files.append(str(tmp_path / f"g{i}.png"))
        Image.fromarray(c).save(files[-1])  # lossless: the same pixels
    from_array = api.predict(checkpoint, cutouts, batch_size=2)  # three batches
    from_files = api.predict(checkpoint, files, ids=[str(i) for i in range(5)])
    prob_cols = [schema.class_column(c) for c in schema.GALAXY10_CLASSES]
    assert list(from_array["object_id"]) == ["0", "1", "2", "3", "4"]
    assert from_array["error"].isna().all() and set(prob_cols) <= set(from_array.columns)
    np.testing.assert_allclose(from_array[prob_cols].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(from_array[prob_cols].to_numpy(), from_files[prob_cols].to_numpy(), atol=1e-6)
    assert list(from_array["morphology"]) == list(from_files["morphology"])
    flagged = api.predict(checkpoint, cutouts, merger_threshold=0.0)
    assert flagged["is_merger"].all()


def test_a_missing_file_is_an_error_row_not_an_exception(checkpoint, tmp_path):
    good = str(tmp_path / "good.png")
    Image.fromarray(_cutouts(1)[0]).save(good)
    rows = api.predict(checkpoint, [good, str(tmp_path / "missing.png")])
    assert rows["error"].isna().tolist() == [True, False] and "missing.png" in rows["error"][1]


@pytest.mark.parametrize("bad", [np.zeros((2, 32, 32), np.uint8), np.zeros((2, 32, 32, 3), np.float32),
                                 np.zeros((2, 3, 32, 32), np.uint8)])
def test_an_array_of_the_wrong_shape_or_type_is_one_line(checkpoint, bad):
    with pytest.raises(GalaxyRayError, match=r"predict takes uint8 cutouts of shape \(N, H, W, 3\)") as info:
        api.predict(checkpoint, bad)
    assert "\n" not in str(info.value)


def test_ids_must_match_and_the_checkpoint_must_exist(checkpoint, tmp_path):
    with pytest.raises(GalaxyRayError, match="2 ids for 3 cutouts"):
        api.predict(checkpoint, np.zeros((3, 32, 32, 3), np.uint8), ids=["a", "b"])
    with pytest.raises(GalaxyRayError):
        api.predict(str(tmp_path / "none.pt"), np.zeros((1, 32, 32, 3), np.uint8))
