"""Issue 33, section 4: ``api.predict`` on a single path, a list of arrays or a torch tensor.

HEAD took ``"a.png"`` as a sequence of five one-character paths (five error
rows), and gave the rows of a list of arrays or of a tensor the array's text
as their id.  Each input below is classified against the same pixels given as
one (N, H, W, 3) array, whose rows are known to be right (test_predict_api.py).
"""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pytest
import torch
from PIL import Image

from galaxy_ray import api, schema
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.synthetic import synthetic_table

PROBS = [schema.class_column(c) for c in schema.GALAXY10_CLASSES]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_checkpoint):
    return tiny_checkpoint(str(tmp_path_factory.mktemp("predict_inputs") / "model.pt"), task="classes", size=32)


@pytest.fixture(scope="module")
def cutouts() -> np.ndarray:
    table = synthetic_table(3, size=40, seed=11)
    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in table.column("image").to_pylist()])


@pytest.fixture(scope="module")
def reference(checkpoint, cutouts):
    return api.predict(checkpoint, cutouts)


@pytest.mark.parametrize("as_path", [str, pathlib.Path], ids=["str", "PathLike"])  # PathLike: a variant
def test_a_single_path_is_one_row(checkpoint, cutouts, reference, tmp_path, as_path):
    path = tmp_path / "a.png"
    Image.fromarray(cutouts[1]).save(path)  # lossless: the same pixels as row 1 of the array
    rows = api.predict(checkpoint, as_path(path))
    assert list(rows["object_id"]) == ["a.png"] and rows["error"].isna().all()
    np.testing.assert_allclose(rows[PROBS].to_numpy(), reference[PROBS].to_numpy()[1:2], atol=1e-6)


@pytest.mark.parametrize("make", [lambda a: list(a), lambda a: torch.from_numpy(a.copy()),
                                  lambda a: [torch.from_numpy(c.copy()) for c in a]],
                         ids=["list of arrays", "tensor", "list of tensors"])
def test_a_list_of_arrays_or_a_tensor_gets_ids_by_position(checkpoint, cutouts, reference, make):
    rows = api.predict(checkpoint, make(cutouts))
    assert list(rows["object_id"]) == ["0", "1", "2"] and rows["error"].isna().all()
    np.testing.assert_allclose(rows[PROBS].to_numpy(), reference[PROBS].to_numpy(), atol=1e-6)


def test_one_cutout_array_is_one_row_and_ids_can_name_any_input(checkpoint, cutouts, reference, tmp_path):
    # variants: a single (H, W, 3) array; a list mixing a file and an array, with ids given
    rows = api.predict(checkpoint, cutouts[2])
    assert list(rows["object_id"]) == ["0"]
    np.testing.assert_allclose(rows[PROBS].to_numpy(), reference[PROBS].to_numpy()[2:3], atol=1e-6)
    Image.fromarray(cutouts[0]).save(tmp_path / "g0.png")
    rows = api.predict(checkpoint, [str(tmp_path / "g0.png"), cutouts[1]], ids=["first", "second"])
    assert list(rows["object_id"]) == ["first", "second"]
    np.testing.assert_allclose(rows[PROBS].to_numpy(), reference[PROBS].to_numpy()[:2], atol=1e-6)


@pytest.mark.parametrize("bad, where", [
    ([np.zeros((32, 32), np.uint8)], "images[0]: an array of shape (32, 32) (uint8)"),
    (torch.zeros((2, 3, 32, 32), dtype=torch.uint8), "images: an array of shape (2, 3, 32, 32) (uint8)"),
    ([3.5], "images[0]: a value of type float"),
    (42, "images: a value of type int"),
])
def test_anything_else_is_one_line_naming_it(checkpoint, bad, where):
    with pytest.raises(GalaxyRayError) as err:
        api.predict(checkpoint, bad)
    assert str(err.value).startswith(f"{where}; predict takes uint8 cutouts of shape (N, H, W, 3) or (H, W, 3)")
