"""The benchmarks' baseline and inputs: ``jobs/plain_loop.py`` and ``jobs/bench_common.py``.

The plain script must classify every cutout it is given without any of galaxy-ray's code, and
the real-size inputs must be what they say: real JPEGs byte for byte where they are already the
side asked for, resampled where not, synthetic galaxies of that side where no folder is given,
cycled row by row into shards that galaxy-ray reads as any survey's (no model-size provenance).
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from galaxy_ray.data.sources import open_source

JOBS = Path(__file__).resolve().parents[1] / "jobs"

pytestmark = pytest.mark.slow  # the plain script imports torch and builds a ResNet in a subprocess


def _load(name: str):
    if str(JOBS) not in sys.path:
        sys.path.insert(0, str(JOBS))
    spec = importlib.util.spec_from_file_location(name, JOBS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # write_shards's process pool pickles its functions by module name
    spec.loader.exec_module(module)
    return module


def _jpeg(path: Path, side: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def test_jpeg_pool_keeps_real_files_of_the_side_and_resamples_the_others(tmp_path, gz2_sample):
    common = _load("bench_common")
    folder = tmp_path / "jpegs"
    folder.mkdir()
    same = _jpeg(folder / "a_424.jpg", 424, 1)
    real = sorted((gz2_sample / "images").glob("*.jpg"))[0]  # a real 300-px SDSS cutout
    (folder / "b_real.jpg").write_bytes(real.read_bytes())
    pool, what = common.jpeg_pool(424, str(folder))
    assert len(pool) == 2 and "2 real JPEGs" in what
    assert pool[0] == same.read_bytes()  # already 424 px: taken byte for byte
    with Image.open(io.BytesIO(pool[1])) as im, Image.open(real) as original:
        assert original.size != (424, 424)
        assert im.format == "JPEG" and im.size == (424, 424)
        # resampled, not replaced: the same sky, on average
        assert abs(np.asarray(im, np.float32).mean() - np.asarray(original.convert("RGB"), np.float32).mean()) < 3


def test_synthetic_pool_is_distinct_jpegs_of_the_side(tmp_path):
    common = _load("bench_common")
    pool, what = common.jpeg_pool(424, None, count=40)
    assert len(pool) == 40 and len(set(pool)) == 40 and "synthetic 424-px" in what
    with Image.open(io.BytesIO(pool[3])) as im:
        assert im.format == "JPEG" and im.size == (424, 424) and im.mode == "RGB"
        pixels = np.asarray(im, np.float32)
    assert pixels[200:224, 200:224].mean() > pixels[:20].mean() + 20  # a galaxy in the middle, sky around


def test_write_shards_cycles_the_pool_into_shards_galaxy_ray_reads(tmp_path):
    common = _load("bench_common")
    folder = tmp_path / "jpegs"
    folder.mkdir()
    files = [_jpeg(folder / f"g{i}.jpg", 64, i) for i in range(3)]
    made = common.write_shards(str(tmp_path / "shards"), 10, 4, seed=2, workers=1, source_size=64,
                               model_size=16, jpegs=str(folder), id_prefix="t")
    assert made["shards"] == 3 and made["rows"] == [4, 4, 2] and len(made["ra"]) == 10
    src = open_source(str(tmp_path / "shards"))
    table = src.read_rows(src.metadata())
    assert table.column("object_id").to_pylist() == [f"t-{i:09d}" for i in range(10)]
    images = table.column("image").to_pylist()
    assert all(images[i] == files[i % 3].read_bytes() for i in range(10))
    np.testing.assert_array_equal(table.column("ra").to_numpy(), made["ra"])


def test_plain_loop_classifies_every_row_without_galaxy_ray(tmp_path):
    common = _load("bench_common")
    common.write_shards(str(tmp_path / "shards"), 30, 10, seed=1, workers=1, source_size=64, model_size=16,
                        jpegs=None)
    figures = common.plain_loop(str(tmp_path / "shards"), "resnet18", 16, 8, 2)
    assert figures["images"] == 30 and figures["shards"] == 3 and figures["workers"] == 2
    assert figures["galaxy_ray_imported"] is False
    assert figures["images_per_s"] > 0 and figures["cpu_s"] > 0
    # --max-rows takes whole shards until it has at least that many rows
    assert common.plain_loop(str(tmp_path / "shards"), "resnet18", 16, 8, 1, max_rows=11)["images"] == 20


def test_plain_loop_decode_resizes_to_the_model_side(tmp_path):
    plain = _load("plain_loop")
    data = _jpeg(tmp_path / "x.jpg", 424, 5).read_bytes()
    pixels = plain.decode(data, 96)
    assert pixels.shape == (3, 96, 96) and pixels.dtype == np.uint8
    with Image.open(io.BytesIO(data)) as im:
        full = np.asarray(im.convert("RGB"), np.float32)
    assert abs(pixels.astype(np.float32).mean() - full.mean()) < 2  # a resize keeps the mean brightness


def test_plain_loop_says_so_in_one_line_without_shards(tmp_path):
    import subprocess

    done = subprocess.run([sys.executable, str(JOBS / "plain_loop.py"), str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip() == f"plain_loop: no *.parquet shards in {tmp_path}"


def test_bench_infer_inputs_are_n_real_size_cutouts_and_ten_copies_with_new_ids(tmp_path):
    bench = _load("bench_infer")
    small, big, what = bench.make_inputs(tmp_path, 20, 16, 10, 3, source_size=64, jpegs=None)
    n = pq.read_table(small)
    ten = pq.read_table(big)
    assert n.num_rows == 20 and ten.num_rows == 60 and "synthetic 64-px" in what
    assert len(set(ten.column("object_id").to_pylist())) == 60
    assert ten.column("image").to_pylist() == n.column("image").to_pylist() * 3
