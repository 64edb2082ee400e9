"""Issue 21, item 2: 18-digit ids stored as floats have lost digits; every reader refuses them in one line."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from galaxy_ray.cli import run_entry_point
from galaxy_ray.data.sources import open_source, pack_main
from galaxy_ray.data.sources.identity import exact_float_ids
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.infer import main as infer_main
from builders import noise_png

#: Two SDSS DR7 ids one apart: as float64 both are 587722981741035520.0.
SDSS_IDS = [587722981741035521, 587722981741035522]


def _images(root, n: int) -> list[str]:
    (root / "images").mkdir(parents=True, exist_ok=True)
    paths = [f"images/{k}.png" for k in range(n)]
    for k, p in enumerate(paths):
        (root / p).write_bytes(noise_png(k))
    return paths


def test_float64_sdss_ids_really_collide():
    # The premise, worked out by hand: 2**59 < 5.9e17 < 2**60, so float64 steps by 2**(59-52) = 128 there.
    assert float(SDSS_IDS[0]) == float(SDSS_IDS[1])
    assert SDSS_IDS[0] > 2**53


def test_a_parquet_manifest_with_float64_ids_is_refused_naming_the_column(tmp_path):
    paths = _images(tmp_path, 2)
    table = pa.table({"object_id": pa.array([float(i) for i in SDSS_IDS], pa.float64()), "path": paths})
    pq.write_table(table, tmp_path / "manifest.parquet")
    with pytest.raises(GalaxyRayError) as err:
        open_source(str(tmp_path)).metadata()
    message = str(err.value)
    assert "\n" not in message
    assert "manifest.parquet" in message and "id column 'object_id'" in message
    assert "above 2**53" in message and "int64 or as strings" in message


def test_pandas_written_csv_of_float_ids_is_refused(tmp_path):
    # pandas makes an int column with a missing value float64, and to_csv writes it as 5.877229817410355e+17
    paths = _images(tmp_path, 3)
    frame = pd.DataFrame({"objid": [SDSS_IDS[0], SDSS_IDS[1], None], "path": paths})
    assert frame.objid.dtype == np.float64
    frame.dropna().to_csv(tmp_path / "manifest.csv", index=False)
    assert "5.877229817410355e+17" in (tmp_path / "manifest.csv").read_text()
    with pytest.raises(GalaxyRayError, match=r"id column 'objid' holds floats above 2\*\*53"):
        open_source(str(tmp_path), id_column="objid").metadata()


def test_small_integral_float_ids_are_read_as_their_digits(tmp_path):
    paths = _images(tmp_path, 2)
    pq.write_table(pa.table({"object_id": [1.0, 2.0 ** 53], "path": paths}), tmp_path / "manifest.parquet")
    meta = open_source(str(tmp_path)).metadata()
    assert meta.object_id.tolist() == ["1", "9007199254740992"]


def test_non_integral_float_ids_are_refused():
    with pytest.raises(GalaxyRayError, match=r"'id' holds float values that are not integers \(e\.g\. 2\.5\)"):
        exact_float_ids(pd.Series([1.0, 2.5]), "id", "t.parquet")


def test_pack_and_infer_refuse_float_ids_in_one_line_before_any_work(tmp_path, capsys, tiny_checkpoint):
    paths = _images(tmp_path / "src", 2)
    pq.write_table(pa.table({"object_id": [float(i) for i in SDSS_IDS], "path": paths}),
                   tmp_path / "src" / "manifest.parquet")
    assert run_entry_point(pack_main, [str(tmp_path / "src"), str(tmp_path / "packed")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("galaxy-ray: error: ") and "\n" not in err and "id column 'object_id'" in err
    assert not (tmp_path / "packed").exists()
    checkpoint = tiny_checkpoint(str(tmp_path / "model.pt"))
    code = run_entry_point(infer_main, ["--checkpoint", checkpoint, "--source", str(tmp_path / "src"),
                                        "--out", str(tmp_path / "catalog")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "id column 'object_id'" in err
    assert not (tmp_path / "catalog").exists()


def test_shards_with_float_ids_are_refused(tmp_path):
    (tmp_path / "shards").mkdir()
    pq.write_table(pa.table({"object_id": [float(i) for i in SDSS_IDS], "image": [noise_png(0), noise_png(1)]}),
                   tmp_path / "shards" / "part-00000.parquet")
    with pytest.raises(GalaxyRayError, match=r"part-00000\.parquet: id column 'object_id' holds float values above"):
        open_source(str(tmp_path / "shards"))
