"""`galaxy-ray infer` over a manifest of cutouts as surveys really ship them, good and bad mixed.

The job must finish, write one catalog row per manifest row, classify every
readable cutout (compressed, tile-compressed, 16-bit, partly covered), turn
every unreadable one into its row's ``error``, and print the errors by reason.
"""

from __future__ import annotations

import bz2
import gzip
import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from PIL import Image

from galaxy_ray.cli import run_entry_point
from galaxy_ray.infer import main as infer_main
from galaxy_ray.schema import CatalogColumns as C
from builders import encode_image, fits_bytes

SIZE = 48


def _galaxy(seed: int) -> np.ndarray:
    """A smooth elliptical blob on noisy sky, float in [0, 1], (SIZE, SIZE)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:SIZE, :SIZE] - SIZE / 2
    blob = np.exp(-((x / 9.0) ** 2 + (y / 5.0) ** 2))
    return np.clip(0.05 + 0.8 * blob + rng.normal(0, 0.02, blob.shape), 0, 1)


def _cutouts() -> dict[str, tuple[str, bytes, str | None]]:
    """name -> (file name, bytes, the error reason expected, or None for a classified row)."""
    rgb = [(np.stack([_galaxy(k)] * 3, axis=-1) * 255).astype(np.uint8) for k in range(4)]
    cube = np.stack([_galaxy(7) * s for s in (0.8, 1.0, 1.3)])
    edge = rgb[3].copy()
    edge[:, : SIZE // 3] = 0  # the survey's edge: a third of the cutout is outside the footprint
    return {
        "good0": ("good0.png", encode_image(Image.fromarray(rgb[0])), None),
        "good1": ("good1.png", encode_image(Image.fromarray(rgb[1])), None),
        "sixteen_bit": ("g16.png", encode_image(Image.fromarray((_galaxy(2) * 65535).astype(np.uint16))), None),
        "fits_gz": ("cube.fits.gz", gzip.compress(fits_bytes(cube)), None),
        "fits_bz2": ("cube.fits.bz2", bz2.compress(fits_bytes(cube)), None),
        "fits_fz": ("cube.fits.fz", fits_bytes(cube, compressed=True), None),
        "edge": ("edge.png", encode_image(Image.fromarray(edge)), None),
        "bomb": ("tile.png", encode_image(Image.new("1", (13500, 13500))), "over the cap"),
        "blank_jpeg": ("blank.jpg", _jpeg_zeros(), "no signal"),
        "blank_fits": ("blank.fits", fits_bytes(np.zeros((3, SIZE, SIZE))), "no signal"),
        "garbage": ("junk.png", b"<html>404 not found</html>", "not JPEG, PNG"),
    }


def _jpeg_zeros() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def manifest_run(ray_cluster, tmp_path_factory, tiny_checkpoint):
    root = tmp_path_factory.mktemp("survey_files")
    (root / "images").mkdir()
    rows = []
    for k, (name, (file_name, data, _)) in enumerate(_cutouts().items()):
        (root / "images" / file_name).write_bytes(data)
        rows.append({"object_id": name, "ra": 150.0 + k * 0.01, "dec": 2.0 + k * 0.01, "path": f"images/{file_name}"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    checkpoint = tiny_checkpoint(str(root / "model.pt"), size=SIZE)
    out = root / "catalog"
    return out, rows, checkpoint, root


@pytest.mark.slow
def test_a_manifest_of_good_and_bad_cutouts_gives_one_row_each_and_errors_by_reason(manifest_run, capsys):
    out, rows, checkpoint, root = manifest_run
    code = run_entry_point(infer_main, ["--checkpoint", checkpoint, "--source", str(root / "manifest.csv"),
                                        "--out", str(out), "--batch-size", "4", "--num-actors", "1", "--hats"])
    printed = capsys.readouterr()
    assert code == 0, printed.err[-2000:]
    cat = pq.read_table(out).to_pandas().set_index(C.OBJECT_ID)  # _metadata and _catalog.json are skipped
    assert sorted(cat.index) == sorted(r["object_id"] for r in rows)  # one row per manifest row

    for name, (_, _, reason) in _cutouts().items():
        error = cat.loc[name, C.ERROR]
        if reason is None:
            assert pd.isna(error), (name, error)
            assert 0 <= cat.loc[name, C.P_MERGER] <= 1 and isinstance(cat.loc[name, C.MORPHOLOGY], str)
        else:
            assert reason in error, (name, error)
            assert pd.isna(cat.loc[name, C.P_MERGER]) and pd.isna(cat.loc[name, C.MORPHOLOGY])
    assert cat.loc["edge", C.COVERAGE] == pytest.approx(1 - (SIZE // 3) / SIZE, abs=0.02)
    assert cat.loc["good0", C.COVERAGE] == 1.0
    # The three compressed FITS files hold the same cube: the same prediction.
    fits_rows = cat.loc[["fits_gz", "fits_bz2", "fits_fz"], "odd_feature_merger"].to_numpy()
    assert np.ptp(fits_rows) < 1e-6

    # Errors counted by reason on the console: 2 blank cutouts, one oversized, one unreadable.
    assert "2 row(s): no signal" in printed.out
    assert "1 row(s): not JPEG, PNG" in printed.out
    assert "1 row(s): image is over the cap on one cutout" in printed.out
    assert "rows with errors: 4" in printed.out

    # The same catalog as a HATS collection beside it, which LSDB opens, and a _metadata summary.
    import lsdb

    assert (out / "_metadata").exists()
    hats = lsdb.open_catalog(str(out) + "_hats").compute()
    assert sorted(hats[C.OBJECT_ID]) == sorted(cat.index)
