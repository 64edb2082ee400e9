"""The survey-scale benchmark's own pieces: its inputs are the shards it says, and its counts are right.

``jobs/bench_scale.py`` itself runs ``galaxy-ray infer`` several times (minutes); these tests check
what its figures rest on, without Ray: the packed shards it writes from numpy (read back by
galaxy-ray's own shard source), the catalog count behind "exactly N rows, N unique ids", the
brute-force cone count that every cone answer is checked against, and the bare loop's baseline;
and ``jobs/bench_sizing.py``'s per-cutout costs (a key and a figure per JPEG side and model).
"""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from galaxy_ray.data.sources import open_source

JOBS = Path(__file__).resolve().parents[1] / "jobs"

pytestmark = pytest.mark.slow  # imports torch and builds a ResNet-18


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, JOBS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # make_inputs's process pool pickles its functions by module name
    spec.loader.exec_module(module)
    return module


def _bench():
    return _load("bench_scale")


def test_inputs_are_packed_shards_of_n_cutouts_and_their_first_tenth(tmp_path):
    bench = _bench()
    inputs = bench.make_inputs(tmp_path, 1000, 16, 100, seed=3, workers=1, source_size=0)
    assert (inputs["shards"], inputs["shards_n10"], inputs["rows_n10"]) == (10, 1, 100)
    src = open_source(inputs["big"])
    assert src.format == "shards"
    table = src.read_rows(src.metadata())
    ids = table.column("object_id").to_pylist()
    assert ids == [f"scale-{i:09d}" for i in range(1000)]
    # the positions the cone is checked against are the ones in the shards, row for row
    np.testing.assert_array_equal(table.column("ra").to_numpy(), inputs["ra"])
    np.testing.assert_array_equal(table.column("dec").to_numpy(), inputs["dec"])
    assert 0 <= inputs["ra"].min() and inputs["ra"].max() < 360 and np.abs(inputs["dec"]).max() <= 90
    small = open_source(inputs["small"])
    assert small.read_rows(small.metadata()).column("object_id").to_pylist() == ids[:100]
    # model-sized pixels: 16 x 16 RGB PNGs that decode to the blobs, not blank
    from PIL import Image

    with Image.open(io.BytesIO(table.column("image")[0].as_py())) as image:
        assert image.format == "PNG" and image.size == (16, 16) and image.mode == "RGB"
        pixels = np.asarray(image)
    assert pixels[6:10, 6:10].mean() > pixels[:2].mean() + 20  # a centred source above the sky


def test_cone_truth_counts_what_astropy_separation_counts():
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    bench = _bench()
    rng = np.random.default_rng(5)
    ra = np.concatenate([rng.uniform(0, 360, 20000), 180 + rng.normal(0, 1.5, 3000)]) % 360
    dec = np.concatenate([np.degrees(np.arcsin(rng.uniform(-1, 1, 20000))), np.clip(30 + rng.normal(0, 1.5, 3000), -90, 90)])
    centre = SkyCoord(180 * u.deg, 30 * u.deg)
    expected = int((SkyCoord(ra * u.deg, dec * u.deg).separation(centre) <= 2 * u.deg).sum())
    assert expected > 1000  # the test cone is not empty
    assert bench.cone_truth(ra, dec, (180.0, 30.0, 2.0)) == expected


def test_catalog_rows_counts_rows_and_unique_ids_over_part_files(tmp_path):
    bench = _bench()
    pq.write_table(pa.table({"object_id": ["a", "b", "c"], "ra": [1.0, 2.0, 3.0]}), tmp_path / "part-00000-00001.parquet")
    pq.write_table(pa.table({"object_id": ["c", "d"], "ra": [3.0, 4.0]}), tmp_path / "part-00002-00002.parquet")
    (tmp_path / "_catalog.json").write_text("{}")
    counted = bench.catalog_rows(str(tmp_path))
    assert (counted["rows"], counted["unique_ids"], counted["part_files"], counted["files"]) == (5, 4, 2, 3)


_GRANDCHILD = """
import sys, time
block = bytearray(96 << 20)
block[::4096] = b"x" * len(block[::4096])  # touch every page: resident
t = time.process_time()
while time.process_time() - t < 0.6:
    pass
open(sys.argv[1] + "/part-00000-00000.parquet", "w").close()
time.sleep(1.5)
"""


def test_run_watcher_counts_a_descendants_memory_cpu_and_first_part(tmp_path):
    """The watcher sees a grandchild's resident pages and CPU time, and the part file it publishes."""
    import subprocess

    bench = _bench()
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {_GRANDCHILD!r}, {str(tmp_path)!r}], check=True)"
    proc = subprocess.Popen([sys.executable, "-c", parent])
    watcher = bench.RunWatcher(proc, str(tmp_path), interval_s=0.1).start()
    assert proc.wait(timeout=120) == 0
    watcher.stop()
    assert watcher.peak["tree_rss"] >= 96 << 20  # the grandchild's touched block, not the parent's
    assert watcher.peak["driver_rss"] < 96 << 20
    assert sum(watcher.cpu_s.values()) >= 0.5
    assert watcher.parts == 1 and watcher.first_part_s is not None
    assert watcher.last_tree and not any(bench._alive(p) for p in watcher.last_tree)  # all exited


def test_bare_loop_is_the_plain_script_over_whole_shards(tmp_path):
    bench = _bench()
    inputs = bench.make_inputs(tmp_path, 300, 16, 100, seed=1, workers=1, source_size=0)
    rows, seconds, cpu = bench.bare_loop(inputs["big"], "resnet18", 16, 64, 150, 1)
    assert rows == 200  # whole shards of 100 until at least 150 rows
    assert seconds > 0 and cpu > 0


def test_default_inputs_are_real_size_jpegs(tmp_path):
    """Without a folder of real JPEGs, the N input is synthetic 424-px JPEGs that galaxy-ray must resize."""
    from PIL import Image

    from galaxy_ray.data.sources.shards import PIXELS_KEY, pack_provenance

    bench = _bench()
    inputs = bench.make_inputs(tmp_path, 200, 16, 100, seed=1, workers=1)
    src = open_source(inputs["big"])
    table = src.read_rows(src.metadata())
    assert table.num_rows == 200 and "synthetic 424-px" in inputs["what"]
    with Image.open(io.BytesIO(table.column("image")[7].as_py())) as image:
        assert image.format == "JPEG" and image.size == (424, 424)
    # no `pack --image-size` provenance: the pipeline decodes and resizes them like any survey cutout
    assert PIXELS_KEY not in pack_provenance(str(sorted(Path(inputs["big"]).glob("*.parquet"))[0]))


def test_sizing_measures_each_jpeg_side_and_model_and_refuses_an_empty_folder(tmp_path):
    from PIL import Image

    from galaxy_ray.errors import GalaxyRayError

    bench = _load("bench_sizing")
    with pytest.raises(GalaxyRayError, match="no .jpg files"):
        bench.sizing(str(tmp_path), [0], [16], ["resnet18"], 8, 1)
    rng = np.random.default_rng(2)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / f"g{i}.jpg", quality=90)
    result = bench.sizing(str(tmp_path), [0, 64], [16], ["resnet18"], 8, 1)
    assert set(result["decode"]) == {"original_to_16px", "64px_to_16px"} and set(result["model"]) == {"resnet18_16px"}
    assert all(v["ms"] > 0 and v["plain_ms"] > 0 for v in result["decode"].values())
    assert all(abs(v["ratio"] - v["plain_ms"] / v["ms"]) < 0.01 for v in result["decode"].values())
    assert result["model"]["resnet18_16px"] > 0
    # the resampled copies are 64-px JPEGs: more pixels of noise than the 40-px originals, so more bytes
    assert result["decode"]["64px_to_16px"]["jpeg_kib"] > result["decode"]["original_to_16px"]["jpeg_kib"]


def test_sizing_plan_reproduces_the_worked_tables():
    """The plan of docs/scale.md: at 17.2 ms per 424-px cutout and 2,500 images/s per A10G, 43 decode vCPUs
    per GPU and 3 / 11 / 22 c6i.4xlarge for 1 / 10 / 100 M (worked by hand before this function existed);
    at 1.5 ms, 3.75 vCPUs per GPU: 1 / 1 / 2 nodes, 100 M in 1.39 h for 1.389 x (8 x 1.212 + 2 x 0.68 + 0.384)."""
    bench = _load("bench_sizing")
    slow = bench.plan(17.2, 2500)
    assert slow["decode_vcpus_per_gpu"] == 43.0
    assert [r["decode_nodes"] for r in slow["rows"]] == [3, 11, 22]
    assert [r["cost_usd"] for r in slow["rows"]] == [0.40, 3.53, 34.78]
    fast = bench.plan(1.5, 2500)
    assert fast["decode_vcpus_per_gpu"] == 3.8  # 3.75, rounded to one place
    assert [r["decode_nodes"] for r in fast["rows"]] == [1, 1, 2]
    assert [r["rate"] for r in fast["rows"]] == [2500, 10000, 20000]
    assert fast["rows"][2]["cost_usd"] == 15.89 and fast["rows"][2]["hours"] == 1.389
    table = bench.plan_table(fast, "fast")
    assert "| 100 M | 8 | 2 (32) | 20,000/s | 1.39 | $15.89 | $0.16 |" in table.splitlines()
