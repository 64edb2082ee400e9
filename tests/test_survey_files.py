"""Survey files as astronomers have them: compressed FITS and tables, the GZ2 image release,
the original SDSS Galaxy10, duplicate ids and cutouts, sexagesimal and impossible positions.

Each case builds its files here (numpy, astropy, Pillow, pandas, h5py) and asserts the value
read -- the joined image, the class name, the position, the row count -- or the one-line refusal.
Most cases read through ``Source.metadata`` and ``Source.read_rows`` (what Ray workers run);
a few go through ``read_source``/``pack`` end to end.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from galaxy_ray.cli import run_entry_point
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.schema import GALAXY10_CLASSES, GZ2_HART_COLUMNS, GZ2_KAGGLE_COLUMNS, conditional_to_cumulative
from galaxy_ray.data.sources import (
    detect_format,
    find_identity,
    open_source,
    pack,
    pack_main,
    read_source,
    refuse_duplicate_ids,
    split_keys,
    table_identity,
)
from galaxy_ray.data.sources.galaxy10_h5 import GALAXY10_SDSS_CLASSES
from galaxy_ray.data.sources.identity import cutout_digest

IDS = [str(587_722_981_736_000_001 + 7919 * i) for i in range(6)]


def _rows(source):
    """Every row of a source as pandas, read the way a worker reads a block."""
    src = open_source(source) if isinstance(source, (str, Path)) else source
    return src.read_rows(src.metadata()).to_pandas()


def _jpeg(seed: int, size: int = 16) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG")
    return buf.getvalue()


def _hdus(object_id, ra, dec, label, size=8):
    """(header with a TAN WCS centred on ra/dec, OBJECT and LABEL; (3, size, size) float32 pixels)."""
    from astropy.io import fits
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
    w.wcs.cdelt = [-0.4 / 3600, 0.4 / 3600]
    header = fits.Header(w.to_header())
    header["OBJECT"], header["LABEL"] = object_id, label
    return header, np.random.default_rng(len(object_id)).random((3, size, size)).astype(np.float32)


def _fits_fz(object_id, ra, dec, label, object_in_primary=False) -> bytes:
    """A tile-compressed (fpack-style) file: empty primary HDU, CompImageHDU in HDU 1."""
    from astropy.io import fits

    header, data = _hdus(object_id, ra, dec, label)
    primary = fits.PrimaryHDU()
    if object_in_primary:  # fpack keeps the original primary cards in the primary HDU
        primary.header["OBJECT"] = header.pop("OBJECT")
    buf = io.BytesIO()
    fits.HDUList([primary, fits.CompImageHDU(data, header=header)]).writeto(buf)
    return buf.getvalue()


def _fits(object_id, ra, dec, label) -> bytes:
    from astropy.io import fits

    header, data = _hdus(object_id, ra, dec, label)
    buf = io.BytesIO()
    fits.PrimaryHDU(data, header=header).writeto(buf)
    return buf.getvalue()


def _hart16(n: int, seed: int = 3, positions: str = "degrees") -> pd.DataFrame:
    """A table with Hart et al. (2016) columns: dr7objid, ra, dec, rastring, decstring, sample, votes."""
    from astropy.coordinates import SkyCoord

    rng = np.random.default_rng(seed)
    ra, dec = rng.uniform(0, 360, n), rng.uniform(-20, 60, n)
    sky = SkyCoord(ra, dec, unit="deg")
    t = pd.DataFrame({"dr7objid": IDS[:n]})
    if positions == "degrees":
        t["ra"], t["dec"] = ra, dec
    t["rastring"] = sky.ra.to_string(unit="hourangle", sep=":", precision=2, pad=True)
    t["decstring"] = sky.dec.to_string(unit="deg", sep=":", precision=1, alwayssign=True, pad=True)
    t["sample"] = "original"
    votes = {f"{hart}_{kind}": rng.uniform(0, 1, n) if kind != "flag" else np.zeros(n, int)
             for hart in GZ2_HART_COLUMNS
             for kind in ("count", "weight", "fraction", "weighted_fraction", "debiased", "flag")}
    return pd.concat([t, pd.DataFrame(votes)], axis=1)


def _expected_votes(t: pd.DataFrame) -> np.ndarray:
    """Cumulative targets of a table's conditional fractions, each question scaled to sum to 1."""
    from galaxy_ray.schema import GZ2_QUESTIONS

    cond = t[[f"{h}_fraction" for h in GZ2_HART_COLUMNS]].to_numpy(dtype=np.float64, copy=True)
    for q in GZ2_QUESTIONS:
        cond[:, q.indices] /= cond[:, q.indices].sum(axis=1, keepdims=True)
    return conditional_to_cumulative(cond)


def _gz2_release(root: Path, n: int = 5, mapping: bool = True) -> tuple[pd.DataFrame, dict[str, bytes]]:
    """GZ2 as released: gz2_hart16.csv.gz, gz2_filename_mapping.csv, images/<asset_id>.jpg."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir()
    t = _hart16(n)
    (root / "gz2_hart16.csv.gz").write_bytes(gzip.compress(t.to_csv(index=False).encode()))
    assets = [str(100 + 7 * k) for k in range(n)]
    if mapping:
        pd.DataFrame({"objid": t.dr7objid, "sample": "original", "asset_id": assets}).to_csv(
            root / "gz2_filename_mapping.csv", index=False)
    by_id = {}
    for k, (i, a) in enumerate(zip(t.dr7objid, assets)):
        by_id[i] = _jpeg(k)
        (root / "images" / f"{a}.jpg").write_bytes(by_id[i])
    return t, by_id


# --------------------------------------------------------------------------- A. compressed files


def test_folder_of_fits_fz_is_fits_and_reads_the_compressed_hdu(tmp_path):
    folder = tmp_path / "fz"
    folder.mkdir()
    truth = {f"g{k}": (150.0 + k, -2.0 + k, GALAXY10_CLASSES[k]) for k in range(3)}
    for k, (obj, (ra, dec, label)) in enumerate(truth.items()):
        (folder / f"file{k}.fits.fz").write_bytes(_fits_fz(obj, ra, dec, label, object_in_primary=k == 0))
    assert detect_format(str(folder)) == "fits"
    rows = _rows(str(folder)).set_index("object_id")
    assert sorted(rows.index) == sorted(truth)  # OBJECT read from HDU 1, or from the primary
    for obj, (ra, dec, label) in truth.items():
        np.testing.assert_allclose([rows.ra[obj], rows.dec[obj]], [ra, dec], atol=1e-6)
        assert rows.label[obj] == label
        assert rows.image[obj].startswith(b"SIMPLE")  # a valid FITS file for decoding


def test_single_fits_fz_file(tmp_path):
    path = tmp_path / "cutout.fits.fz"
    path.write_bytes(_fits_fz("NGC 4486", 187.7059, 12.3911, "Round Smooth"))
    rows = _rows(str(path))
    assert (rows.object_id[0], rows.label[0]) == ("NGC 4486", "Round Smooth")
    np.testing.assert_allclose([rows.ra[0], rows.dec[0]], [187.7059, 12.3911], atol=1e-6)


def test_fits_gz_and_bz2_are_unwrapped(tmp_path):
    folder = tmp_path / "wrapped"
    folder.mkdir()
    plain = {"a": _fits("a", 10.0, 1.0, "x"), "b": _fits("b", 20.0, 2.0, "y")}
    (folder / "a.fits.gz").write_bytes(gzip.compress(plain["a"]))
    (folder / "b.fits.bz2").write_bytes(bz2.compress(plain["b"]))
    assert detect_format(str(folder)) == "fits"
    rows = _rows(str(folder)).set_index("object_id")
    assert rows.image["a"] == plain["a"] and rows.image["b"] == plain["b"]
    np.testing.assert_allclose(rows.loc[["a", "b"], "ra"], [10.0, 20.0], atol=1e-6)


def test_gzipped_hart16_catalog_is_detected_and_read(tmp_path):
    t, by_id = _gz2_release(tmp_path / "gz2", mapping=False)
    for i in t.dr7objid:  # images named by dr7objid here: no mapping needed
        (tmp_path / "gz2" / "images" / f"{i}.jpg").write_bytes(by_id[i])
    assert detect_format(str(tmp_path / "gz2")) == "gz2-catalog"
    assert detect_format(str(tmp_path / "gz2" / "gz2_hart16.csv.gz")) == "gz2-catalog"
    rows = _rows(str(tmp_path / "gz2")).set_index("object_id").loc[t.dr7objid]
    np.testing.assert_allclose(np.stack(rows.votes.to_numpy()), _expected_votes(t), atol=1e-6)
    np.testing.assert_allclose(rows.ra, t.ra)
    assert [rows.image[i] for i in t.dr7objid] == [by_id[i] for i in t.dr7objid]


def _manifest_bz2(root: Path, n: int = 4) -> pd.DataFrame:
    (root / "images").mkdir(parents=True)
    t = pd.DataFrame({"object_id": IDS[:n], "ra": np.linspace(10, 40, n), "dec": np.linspace(-5, 5, n),
                      "path": [f"images/{i}.jpg" for i in IDS[:n]], "label": "Merging"})
    for k, i in enumerate(IDS[:n]):
        (root / "images" / f"{i}.jpg").write_bytes(_jpeg(k))
    (root / "manifest.csv.bz2").write_bytes(bz2.compress(t.to_csv(index=False).encode()))
    return t


def test_bzip2_manifest_local_end_to_end(tmp_path, ray_cluster):
    t = _manifest_bz2(tmp_path / "m")
    assert detect_format(str(tmp_path / "m")) == "manifest"
    rows = read_source(str(tmp_path / "m")).to_pandas().set_index("object_id").loc[t.object_id]
    np.testing.assert_allclose(rows.dec, t.dec)
    assert rows.image[t.object_id[2]] == (tmp_path / "m" / t.path[2]).read_bytes()


def test_compressed_tables_on_s3(tmp_path, s3_bucket):
    _manifest_bz2(tmp_path / "m")
    _gz2_release(tmp_path / "g")
    fs, root = storage.fsspec_filesystem(s3_bucket)
    fs.put(str(tmp_path) + "/", root + "/", recursive=True)
    assert detect_format(f"{s3_bucket}/m") == "manifest"
    assert len(_rows(f"{s3_bucket}/m")) == 4
    assert detect_format(f"{s3_bucket}/g/gz2_hart16.csv.gz") == "gz2-catalog"
    rows = _rows(f"{s3_bucket}/g")  # the mapping beside the catalog, found by listing its folder
    assert len(rows) == 5 and rows.image.notna().all()


# --------------------------------------------------------------------------- B. GZ2 image release


def test_gz2_release_joins_dr7objid_to_asset_id(tmp_path):
    t, by_id = _gz2_release(tmp_path / "gz2")
    src = open_source(str(tmp_path / "gz2"))
    rows = _rows(src).set_index("object_id")
    assert len(rows) == 5 and src.presence.found == 5
    assert all(rows.image[i] == by_id[i] for i in t.dr7objid)  # each catalog row with its own cutout
    assert rows.source[t.dr7objid[1]].endswith("/images/107.jpg")


def test_gz2_release_mapping_named_by_option_and_flag(tmp_path, capsys, ray_cluster):
    t, by_id = _gz2_release(tmp_path / "gz2")
    mapping = tmp_path / "elsewhere" / "names.csv.gz"
    mapping.parent.mkdir()
    mapping.write_bytes(gzip.compress((tmp_path / "gz2" / "gz2_filename_mapping.csv").read_bytes()))
    (tmp_path / "gz2" / "gz2_filename_mapping.csv").unlink()
    catalog = str(tmp_path / "gz2" / "gz2_hart16.csv.gz")
    rows = _rows(open_source(catalog, filename_mapping=str(mapping))).set_index("object_id")
    assert all(rows.image[i] == by_id[i] for i in t.dr7objid)

    err = _refusal([catalog, str(tmp_path / "out")], capsys)  # without it: refused, nothing written
    assert "0 of 5" in err and "gz2_filename_mapping.csv" in err and "--filename-mapping" in err
    assert not (tmp_path / "out").exists()

    assert run_entry_point(pack_main, [catalog, str(tmp_path / "out"), "--filename-mapping", str(mapping)]) == 0
    back = pd.read_parquet(tmp_path / "out" / "part-00000.parquet")
    assert dict(zip(back.object_id, back.image)) == by_id
    with pytest.raises(GalaxyRayError, match="--galaxy10 sdss: applies to a galaxy10-h5 source only"):
        open_source(catalog, galaxy10="sdss")


def test_gz2_release_without_mapping_is_refused_before_any_work(tmp_path, capsys):
    _gz2_release(tmp_path / "gz2", mapping=False)
    out = tmp_path / "out"
    err = _refusal([str(tmp_path / "gz2"), str(out)], capsys)
    images = str(tmp_path / "gz2" / "images")
    assert "gz2_hart16.csv.gz" in err and "only 0 of 5 listed cutouts found" in err and images in err
    assert "<dr7objid>.jpg" in err and not out.exists()


def test_gz2_mapping_with_several_samples_picks_by_sample(tmp_path):
    t, _ = _gz2_release(tmp_path / "gz2")
    mapping = pd.read_csv(tmp_path / "gz2" / "gz2_filename_mapping.csv", dtype=str)
    other = mapping.iloc[[0]].assign(sample="stripe82", asset_id="999")  # same objid, another sample
    pd.concat([mapping, other]).to_csv(tmp_path / "gz2" / "gz2_filename_mapping.csv", index=False)
    rows = _rows(str(tmp_path / "gz2")).set_index("object_id")
    assert rows.source[t.dr7objid[0]].endswith("/images/100.jpg")  # the catalog row's sample: original

    t2 = t.drop(columns=["sample"])
    (tmp_path / "gz2" / "gz2_hart16.csv.gz").write_bytes(gzip.compress(t2.to_csv(index=False).encode()))
    with pytest.raises(GalaxyRayError, match=f"objid {t.dr7objid[0]} has several asset ids \\(100, 999\\)"):
        open_source(str(tmp_path / "gz2")).metadata()


def _refusal(argv, capsys) -> str:
    assert run_entry_point(pack_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("galaxy-ray: error:") and "\n" not in err
    return err


def test_manifest_with_most_files_missing_is_refused_few_missing_warned(tmp_path, capsys):
    t = _manifest_bz2(tmp_path / "m", n=6)
    for p in t.path[:4]:
        (tmp_path / "m" / p).unlink()
    err = _refusal([str(tmp_path / "m"), str(tmp_path / "out")], capsys)
    assert "manifest.csv.bz2" in err and "only 2 of 6 listed cutouts found" in err
    assert str(tmp_path / "m" / "images") in err

    (tmp_path / "m" / t.path[0]).write_bytes(_jpeg(0))
    (tmp_path / "m" / t.path[1]).write_bytes(_jpeg(1))
    src = open_source(str(tmp_path / "m"))
    assert len(src.metadata()) == 6 and (src.presence.found, src.presence.missing) == (4, 2)
    assert "2 of 6 listed cutouts missing" in capsys.readouterr().err


def test_kaggle_images_elsewhere_is_refused(tmp_path):
    root = tmp_path / "k"
    (root / "images_training_rev1").mkdir(parents=True)
    table = pd.DataFrame(np.full((3, 37), 0.5), columns=list(GZ2_KAGGLE_COLUMNS))
    table.insert(0, "GalaxyID", ["100", "101", "102"])
    table.to_csv(root / "training_solutions_rev1.csv.gz", index=False, compression="gzip")
    (root / "images_training_rev1" / "100.jpg").write_bytes(_jpeg(0))
    assert detect_format(str(root)) == "kaggle-gz2"
    with pytest.raises(GalaxyRayError, match=r"only 1 of 3 listed cutouts found .*<GalaxyID>\.jpg"):
        open_source(str(root)).metadata()


# --------------------------------------------------------------------------- C. the two Galaxy10 releases


def _h5(path: Path, size: int, ans, **extra) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f["images"] = np.random.default_rng(0).integers(0, 255, (len(ans), size, size, 3), dtype=np.uint8)
        f["ans"] = np.asarray(ans, dtype=np.uint8)
        for k, v in extra.items():
            f[k] = v
    return path


def test_galaxy10_sdss_gets_its_own_class_names(tmp_path):
    src = open_source(str(_h5(tmp_path / "Galaxy10.h5", 69, [1, 1, 0, 9, 5])))
    assert src.release == "sdss"
    labels = list(_rows(src).label)
    assert labels == ["Smooth, Completely round", "Smooth, Completely round", "Disk, Face-on, No Spiral",
                      "Disk, Face-on, Loose Spiral", "Disk, Edge-on, Boxy Bulge"]
    assert "Merging" not in GALAXY10_SDSS_CLASSES and len(set(GALAXY10_SDSS_CLASSES)) == 10


def test_galaxy10_decals_by_size_or_datasets(tmp_path):
    big = open_source(str(_h5(tmp_path / "a.h5", 256, [1, 2])))
    assert big.release == "decals" and list(_rows(big).label) == ["Merging", "Round Smooth"]
    small = _h5(tmp_path / "b.h5", 16, [1], ra=[10.0], dec=[1.0], redshift=[0.1], pxscale=[0.262])
    assert list(_rows(str(small)).label) == ["Merging"]


def test_galaxy10_release_that_cannot_be_told_is_refused(tmp_path):
    unknown = str(_h5(tmp_path / "u.h5", 32, [1]))
    with pytest.raises(GalaxyRayError, match="u.h5: cannot tell Galaxy10 SDSS .* --galaxy10 sdss or --galaxy10 decals"):
        open_source(unknown)
    assert list(_rows(open_source(unknown, galaxy10="sdss")).label) == ["Smooth, Completely round"]
    mixed = str(_h5(tmp_path / "m.h5", 69, [1], redshift=[0.1]))
    with pytest.raises(GalaxyRayError, match="69x69 images say sdss but its datasets redshift say decals"):
        open_source(mixed)
    with pytest.raises(GalaxyRayError, match="row object_id=bad_1: 'ans' is 12"):
        open_source(str(_h5(tmp_path / "bad.h5", 69, [1, 12]))).metadata()


# --------------------------------------------------------------------------- D. identifiers


def test_duplicate_ids_and_identical_cutouts(tmp_path, ray_cluster):
    root = tmp_path / "m"
    (root / "images").mkdir(parents=True)
    same = _jpeg(7)
    files = {"a.jpg": same, "b.jpg": _jpeg(8), "c.jpg": same, "d.jpg": _jpeg(9)}
    for name, data in files.items():
        (root / "images" / name).write_bytes(data)
    pd.DataFrame({"object_id": ["g1", "g2", "g3", "g2", "g4"],
                  "path": ["images/a.jpg", "images/b.jpg", "images/c.jpg", "images/d.jpg", "images/d.jpg"]}
                 ).to_csv(root / "manifest.csv", index=False)
    meta = open_source(str(root)).metadata()
    assert table_identity(meta).duplicate_ids == {"g2": 2}  # from the metadata alone, before any pixels
    table = read_source(str(root)).to_pandas()
    report = table_identity(table)
    assert report.duplicate_ids == {"g2": 2} and report.duplicate_rows == 1
    assert report.identical_groups == [["g1", "g3"], ["g2", "g4"]]  # g2's second row and g4 share d.jpg
    digests = [cutout_digest(b) for b in table.image]
    assert find_identity(list(table.object_id), digests) == report
    keys = dict(zip(table.object_id, split_keys(list(table.object_id), digests)))
    assert keys["g3"] == keys["g1"] == "g1" and keys["g4"] == "g2"
    with pytest.raises(GalaxyRayError, match=r"manifest.csv: 1 object_id is on several rows \(g2 \(2 rows\)\)"):
        refuse_duplicate_ids(table.object_id, str(root / "manifest.csv"))


# --------------------------------------------------------------------------- E. positions


def test_sexagesimal_positions_parsed_with_units(tmp_path, ray_cluster):
    from astropy.coordinates import SkyCoord

    root = tmp_path / "m"
    (root / "images").mkdir(parents=True)
    ra = ["12:30:49.42", "00:00:00.5", "23:59:59.9", "", "12h30m49.42s"]  # the last with its own units
    dec = ["+12:23:28.0", "-00:30:00", "-89:59:59", "", "+12:23:28"]
    ids = [f"s{k}" for k in range(5)]
    for i in ids:
        (root / "images" / f"{i}.jpg").write_bytes(_jpeg(1))
    pd.DataFrame({"object_id": ids, "ra": ra, "dec": dec,
                  "path": [f"images/{i}.jpg" for i in ids]}).to_csv(root / "manifest.csv", index=False)
    rows = _rows(str(root)).set_index("object_id")
    want = SkyCoord(["12:30:49.42 +12:23:28.0", "00:00:00.5 -00:30:00", "23:59:59.9 -89:59:59"],
                    unit=("hourangle", "deg"))
    np.testing.assert_allclose(rows.loc[["s0", "s1", "s2"], "ra"], want.ra.deg, atol=1e-9)
    np.testing.assert_allclose(rows.loc[["s0", "s1", "s2"], "dec"], want.dec.deg, atol=1e-9)
    assert np.isnan(rows.ra["s3"]) and np.isnan(rows.dec["s3"])  # absent stays null
    np.testing.assert_allclose([rows.ra["s4"], rows.dec["s4"]], [187.7059167, 12.3911111], atol=1e-6)
    streamed = read_source(str(root)).to_pandas().set_index("object_id")  # Ray Data's CSV reader, in workers
    np.testing.assert_allclose(streamed.loc[rows.index, "ra"], rows.ra)


def test_hart16_rastring_decstring_when_no_degrees(tmp_path):
    root = tmp_path / "gz2"
    root.mkdir()
    t = _hart16(4, positions="sexagesimal").assign(image=[f"{i}.jpg" for i in IDS[:4]])
    for i in t.dr7objid:
        (root / f"{i}.jpg").write_bytes(_jpeg(2))
    t.to_csv(root / "gz2_hart16.csv", index=False)
    deg = _hart16(4)
    rows = _rows(str(root)).set_index("object_id").loc[t.dr7objid]
    np.testing.assert_allclose(rows.ra, deg.ra, atol=0.01 / 3600 * 15)  # rastring keeps 0.01 s of time
    np.testing.assert_allclose(rows.dec, deg.dec, atol=0.1 / 3600)


@pytest.mark.parametrize("ra, dec, shown", [
    ("12:30:49.42", "+95:00:00", "dec '+95:00:00' is not a sky position"),
    ("400.0", "10", "ra '400.0' is not a sky position"),
    ("-1.5", "10", "ra '-1.5' is not a sky position"),
    ("n/a", "10", "ra 'n/a' is not a position"),
    ("25:00:00", "10", "ra '25:00:00' is not a position"),
    ("10", "12:75:00", "dec '12:75:00' is not a position"),
])
def test_impossible_positions_are_refused(tmp_path, capsys, ra, dec, shown):
    root = tmp_path / "m"
    (root / "images").mkdir(parents=True)
    for i in ("ok", "bad"):
        (root / "images" / f"{i}.jpg").write_bytes(_jpeg(3))
    pd.DataFrame({"object_id": ["ok", "bad"], "ra": ["10.5", ra], "dec": ["1.0", dec],
                  "path": ["images/ok.jpg", "images/bad.jpg"]}).to_csv(root / "manifest.csv", index=False)
    err = _refusal([str(root), str(tmp_path / "out")], capsys)
    assert "manifest.csv: row object_id=bad: " + shown in err
    with pytest.raises(GalaxyRayError, match="row object_id=bad"):  # streaming: refused on the driver first
        read_source(str(root))


def test_galaxy10_positions_off_the_sky_are_refused(tmp_path):
    path = _h5(tmp_path / "g.h5", 16, [0, 1], ra=[10.0, 20.0], dec=[5.0, -91.0], redshift=[0.1, 0.1],
               pxscale=[0.262, 0.262])
    with pytest.raises(GalaxyRayError, match="g.h5: row object_id=g_1: dec -91 is not a sky position"):
        open_source(str(path)).metadata()


def test_pack_gz2_release_writes_every_image(tmp_path, ray_cluster):
    """The released layout packs every catalog row with its own asset_id cutout."""
    t, by_id = _gz2_release(tmp_path / "gz2")
    summary = pack(str(tmp_path / "gz2"), str(tmp_path / "out"), rows_per_shard=2, verbose=False)
    assert summary["rows"] == 5 and summary["shards"] == 3
    plan = json.loads((tmp_path / "out" / "_pack.json").read_text())
    assert plan["complete"] and plan["format"] == "gz2-catalog"
    back = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "out").glob("part-*.parquet")))
    assert dict(zip(back.object_id, back.image)) == by_id


def test_tables_in_any_wrapping_and_archives(tmp_path):
    """Every wrapping is told from the first bytes and read; an archive is refused with what to do."""
    import lzma

    from galaxy_ray.data.sources.tables import read_table, table_columns

    text = b"object_id,ra\n001,10.5\n002,20.25\n"
    for name, data in (("t.csv.gz", gzip.compress(text)), ("t.csv.bz2", bz2.compress(text)),
                       ("t.csv.xz", lzma.compress(text)), ("t.csv.zst", _zstd_frame(text)),
                       ("plain-name.csv", gzip.compress(text))):
        (tmp_path / name).write_bytes(data)
        assert table_columns(str(tmp_path / name)) == ["object_id", "ra"]
        t = read_table(str(tmp_path / name), columns_as_string=["object_id"])
        assert list(t.object_id) == ["001", "002"] and list(t.ra) == [10.5, 20.25]
    (tmp_path / "images_training_rev1.zip").write_bytes(b"PK\x03\x04")
    with pytest.raises(GalaxyRayError, match="images_training_rev1.zip: an archive of many files; unpack it"):
        detect_format(str(tmp_path / "images_training_rev1.zip"))


def _zstd_frame(data: bytes) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as out:
        out.write(data)
    return sink.getvalue().to_pybytes()
