"""The synthetic survey: determinism, labels that obey the GZ2 tree, no trivial class cue,
every documented layout (read back with h5py / astropy / pandas / pyarrow directly), S3 output
on the moto server, and the command line."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from galaxy_ray import schema, synthetic
from galaxy_ray.io import storage
from galaxy_ray.cli import run_entry_point

SIZE = 32


@pytest.fixture(scope="module")
def drawn() -> list[synthetic.SyntheticGalaxy]:
    """100 small galaxies of seed 11, shared by the statistical tests (about a second)."""
    return list(synthetic.render_range(11, 0, 100, SIZE))


def test_galaxy_depends_only_on_seed_and_index():
    a, b = synthetic.render_galaxy(5, 7, 48), synthetic.render_galaxy(5, 7, 48)
    np.testing.assert_array_equal(a.bands, b.bands)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.votes, b.votes)
    assert a.object_id == "synth-5-0000007" and a.label == schema.GALAXY10_CLASSES[a.galaxy10]
    assert a.bands.shape == (3, 48, 48) and a.bands.dtype == np.float32
    assert a.rgb.shape == (48, 48, 3) and a.rgb.dtype == np.uint8
    assert a.votes.shape == (37,) and a.votes.dtype == np.float32
    assert synthetic.galaxy_class(5, 7) == a.galaxy10

    other_seed = synthetic.render_galaxy(6, 7, 48)
    assert not np.array_equal(a.bands, other_seed.bands)

    # any index range renders the same galaxies, and the size changes only the pixel grid
    table = synthetic.synthetic_table(4, size=48, seed=5, start=6)
    assert table.column("object_id").to_pylist() == [f"synth-5-{i:07d}" for i in range(6, 10)]
    row = table.slice(1, 1).to_pylist()[0]
    assert row["ra"] == a.ra and row["dec"] == a.dec and row["label"] == a.label
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(row["image"]))), a.rgb)
    small = synthetic.render_galaxy(5, 7, 32)
    assert (small.ra, small.dec, small.galaxy10) == (a.ra, a.dec, a.galaxy10)
    np.testing.assert_array_equal(small.votes, a.votes)


def test_sky_positions_fill_the_footprint():
    ra, dec = np.array([synthetic.sky_position(np.random.default_rng([1, i]), synthetic.DEFAULT_FOOTPRINT)
                        for i in range(2000)]).T
    assert ra.min() >= 120 and ra.max() <= 240 and dec.min() >= -5 and dec.max() <= 65
    # uniform on the sphere: equal areas below and above the dec that halves the band's sin(dec)
    mid = np.degrees(np.arcsin(0.5 * (np.sin(np.radians(-5)) + np.sin(np.radians(65)))))
    assert 0.45 < np.mean(dec < mid) < 0.55
    g = synthetic.render_galaxy(0, 3, 32, footprint=(350.0, 10.0, -10.0, -5.0))  # RA wrapping through 0
    assert (g.ra >= 350 or g.ra <= 10) and -10 <= g.dec <= -5


def test_votes_obey_the_tree_and_follow_the_class(drawn):
    votes = np.stack([g.votes for g in drawn]).astype(np.float64)
    classes = np.array([g.galaxy10 for g in drawn])
    schema.check_tree(votes, atol=1e-5)
    odd = [schema.GZ2_KAGGLE_COLUMNS.index(c) for c in ("Class6.1", "Class6.2")]
    np.testing.assert_allclose(votes[:, odd].sum(axis=1), 1.0, atol=1e-5)
    assert len(set(classes)) == 10
    # volunteer noise: no two galaxies share their vote vector
    assert len({tuple(v) for v in votes}) == len(votes)

    merger = schema.GZ2_MERGER_INDEX
    mean_merger = {k: votes[classes == k, merger].mean() for k in set(classes)}
    merging = schema.GALAXY10_CLASSES.index("Merging")
    assert max(mean_merger, key=mean_merger.get) == merging
    assert votes[classes == merging, odd[0]].mean() > 0.6
    # smooth classes get mostly "smooth" votes, spirals mostly "features"
    smooth = np.isin(classes, [2, 3, 4])
    spiral = np.isin(classes, [5, 6, 7])
    assert votes[smooth, 0].mean() > 0.6 > votes[spiral, 0].mean()



def test_expected_votes_are_what_the_votes_scatter_around(drawn):
    votes = np.stack([g.votes for g in drawn]).astype(np.float64)
    expected = np.stack([synthetic.expected_votes(11, g.index) for g in drawn])
    schema.check_tree(expected, atol=1e-9)
    floor = np.sqrt(((votes - expected) ** 2).mean())
    baseline = np.sqrt(((votes - votes.mean(axis=0)) ** 2).mean())
    # knowing each galaxy's answer probabilities beats the mean by far, but leaves the volunteer noise
    assert 0.02 < floor < 0.6 * baseline
    # and the votes are unbiased around them
    assert np.abs((votes - expected).mean(axis=0)).max() < 0.05

def _loo_nearest_mean_accuracy(feature: np.ndarray, classes: np.ndarray) -> float:
    """Leave-one-out accuracy of the nearest class mean on a single feature."""
    hits = 0
    for i in range(len(feature)):
        keep = np.arange(len(feature)) != i
        means = {k: feature[keep & (classes == k)].mean() for k in set(classes[keep])}
        hits += min(means, key=lambda k: abs(means[k] - feature[i])) == classes[i]
    return hits / len(feature)


def test_no_class_from_one_pixel_statistic(drawn):
    classes = np.array([g.galaxy10 for g in drawn])
    rgb = np.stack([g.rgb for g in drawn]).astype(np.float64)
    brightness = rgb.mean(axis=(1, 2, 3))
    colour = rgb[..., 0].mean(axis=(1, 2)) / (rgb[..., 2].mean(axis=(1, 2)) + 1.0)
    # chance is 0.1 over 10 classes; a class told apart by brightness or colour would score far higher
    assert _loo_nearest_mean_accuracy(brightness, classes) < 0.3
    assert _loo_nearest_mean_accuracy(colour, classes) < 0.3
    # the best single threshold on brightness separates two groups at most
    order = np.argsort(brightness)
    best = max(np.mean(np.where(np.arange(len(order)) < cut, lo, hi) == classes[order])
               for cut in range(len(order)) for lo in range(10) for hi in range(10))
    assert best < 0.3


def test_images_look_like_cutouts(drawn):
    g = drawn[0]
    # sky noise: the corners are dark but not empty; the galaxy is the brightest thing near the centre
    corner = g.bands[1, :6, :6]
    assert corner.std() > 0 and abs(np.median(corner)) < 3 * corner.std()
    centre = g.rgb[SIZE // 2 - 4:SIZE // 2 + 4, SIZE // 2 - 4:SIZE // 2 + 4].mean()
    assert centre > g.rgb[:6, :6].mean() + 20


def _galaxies(n: int, size: int, seed: int) -> list[synthetic.SyntheticGalaxy]:
    return list(synthetic.render_range(seed, 0, n, size))


@pytest.mark.parametrize("fmt", synthetic.FORMATS)
def test_each_format_writes_its_documented_layout(tmp_path, fmt):
    n, seed = 7, 4
    out = synthetic.synthesize(str(tmp_path / fmt), n, size=SIZE, fmt=fmt, seed=seed, rows_per_shard=3, workers=1)
    out = Path(out)
    truth = _galaxies(n, SIZE, seed)
    ids = [g.object_id for g in truth]
    ra, dec = np.array([g.ra for g in truth]), np.array([g.dec for g in truth])
    votes = np.stack([g.votes for g in truth])
    labels = [g.label for g in truth]

    if fmt == "galaxy10-h5":
        import h5py

        assert sorted(p.name for p in out.iterdir()) == ["Galaxy10_DECals.h5"]
        with h5py.File(out / "Galaxy10_DECals.h5", "r") as f:
            assert f["images"].shape == (n, SIZE, SIZE, 3) and f["images"].dtype == np.uint8
            assert f["ans"].dtype == np.uint8 and f["redshift"].dtype == np.float32
            assert [schema.GALAXY10_CLASSES[a] for a in f["ans"][:]] == labels
            np.testing.assert_array_equal(f["ra"][:], ra)
            np.testing.assert_array_equal(f["dec"][:], dec)
            np.testing.assert_array_equal(f["images"][2], truth[2].rgb)
            np.testing.assert_allclose(f["pxscale"][:], 0.262 * 256 / SIZE, rtol=1e-6)
    elif fmt == "kaggle-gz2":
        table = pd.read_csv(out / "training_solutions_rev1.csv")
        assert list(table.columns) == ["GalaxyID", *schema.GZ2_KAGGLE_COLUMNS]
        assert table["GalaxyID"].dtype.kind == "i" and table["GalaxyID"].is_unique
        np.testing.assert_array_equal(table[list(schema.GZ2_KAGGLE_COLUMNS)].to_numpy(np.float32), votes)
        names = sorted(p.name for p in (out / "images_training_rev1").iterdir())
        assert names == sorted(f"{i}.jpg" for i in table["GalaxyID"])
        assert Image.open(out / "images_training_rev1" / names[0]).format == "JPEG"
    elif fmt == "gz2-catalog":
        table = pd.read_csv(out / "gz2_catalog.csv")
        expected = ["dr7objid", "ra", "dec", "image"] + [f"{stem}_{kind}" for stem in schema.GZ2_HART_COLUMNS
                                                       for kind in ("fraction", "debiased")]
        assert list(table.columns) == expected
        assert table["dr7objid"].dtype == np.int64 and table["dr7objid"].is_unique
        np.testing.assert_array_equal(table["ra"].to_numpy(), ra)
        fraction = table[[f"{s}_fraction" for s in schema.GZ2_HART_COLUMNS]].to_numpy()
        np.testing.assert_allclose(schema.conditional_to_cumulative(fraction), votes, atol=1e-6)
        debiased = table[[f"{s}_debiased" for s in schema.GZ2_HART_COLUMNS]].to_numpy()
        schema.check_tree(schema.conditional_to_cumulative(debiased), atol=1e-6)
        for rel in table["image"]:
            assert (out / rel).is_file() and rel.startswith("images/") and rel.endswith(".jpg")
    elif fmt == "fits":
        from astropy.io import fits
        from astropy.wcs import WCS

        assert sorted(p.name for p in out.iterdir()) == [f"{i}.fits" for i in ids]
        for k in (0, 5):
            with fits.open(out / f"{ids[k]}.fits") as hdul:
                header, data = hdul[0].header, hdul[0].data
                assert data.shape == (3, SIZE, SIZE) and data.dtype.kind == "f"
                np.testing.assert_array_equal(data, truth[k].bands)
                assert header["BANDS"] == "grz" and header["OBJECT"] == ids[k] and header["LABEL"] == labels[k]
                wcs = WCS(header).celestial
                sky = wcs.pixel_to_world((SIZE - 1) / 2, (SIZE - 1) / 2)
                assert sky.ra.deg == pytest.approx(ra[k], abs=1e-9) and sky.dec.deg == pytest.approx(dec[k], abs=1e-9)
                scale = abs(wcs.proj_plane_pixel_scales()[0].to_value("arcsec"))
                assert scale == pytest.approx(0.262 * 256 / SIZE)
    elif fmt == "manifest":
        table = pd.read_csv(out / "manifest.csv")
        assert list(table.columns) == ["object_id", "ra", "dec", "path", "label", *schema.GZ2_KAGGLE_COLUMNS]
        assert table["object_id"].tolist() == ids and table["label"].tolist() == labels
        np.testing.assert_array_equal(table["dec"].to_numpy(), dec)
        for object_id, rel in zip(ids, table["path"]):
            assert rel == f"images/{object_id}.png"
        np.testing.assert_array_equal(np.asarray(Image.open(out / table["path"][3])), truth[3].rgb)
    elif fmt == "shards":
        assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet", "part-00001.parquet",
                                                        "part-00002.parquet"]
        assert [pq.read_metadata(out / f"part-0000{k}.parquet").num_rows for k in range(3)] == [3, 3, 1]
        table = pq.read_table(out)
        assert table.column_names == ["object_id", "ra", "dec", "image", "source", "votes", "label"]
        assert str(table.schema.field("votes").type) == "list<element: float>"
        assert table.column("object_id").to_pylist() == ids and table.column("label").to_pylist() == labels
        np.testing.assert_array_equal(np.stack(table.column("votes").to_numpy(zero_copy_only=False)), votes)
        assert table.column("image")[0].as_py()[:4] == b"\x89PNG"


def test_rerun_into_the_same_directory_drops_stale_files(tmp_path):
    synthetic.synthesize(str(tmp_path), 6, size=SIZE, fmt="shards", rows_per_shard=2, workers=1)
    synthetic.synthesize(str(tmp_path), 3, size=SIZE, fmt="shards", rows_per_shard=2, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert pq.read_table(tmp_path).num_rows == 3


@pytest.mark.slow
def test_parallel_workers_write_the_same_survey(tmp_path):
    serial = synthetic.synthesize(str(tmp_path / "serial"), 12, size=SIZE, fmt="shards", rows_per_shard=4, workers=1)
    parallel = synthetic.synthesize(str(tmp_path / "pool"), 12, size=SIZE, fmt="shards", rows_per_shard=4, workers=2)
    assert pq.read_table(serial).equals(pq.read_table(parallel))


def test_shards_and_h5_to_s3(s3_bucket):
    uri = f"{s3_bucket}/survey"
    synthetic.synthesize(uri, 5, size=SIZE, fmt="shards", seed=2, rows_per_shard=2, workers=1,
                         preview=f"{s3_bucket}/preview.png")
    fs, path = storage.pyarrow_filesystem(uri)
    table = pq.read_table(path, filesystem=fs)
    assert table.num_rows == 5
    assert sorted(storage.list_files(uri)) == [f"{uri}/part-0000{k}.parquet" for k in range(3)]
    assert table.column("object_id").to_pylist() == [f"synth-2-{i:07d}" for i in range(5)]
    assert Image.open(io.BytesIO(storage.read_bytes(f"{s3_bucket}/preview.png"))).format == "PNG"

    h5 = f"{s3_bucket}/h5"
    synthetic.synthesize(h5, 3, size=SIZE, fmt="galaxy10-h5", seed=2, workers=1)
    import h5py

    with storage.open_input(f"{h5}/Galaxy10_DECals.h5") as f, h5py.File(f, "r") as data:
        assert data["images"].shape == (3, SIZE, SIZE, 3)
        np.testing.assert_array_equal(data["ra"][:], table.column("ra").to_numpy()[:3])


def test_preview_grid(tmp_path):
    path = tmp_path / "grid.png"
    synthetic.synthesize(str(tmp_path / "s"), 40, size=SIZE, fmt="shards", seed=1, preview=str(path), workers=1)
    image = Image.open(path)
    assert image.format == "PNG" and image.size[0] > 400 and image.size[1] > 400


def test_cli_writes_and_reports(tmp_path, capsys):
    assert run_entry_point(synthetic.main, [str(tmp_path / "s"), "--n", "4", "--size", "32", "--format",
                                            "manifest", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "wrote 4" in out and str(tmp_path / "s") in out and "manifest.csv" in out
    assert (tmp_path / "s" / "manifest.csv").is_file()


@pytest.mark.parametrize("args, words", [
    (["--n", "0"], "n=0"),
    (["--size", "8"], "size=8"),
    (["--n", "many"], "--n"),
])
def test_cli_bad_values_are_one_line(tmp_path, capsys, args, words):
    assert run_entry_point(synthetic.main, [str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err


def test_cli_unknown_format_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "galaxy_ray.cli", "synth", str(tmp_path / "s"), "--format", "tiff"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "tiff" in lines[0] and "shards" in lines[0]
    assert not (tmp_path / "s").exists()
