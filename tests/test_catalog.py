"""Catalog writing and querying: real Parquet files, DuckDB, astropy, cdshealpix, moto S3."""

from __future__ import annotations

import json
import math

import astropy.units as u
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import Latitude, Longitude, SkyCoord
from astropy.table import Table
from cdshealpix import nested

from galaxy_ray import catalog as cat
from galaxy_ray.cli import run_entry_point
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import GZ2_ANSWER_COLUMNS, GZ2_KAGGLE_COLUMNS

PROVENANCE = {"task": "gz2", "output_columns": list(GZ2_ANSWER_COLUMNS), "merger": "Class8.6",
              "merger_threshold": 0.5}


def random_rows(n: int, seed: int, polar: float = 0.1, with_nulls: bool = True) -> pa.Table:
    """Random catalog rows, uniform on the sky plus a share crowded near the poles and RA = 0."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    k = int(n * polar)
    dec[:k] = rng.choice([-1, 1], k) * rng.uniform(85, 90, k)  # near the poles
    ra[k : 2 * k] = rng.uniform(-3, 3, k) % 360.0  # near RA = 0/360
    cols = {"object_id": [f"g{seed}_{i}" for i in range(n)], "ra": ra, "dec": dec}
    for name in GZ2_ANSWER_COLUMNS:
        cols[name] = rng.random(n).astype(np.float32)
    p = rng.random(n).astype(np.float32)
    error = np.array([None] * n, dtype=object)
    if with_nulls:
        error[rng.random(n) < 0.03] = "decode: truncated JPEG"
    cols.update(morphology=rng.choice(["spiral", "elliptical", "merger", "edge_on"], n), p_merger=p,
                is_merger=p >= 0.5, error=error, redshift=rng.uniform(0.0, 0.3, n))
    table = pa.table(cols)
    if with_nulls:  # a few galaxies without positions
        ra_col = pa.array(np.where(np.arange(n) % 97 == 5, np.nan, ra)).to_pylist()
        ra_col = [None if (v is not None and math.isnan(v)) else v for v in ra_col]
        table = table.set_column(1, "ra", pa.array(ra_col, pa.float64()))
    return table


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    """Three files of random rows, small row groups so that pruning has something to skip."""
    out = tmp_path_factory.mktemp("catalog")
    for k in range(3):
        cat.write_catalog_file(random_rows(4000, seed=k), str(out / f"part-{k:05d}.parquet"), PROVENANCE,
                               row_group_size=250)
    cat.write_catalog_summary(str(out), {**PROVENANCE, "rows": 12000})
    return out


@pytest.fixture(scope="module")
def everything(catalog_dir) -> pd.DataFrame:
    return pq.ParquetDataset(str(catalog_dir)).read().to_pandas()


# --------------------------------------------------------------------------- writing


def test_healpix29_matches_cdshealpix_and_nulls():
    ra = np.array([0.0, 10.5, 359.999, 123.0, np.nan, 5.0])
    dec = np.array([0.0, -45.0, 89.9999, -90.0, 1.0, np.nan])
    got = cat.healpix29(ra, dec)
    assert got.type == pa.int64()
    assert got.null_count == 2
    want = nested.lonlat_to_healpix(Longitude(ra[:4], unit=u.deg), Latitude(dec[:4], unit=u.deg), 29)
    assert got.to_pylist()[:4] == [int(v) for v in want]
    assert cat.healpix29(pa.array([1.0, None]), pa.array([2.0, 3.0])).to_pylist()[1] is None


def test_written_file_follows_the_contract(catalog_dir):
    pf = pq.ParquetFile(catalog_dir / "part-00001.parquet")
    schema = pf.schema_arrow
    want = cat.catalog_schema(GZ2_ANSWER_COLUMNS)
    assert schema.names[: len(want)] == want.names
    assert schema.names[len(want):] == ["redshift"]  # extra columns kept after the contract's
    for f in want:
        assert schema.field(f.name).type == f.type
    assert json.loads(schema.metadata[b"galaxy_ray"]) == PROVENANCE
    assert pf.metadata.num_row_groups == 16 and pf.metadata.row_group(0).num_rows == 250
    table = pf.read()
    hp = table["_healpix_29"]
    valid = hp.drop_null().to_numpy()
    assert (np.diff(valid) >= 0).all()
    assert hp.null_count > 0 and all(v is None for v in hp.to_pylist()[-hp.null_count:])  # nulls last
    assert cat.read_provenance(str(catalog_dir))["rows"] == 12000


def test_write_rejects_missing_columns(tmp_path):
    with pytest.raises(GalaxyRayError, match="p_merger"):
        cat.write_catalog_file(pa.table({"object_id": ["a"], "ra": [1.0], "dec": [2.0]}), str(tmp_path / "x.parquet"),
                               {"output_columns": []})


# --------------------------------------------------------------------------- spatial queries


def brute_cone(df: pd.DataFrame, ra: float, dec: float, radius: float) -> set[str]:
    ok = df["ra"].notna() & df["dec"].notna()
    sub = df[ok]
    sep = SkyCoord(sub["ra"].to_numpy(), sub["dec"].to_numpy(), unit="deg").separation(
        SkyCoord(ra, dec, unit="deg"))
    return set(sub["object_id"][sep.deg <= radius])


def brute_box(df: pd.DataFrame, ra_min, ra_max, dec_min, dec_max) -> set[str]:
    ra, dec = df["ra"], df["dec"]
    in_dec = (dec >= dec_min) & (dec <= dec_max)
    if ra_max - ra_min >= 360:
        in_ra = ra.notna()
    else:
        lo, hi = ra_min % 360, ra_max % 360
        in_ra = ((ra >= lo) & (ra <= hi)) if lo <= hi else ((ra >= lo) | (ra <= hi))
    return set(df["object_id"][in_dec & in_ra])


@pytest.mark.parametrize("ra, dec, radius", [
    (150.0, 20.0, 5.0),     # ordinary
    (0.5, 1.0, 3.0),        # across RA = 0/360
    (359.0, -30.0, 2.5),    # across RA = 0/360 from the other side
    (42.0, 89.0, 3.0),      # over the north pole
    (0.0, -90.0, 4.0),      # centred on the south pole
    (270.0, 10.0, 40.0),    # large
])
def test_cone_equals_brute_force(catalog_dir, everything, ra, dec, radius):
    c = cat.open_catalog(str(catalog_dir))
    got = cat.cone_search(c, ra, dec, radius, columns="object_id")
    want = brute_cone(everything, ra, dec, radius)
    assert want, "the test region should hold rows"
    assert set(got["object_id"]) == want and len(got) == len(want)
    scan = c.last_scan
    if radius < 10:  # pruning skipped row groups (the poles are crowded in these catalogs)
        assert scan.row_groups_read < scan.row_groups_total / (4 if abs(dec) < 80 else 2)
    # the unpruned full scan agrees
    assert set(cat.query(c, cone=(ra, dec, radius), columns="object_id", prune=False)["object_id"]) == want


@pytest.mark.parametrize("box", [
    (100.0, 130.0, -10.0, 15.0),
    (350.0, 10.0, -5.0, 5.0),     # across RA = 0/360
    (-8.0, 4.0, -60.0, 60.0),     # negative RA_MIN means the same
    (0.0, 360.0, 86.0, 90.0),     # polar cap
    (200.0, 90.0, -90.0, -87.0),  # wide wrap near the south pole
])
def test_box_equals_brute_force(catalog_dir, everything, box):
    c = cat.open_catalog(str(catalog_dir))
    got = cat.box_search(c, *box, columns=["object_id", "ra", "dec"], output="astropy")
    want = brute_box(everything, *box)
    assert want
    assert isinstance(got, Table)
    assert set(got["object_id"]) == want and len(got) == len(want)


def test_healpix_covers_hold_every_inside_point():
    """The pruning never loses a row: random points inside random cones and boxes (many near
    the poles and across RA = 0) all fall in the region's _healpix_29 ranges."""
    rng = np.random.default_rng(11)
    for _ in range(40):
        ra0, dec0 = rng.uniform(0, 360), rng.choice([rng.uniform(-90, 90), rng.choice([-1, 1]) * rng.uniform(80, 90)])
        radius = 10 ** rng.uniform(-2, 1.5)
        cone = cat.Cone(ra0, dec0, radius)
        pts = SkyCoord(ra0, dec0, unit="deg").directional_offset_by(
            rng.uniform(0, 360, 2000) * u.deg, rng.uniform(0, radius, 2000) * u.deg)
        hp = cat.healpix29(pts.ra.deg, pts.dec.deg).to_numpy().astype(np.int64)
        assert cat.in_ranges(hp, *cone.cover()).all(), cone
        lo_ra, width = rng.uniform(0, 360), rng.uniform(0.05, 300)
        dec_lo = rng.uniform(-90, 89)
        dec_hi = min(90.0, dec_lo + rng.uniform(0.05, 30)) if rng.random() < 0.7 else 90.0
        box = cat.Box(lo_ra, (lo_ra + width) % 360, dec_lo, dec_hi)
        ra = (lo_ra + rng.uniform(0, width, 2000)) % 360
        dec = rng.uniform(dec_lo, dec_hi, 2000)
        hp = cat.healpix29(ra, dec).to_numpy().astype(np.int64)
        assert cat.in_ranges(hp, *box.cover()).all(), box
    # zones near the poles, where HEALPix zone searches (cdshealpix 0.9, mocpy 0.21) lose cells
    for box in [cat.Box(0, 10, 86, 90), cat.Box(0, 10, 80, 86), cat.Box(0, 360, 86, 90), cat.Box(200, 90, -90, -87)]:
        width = (box.ra_max - box.ra_min) % 360 or 360
        ra = (box.ra_min + rng.uniform(0, width, 5000)) % 360
        dec = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(box.dec_min)), np.sin(np.radians(box.dec_max)), 5000)))
        hp = cat.healpix29(ra, dec).to_numpy().astype(np.int64)
        assert cat.in_ranges(hp, *box.cover()).all(), box


def test_filters_columns_sort_limit(catalog_dir, everything):
    got = cat.query(str(catalog_dir), cone=(150.0, 20.0, 30.0),
                    where="p_merger > 0.3 AND morphology = 'spiral' AND error IS NULL",
                    columns="object_id, p_merger, redshift", sort="p_merger desc", limit=7)
    inside = everything[everything["object_id"].isin(brute_cone(everything, 150.0, 20.0, 30.0))]
    want = inside[(inside.p_merger > 0.3) & (inside.morphology == "spiral") & inside.error.isna()]
    want = want.sort_values("p_merger", ascending=False).head(7)
    assert list(got.columns) == ["object_id", "p_merger", "redshift"]
    assert list(got["object_id"]) == list(want["object_id"])
    # no region: DuckDB over every file
    n = cat.query(str(catalog_dir), where="is_merger AND redshift < 0.1", columns="object_id")
    assert len(n) == int((everything.is_merger & (everything.redshift < 0.1)).sum())


@pytest.mark.parametrize("where, match", [
    ("p_merger > 0.5; DROP TABLE catalog", "single filter expression|not a valid"),
    ("p_merger > (SELECT max(p_merger) FROM catalog)", "subqueries"),
    ("object_id IN (SELECT * FROM read_csv('/etc/passwd'))", "subqueries"),
    ("read_parquet('/etc/passwd') IS NOT NULL", "not allowed|not a valid"),
    ("1=1) UNION SELECT * FROM read_csv('/etc/passwd') --", "single filter expression|not a valid"),
    ("no_such_column > 1", "unknown column 'no_such_column'"),
    ("p_merger >", "not a valid SQL expression"),
])
def test_bad_where_is_one_line(catalog_dir, where, match):
    with pytest.raises(GalaxyRayError, match=match) as info:
        cat.query(str(catalog_dir), where=where)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("argv, match", [
    (["--cone", "10", "0", "0"], "radius 0: must be > 0"),
    (["--cone", "10", "0", "-1"], "radius -1: must be > 0"),
    (["--cone", "10", "95", "1"], "Dec 95: outside"),
    (["--box", "10", "20", "-95", "0"], "dec_min -95: outside"),
    (["--columns", "object_id,nope"], "--columns 'nope': unknown column"),
    (["--sort", "nope desc"], "--sort 'nope': unknown column"),
])
def test_bad_query_arguments_exit_2_with_one_line(catalog_dir, capsys, argv, match):
    assert run_entry_point(cat.query_main, [str(catalog_dir), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("galaxy-ray: error:") and "\n" not in err
    assert match in err


def test_not_a_catalog(tmp_path, capsys):
    pq.write_table(pa.table({"a": [1]}), tmp_path / "plain.parquet")
    assert run_entry_point(cat.query_main, [str(tmp_path)]) == 2
    assert "not a galaxy-ray catalog" in capsys.readouterr().err
    assert run_entry_point(cat.stats_main, [str(tmp_path / "missing")]) == 2
    assert "no such catalog" in capsys.readouterr().err


# --------------------------------------------------------------------------- outputs


def test_outputs_read_back(catalog_dir, tmp_path, everything, capsys):
    want = brute_cone(everything, 0.5, 1.0, 3.0)
    for name in ("hits.fits", "hits.vot", "hits.csv", "hits.parquet"):
        out = tmp_path / name
        argv = [str(catalog_dir), "--cone", "0.5", "1.0", "3.0", "--out", str(out)]
        assert run_entry_point(cat.query_main, argv) == 0
        if name.endswith(".parquet"):  # astropy's Parquet reader cannot take null strings
            t = Table(pq.read_table(out).to_pandas().to_dict("list"))
        else:
            t = Table.read(out, format={"hits.fits": "fits", "hits.vot": "votable", "hits.csv": "ascii.csv"}[name])
        assert set(np.asarray(t["object_id"]).astype(str)) == want
        assert "odd_feature_merger" in t.colnames and len(t) == len(want)
        row = everything.set_index("object_id").loc[str(t["object_id"][0])]
        assert float(t["p_merger"][0]) == pytest.approx(float(row.p_merger), rel=1e-6)
    # terminal table
    assert run_entry_point(cat.query_main, [str(catalog_dir), "--cone", "0.5", "1", "3", "--columns",
                                            "object_id,p_merger", "--max-print", "2"]) == 0
    assert f"{len(want)} rows; first 2 shown" in capsys.readouterr().out


def test_kaggle_submission(catalog_dir, tmp_path, everything):
    out = tmp_path / "submission.csv"
    assert run_entry_point(cat.query_main, [str(catalog_dir), "--box", "100", "130", "-10", "15",
                                            "--kaggle-submission", str(out)]) == 0
    sub = pd.read_csv(out, dtype={"GalaxyID": str})
    assert list(sub.columns) == ["GalaxyID", *GZ2_KAGGLE_COLUMNS]
    inside = everything[everything.object_id.isin(brute_box(everything, 100, 130, -10, 15))]
    ok = inside[inside.error.isna()].set_index("object_id")
    assert set(sub.GalaxyID) == set(ok.index)
    first = sub.iloc[0]
    # Class8.6 is the merger answer odd_feature_merger
    assert first["Class8.6"] == pytest.approx(float(ok.loc[first.GalaxyID, "odd_feature_merger"]), rel=1e-6)


# --------------------------------------------------------------------------- statistics


def test_wilson_interval_reference():
    # Wilson (1927) score interval by its formula, z = 1.959964 for 95 %
    k, n, z = 5, 100, 1.959963984540054
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    lo, hi = cat.wilson_interval(k, n)
    assert (lo, hi) == pytest.approx((centre - half, centre + half), abs=1e-9)
    assert (lo, hi) == pytest.approx((0.02154, 0.11175), abs=1e-5)  # the published value for 5/100
    assert cat.wilson_interval(0, 20)[0] == 0.0


def test_stats_match_pandas(catalog_dir, everything, capsys):
    s = cat.merger_stats(str(catalog_dir), cone=(270.0, 10.0, 40.0), by="redshift", bins="0,0.1,0.2,0.3")
    inside = everything[everything.object_id.isin(brute_cone(everything, 270.0, 10.0, 40.0))]
    ok = inside[inside.error.isna()]
    assert s["rows"] == len(inside) and s["error_rows"] == int(inside.error.notna().sum())
    assert s["mergers"] == int(ok.is_merger.sum())
    assert s["merger_fraction"] == pytest.approx(ok.is_merger.mean())
    assert s["merger_fraction_95"] == pytest.approx(list(cat.wilson_interval(s["mergers"], len(ok))))
    assert s["morphology"] == ok.morphology.value_counts().to_dict()
    assert [g["group"] for g in s["groups"]] == ["[0, 0.1)", "[0.1, 0.2)", "[0.2, 0.3]"]
    low = ok[ok.redshift < 0.1]
    assert s["groups"][0]["classified_rows"] == len(low) and s["groups"][0]["mergers"] == int(low.is_merger.sum())
    for g in s["groups"]:  # the per-group intervals are each group's own
        assert g["merger_fraction_95"] == pytest.approx(list(cat.wilson_interval(g["mergers"], g["classified_rows"])))
    assert sum(g["rows"] for g in s["groups"]) == len(inside)
    assert run_entry_point(cat.stats_main, [str(catalog_dir), "--where", "morphology = 'spiral'", "--by",
                                            "morphology"]) == 0
    text = capsys.readouterr().out
    assert "flagged fraction:" in text and "Lotz et al. 2011" in text and "0.05" in text
    assert "corrected for the classifier: n/a" in text  # this catalog records no validation rates


def test_stats_correct_the_flagged_fraction_with_the_catalogs_validation_rates(tmp_path):
    rows = random_rows(2000, seed=11, with_nulls=False)
    validation = {"positives": 50, "true_positives": 40, "negatives": 950, "false_positives": 19}
    out = tmp_path / "catalog"
    cat.write_catalog_file(rows, str(out / "part-00000.parquet"), PROVENANCE)
    cat.write_catalog_summary(str(out), {**PROVENANCE, "rows": 2000, "merger_validation": validation})
    s = cat.merger_stats(str(out), by="morphology")
    completeness, fpr = 40 / 50, 19 / 950
    expected = min(1.0, max(0.0, (s["mergers"] / s["classified_rows"] - fpr) / (completeness - fpr)))
    assert s["completeness"] == pytest.approx(completeness) and s["false_positive_rate"] == pytest.approx(fpr)
    assert s["corrected_fraction"] == pytest.approx(expected)
    lo, hi = s["corrected_fraction_95"]
    assert lo <= expected <= hi
    for g in s["groups"]:  # each group corrected with the same rates, on its own counts
        g_expected = min(1.0, max(0.0, (g["mergers"] / g["classified_rows"] - fpr) / (completeness - fpr)))
        assert g["corrected_fraction"] == pytest.approx(g_expected)


# --------------------------------------------------------------------------- S3


def test_s3_catalog(s3_bucket, everything, tmp_path):
    uri = f"{s3_bucket}/catalog"
    rows = random_rows(3000, seed=7)
    cat.write_catalog_file(rows, f"{uri}/part-00000.parquet", PROVENANCE, row_group_size=300)
    cat.write_catalog_summary(uri, {**PROVENANCE, "rows": 3000})
    assert cat.read_provenance(uri)["rows"] == 3000
    got = cat.cone_search(uri, 0.5, 1.0, 5.0, columns="object_id")
    df = rows.to_pandas()
    assert set(got["object_id"]) == brute_cone(df, 0.5, 1.0, 5.0)
    n = cat.query(uri, where="p_merger > 0.9", columns="object_id")
    assert len(n) == int((df.p_merger > 0.9).sum())
    assert run_entry_point(cat.query_main, [uri, "--box", "350", "10", "-5", "5", "--out",
                                            f"{s3_bucket}/out/hits.parquet"]) == 0
    from galaxy_ray.io import storage
    import io
    back = pq.read_table(io.BytesIO(storage.read_bytes(f"{s3_bucket}/out/hits.parquet")))
    assert set(back["object_id"].to_pylist()) == brute_box(df, 350, 10, -5, 5)
