"""Issue 33, section 3: a checkpoint whose spec (or ``extra``) holds a key of the wrong type is one line.

Each checkpoint is a real one (``tiny_checkpoint``) whose stored payload was
changed in one key and saved again with ``torch.save``, as a damaged file or
another tool's file would hold it.  The message names the key, the value and
the type expected, and is the whole of stderr.
"""

from __future__ import annotations

import pytest
import torch

from galaxy_ray.cli import main as cli_main
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.model import checkpoint_spec, load_checkpoint
from galaxy_ray.model.spec import ModelSpec
from galaxy_ray.synthetic import synthetic_table

DAMAGED = ("a damaged checkpoint, or one not written by `galaxy-ray train`; retrain, or use the model.pt a training "
           "run published")
CASES = [
    # the four
    ("preprocess", "64", "model spec: key 'preprocess' is '64' (a str); expected a mapping with image_size "
                         "(whole pixels) and crop_fraction"),
    ("preprocess", {"crop_fraction": 1.0}, "model spec: key 'preprocess' is {'crop_fraction': 1.0} (a mapping) "
                                           "without image_size; expected a mapping with image_size (whole pixels) "
                                           "and crop_fraction"),
    ("calibration", "isotonic", "model spec: key 'calibration' is 'isotonic' (a str); expected a mapping of the "
                                "fitted maps (probabilities, merger) or null"),
    ("extra", [1, 2], "key 'extra' is [1, 2] (a list); expected a mapping (the training run's epoch, metrics, "
                      "split, merger threshold ...)"),
    # variants not in the issue: a string of class names (HEAD made one class per character), a nested map
    ("output_names", "spiral,elliptical", "model spec: key 'output_names' is 'spiral,elliptical' (a str); "
                                          "expected a list of strings (the outputs' names, in order)"),
    ("calibration", {"merger": "isotonic"}, "model spec: key 'calibration.merger' is 'isotonic' (a str); "
                                            "expected a mapping (a fitted map's method and parameters) or null"),
]


def _damaged(tmp_path, tiny_checkpoint, key, value, task="gz2") -> str:
    payload = torch.load(tiny_checkpoint(str(tmp_path / "good.pt"), task=task, size=32), weights_only=True)
    if key == "extra":
        payload["extra"] = value
    else:
        payload["spec"][key] = value
    torch.save(payload, tmp_path / "damaged.pt")
    return str(tmp_path / "damaged.pt")


@pytest.mark.parametrize("key, value, message", CASES, ids=[f"{k}-{type(v).__name__}" for k, v, _ in CASES])
def test_a_spec_key_of_the_wrong_type_is_one_line_naming_it(tmp_path, tiny_checkpoint, capsys, key, value, message):
    task = "classes" if key == "output_names" else "gz2"
    bad = _damaged(tmp_path, tiny_checkpoint, key, value, task)
    png = tmp_path / "g.png"
    png.write_bytes(synthetic_table(1, size=32, seed=1)["image"][0].as_py())
    assert cli_main(["predict", bad, str(png)]) == 2  # HEAD: TypeError, KeyError or AttributeError tracebacks
    captured = capsys.readouterr()
    assert captured.err == f"galaxy-ray: error: {bad}: {message}: {DAMAGED}\n" and captured.out == ""
    for read in (load_checkpoint, checkpoint_spec):  # the API's loaders and infer's planner
        with pytest.raises(GalaxyRayError) as err:
            read(bad)
        assert str(err.value) == f"{bad}: {message}: {DAMAGED}"


def test_a_spec_holding_a_list_shared_many_times_is_described_briefly(tmp_path):
    # what a pickle can hold, like a YAML alias bomb: one list referenced 9**9 times over; its repr would not fit
    bomb: list = ["lol"]
    for _ in range(9):
        bomb = [bomb] * 9
    stored = {**ModelSpec.for_gz2("resnet18", _preprocess()).to_dict(), "tree": bomb}
    with pytest.raises(GalaxyRayError) as err:
        ModelSpec.from_dict(stored)
    assert str(err.value).startswith("model spec: key 'tree' is [[[[...], [...], [...], [...], [...], [...], ...], ")
    assert "(a list); expected a string or null" in str(err.value) and len(str(err.value)) < 400


def _preprocess():
    from galaxy_ray.data.transforms import PreprocessConfig

    return PreprocessConfig(32)
