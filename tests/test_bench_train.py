"""The training benchmark's JPEG source: what ``jobs/bench_train.py --case jpeg`` trains on is what it says."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
from PIL import Image

from galaxy_ray import schema
from galaxy_ray.data.sources import open_source
from galaxy_ray.synthetic import render_galaxy

BENCH = Path(__file__).resolve().parents[1] / "jobs" / "bench_train.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_train", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blocks(rgb: np.ndarray, side: int = 9) -> np.ndarray:
    """Means of ``side`` x ``side`` pixel blocks of an (H, W, 3) image (the ragged edge dropped)."""
    k = rgb.shape[0] // side
    return np.asarray(rgb, dtype=np.float64)[:k * side, :k * side].reshape(k, side, k, side, 3).mean(axis=(1, 3))


def test_jpeg_source_is_a_manifest_of_full_size_jpegs_of_the_synthetic_galaxies(tmp_path):
    bench = _bench()
    out = bench.write_jpeg_manifest(tmp_path / "jpeg", 3, 423, workers=1)
    src = open_source(out)
    assert src.format == "manifest"
    table = src.read_rows(src.metadata())
    assert table.num_rows == 3
    assert not list((tmp_path / "jpeg").rglob("*.png"))  # every cutout was re-encoded, none left behind
    for index, (object_id, label, data) in enumerate(zip(table.column("object_id").to_pylist(),
                                                        table.column("label").to_pylist(),
                                                        table.column("image").to_pylist())):
        galaxy = render_galaxy(7, index, 423)
        assert object_id == galaxy.object_id and label == galaxy.label and label in schema.GALAXY10_CLASSES
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG" and image.size == (423, 423)
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
        # JPEG loses the pixel noise, not the picture: on 9 x 9 block means a quality-92 copy is within
        # 2 grey levels of the galaxy it encodes, and several times farther from the next galaxy
        same = np.abs(_blocks(pixels) - _blocks(galaxy.rgb)).mean()
        assert same < 2.0
        assert np.abs(_blocks(pixels) - _blocks(render_galaxy(7, index + 1, 423).rgb)).mean() > 4 * same
