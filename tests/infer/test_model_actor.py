"""The model actor (:class:`galaxy_ray.infer.pipeline.CatalogModel`) takes only the pixels its checkpoint's Preprocess makes."""

from __future__ import annotations

import numpy as np
import pytest

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.infer.pipeline import CatalogModel
from galaxy_ray.schema import CatalogColumns as C


def _batch(side: int) -> dict[str, np.ndarray]:
    pixels = np.random.default_rng(0).integers(0, 256, (2, 3, side, side), dtype=np.uint8)
    return {C.OBJECT_ID: np.array(["a", "b"], dtype=object), C.RA: np.array([1.0, 2.0]),
            C.DEC: np.array([0.0, 0.0]), "pixels": pixels, C.ERROR: np.array([None, None], dtype=object)}


def test_the_model_actor_refuses_pixels_of_another_size_in_one_line(tmp_path, tiny_checkpoint):
    model = CatalogModel(tiny_checkpoint(str(tmp_path / "model.pt"), size=32))
    assert model.spec.preprocess.image_size == 32
    assert len(model(_batch(32))) == 2  # the size Preprocess makes is taken
    with pytest.raises(GalaxyRayError) as info:
        model(_batch(48))
    message = str(info.value)
    assert "\n" not in message and "(3, 48, 48)" in message and "(3, 32, 32)" in message


def test_the_model_actor_refuses_float_pixels_of_the_right_size(tmp_path, tiny_checkpoint):
    model = CatalogModel(tiny_checkpoint(str(tmp_path / "model.pt"), size=32))
    batch = _batch(32)
    batch["pixels"] = batch["pixels"].astype(np.float32) / 255
    with pytest.raises(GalaxyRayError, match="float32"):
        model(batch)


_FRESH_ACTOR = """
import sys
import numpy as np
from galaxy_ray.infer.pipeline import CatalogModel
model = CatalogModel(sys.argv[1])
pixels = np.zeros((2, 3, 32, 32), np.uint8)
rows = model({"object_id": np.array(["a", "b"], dtype=object), "ra": np.array([1.0, 2.0]), "dec": np.zeros(2),
              "pixels": pixels, "error": np.array([None, None], dtype=object)})
heavy = ("torch._dynamo", "galaxy_ray.catalog", "scipy.optimize", "astropy", "cdshealpix", "duckdb")
print(rows.num_rows, *sorted(name for name in heavy if name in sys.modules))
"""


@pytest.mark.slow
def test_a_fresh_model_actor_loads_and_classifies_without_the_heavy_imports(tmp_path, tiny_checkpoint):
    """What a new actor process imports: none of the compiler, the catalog package, scipy's fitting or astropy.

    Each of these once cost a fresh actor 0.3-1 s of a small job's start-up (docs/measurements.md).
    """
    import subprocess
    import sys

    checkpoint = tiny_checkpoint(str(tmp_path / "model.pt"), size=32)
    out = subprocess.run([sys.executable, "-c", _FRESH_ACTOR, checkpoint], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["2"]  # two rows, and no heavy module named after them
