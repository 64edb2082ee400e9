"""HATS output, LSDB, cross-matches and the _metadata summary: real hats-import, LSDB, Dask, moto S3."""

from __future__ import annotations

import io
import json
import shutil

import astropy.units as u
import dask
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table
from cdshealpix import nested

from galaxy_ray import catalog as cat
from galaxy_ray.catalog.hats import hats_parts, hats_upath
from galaxy_ray.cli import run_entry_point
from galaxy_ray.io import storage

lsdb = pytest.importorskip("lsdb")
# nested-pandas and LSDB call pandas APIs that pandas 3.1 deprecates (inplace=...): not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PROVENANCE = {"task": "classes", "output_columns": ["prob_spiral", "prob_elliptical"], "merger": "merger",
              "merger_threshold": 0.5, "checkpoint_sha256": "ab" * 32, "versions": {"galaxy_ray": "0.1.0"}}
RADIUS = 1.0  # arcsec


@pytest.fixture(autouse=True, scope="module")
def synchronous_dask():
    """LSDB's computations in this process, one task at a time (a 2-core machine)."""
    with dask.config.set(scheduler="synchronous"):
        yield


def catalog_rows(ra: np.ndarray, dec: np.ndarray, prefix: str, seed: int, nulls: bool = True) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = ra.size
    p = rng.random(n).astype(np.float32)
    ra_col = pa.array(ra, pa.float64(), mask=(np.arange(n) % 101 == 7) if nulls else None)
    return pa.table({
        "object_id": [f"{prefix}{i}" for i in range(n)], "ra": ra_col, "dec": dec,
        "prob_spiral": p, "prob_elliptical": 1 - p,
        "morphology": rng.choice(["spiral", "elliptical"], n), "p_merger": rng.random(n).astype(np.float32),
        "is_merger": rng.random(n) < 0.1, "error": pa.nulls(n, pa.string()), "redshift": rng.uniform(0, 0.3, n),
    })


def sky(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform on the sphere, a quarter crowded around (1, 1) deg (across RA = 0), a few near the poles."""
    rng = np.random.default_rng(seed)
    ra, dec = rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    k = n // 4
    ra[:k], dec[:k] = (1.0 + rng.normal(0, 1.5, k)) % 360, 1.0 + rng.normal(0, 1.5, k)
    m = n // 20
    dec[k:k + m] = rng.choice([-1, 1], m) * rng.uniform(86, 90, m)
    return ra, dec


def planted_sky(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One galaxy 0.2-0.8 arcsec from each vertex of the order-1 HEALPix cells (partition corners)."""
    lon, lat = nested.vertices(np.arange(48, dtype=np.uint64), 1)
    pts = np.round(np.stack([lon.deg.ravel() % 360, lat.deg.ravel()], 1), 6)
    pts[np.abs(pts[:, 1]) == 90, 0] = 0.0  # a pole is one vertex, whatever its RA
    pts = np.unique(pts, axis=0)
    rng = np.random.default_rng(seed)
    moved = SkyCoord(pts[:, 0], pts[:, 1], unit="deg").directional_offset_by(
        rng.uniform(0, 360, len(pts)) * u.deg, rng.uniform(0.2, 0.8, len(pts)) * u.arcsec)
    return moved.ra.deg, moved.dec.deg


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain")
    for k in range(3):
        ra, dec = sky(2500, seed=k)
        cat.write_catalog_file(catalog_rows(ra, dec, f"g{k}_", k), str(out / f"part-{k:05d}.parquet"), PROVENANCE,
                               row_group_size=200)
    ra, dec = planted_sky(9)
    cat.write_catalog_file(catalog_rows(ra, dec, "v", 9, nulls=False), str(out / "part-00003.parquet"), PROVENANCE)
    cat.write_catalog_summary(str(out), {**PROVENANCE, "rows": 7500 + ra.size})
    return out


@pytest.fixture(scope="module")
def everything(plain_dir) -> pd.DataFrame:
    return pq.ParquetDataset(str(plain_dir)).read().to_pandas()


@pytest.fixture(scope="module")
def hats_dir(plain_dir, tmp_path_factory):
    """The plain catalog converted by `galaxy-ray hats` (default 10-arcsec margin cache)."""
    out = tmp_path_factory.mktemp("hats") / "morphology"
    argv = [str(plain_dir), str(out), "--partition-rows", "600", "--row-group-rows", "100", "--highest-order", "6",
            "--workers", "1"]
    assert run_entry_point(cat.hats_main, argv) == 0
    return out


def brute_cone(df, ra, dec, radius_deg) -> set[str]:
    sub = df[df.ra.notna()]
    sep = SkyCoord(sub.ra.to_numpy(), sub.dec.to_numpy(), unit="deg").separation(SkyCoord(ra, dec, unit="deg"))
    return set(sub.object_id[sep.deg <= radius_deg])


def query_ids(catalog_dir, tmp_path, *region) -> set[str]:
    out = tmp_path / "hits.parquet"
    assert run_entry_point(cat.query_main, [str(catalog_dir), *region, "--out", str(out)]) == 0
    return set(pq.read_table(out)["object_id"].to_pylist())


# --------------------------------------------------------------------------- the HATS layout


def test_hats_layout_properties_and_provenance(hats_dir, everything):
    props = (hats_dir / "collection.properties").read_text()
    assert "default_margin=morphology_10arcs" in props
    main, margin = hats_dir / "morphology", hats_dir / "morphology_10arcs"
    for name in ("hats.properties", "partition_info.csv", "skymap.fits", "dataset/_metadata",
                 "dataset/_common_metadata"):
        assert (main / name).exists(), name
    parts = sorted(main.glob("dataset/Norder=*/Dir=*/Npix=*.parquet"))
    assert len(parts) > 12 and len({p.parts[-3] for p in parts}) >= 2  # partitions at several orders
    text = (main / "hats.properties").read_text()
    assert "galaxy_ray_task=classes" in text and "hats_max_rows=600" in text
    missing = int(everything.ra.isna().sum())
    assert f"galaxy_ray_rows_without_position={missing}" in text
    assert "hats_margin_threshold=10.0" in (margin / "hats.properties").read_text()
    common = pq.read_schema(main / "dataset/_common_metadata")
    assert json.loads(common.metadata[b"galaxy_ray"])["checkpoint_sha256"] == "ab" * 32
    assert json.loads(pq.read_schema(parts[0]).metadata[b"galaxy_ray"])["task"] == "classes"
    assert pq.ParquetFile(parts[0]).metadata.row_group(0).num_rows <= 100
    opened = lsdb.open_catalog(hats_dir)
    assert opened.margin is not None
    assert len(opened.compute()) == len(everything) - missing


@pytest.mark.parametrize("ra, dec, radius", [(0.5, 1.0, 1.5), (150.0, 20.0, 8.0), (42.0, 88.5, 2.0)])
def test_cone_lsdb_and_query_agree_with_brute_force(hats_dir, everything, tmp_path, ra, dec, radius):
    want = brute_cone(everything, ra, dec, radius)
    assert want
    got_lsdb = lsdb.open_catalog(hats_dir).cone_search(ra, dec, radius * 3600).compute()
    assert set(got_lsdb.object_id) == want and len(got_lsdb) == len(want)
    assert query_ids(hats_dir, tmp_path, "--cone", str(ra), str(dec), str(radius)) == want
    opened = cat.open_catalog(str(hats_dir))
    assert opened.layout == "hats"
    cat.cone_search(opened, ra, dec, radius, columns="object_id")
    assert 1 <= opened.last_scan.files_opened <= len(opened.files) // 3  # only the partitions the cover meets


def test_box_across_ra0(hats_dir, everything, tmp_path):
    ra, dec = everything.ra, everything.dec
    want = set(everything.object_id[((ra >= 359.0) | (ra <= 3.0)) & (dec >= -1.0) & (dec <= 2.5)])
    assert len(want) > 50
    got_lsdb = lsdb.open_catalog(hats_dir).box_search(ra=(359.0, 3.0), dec=(-1.0, 2.5)).compute()
    assert set(got_lsdb.object_id) == want
    assert query_ids(hats_dir, tmp_path, "--box", "359", "3", "-1", "2.5") == want


def test_stats_same_on_both_layouts(plain_dir, hats_dir):
    a = cat.merger_stats(str(plain_dir), cone=(0.5, 1.0, 3.0), by="morphology")
    b = cat.merger_stats(str(hats_dir), cone=(0.5, 1.0, 3.0), by="morphology")
    assert {k: a[k] for k in ("rows", "mergers", "morphology", "groups")} == \
        {k: b[k] for k in ("rows", "mergers", "morphology", "groups")}


def test_hats_errors_are_one_line(plain_dir, hats_dir, capsys):
    assert run_entry_point(cat.hats_main, [str(plain_dir), str(hats_dir)]) == 2
    assert "already holds a HATS collection" in capsys.readouterr().err
    assert run_entry_point(cat.hats_main, [str(hats_dir), str(hats_dir.parent / "again")]) == 2
    err = capsys.readouterr().err
    assert "already a HATS catalog" in err and "\n" not in err.strip()


# --------------------------------------------------------------------------- the _metadata summary


def test_metadata_summary_reads_one_footer(plain_dir, everything, tmp_path):
    copy = tmp_path / "plain"
    shutil.copytree(plain_dir, copy)
    far = SkyCoord(200, -40, unit="deg").directional_offset_by(np.arange(50) * u.deg, 0.5 * u.deg)
    cat.write_catalog_file(catalog_rows(far.ra.deg, far.dec.deg, "far", 4), str(copy / "part-00004.parquet"),
                           PROVENANCE)
    before = cat.open_catalog(str(copy))
    want = set(cat.cone_search(before, 0.5, 1.0, 1.5, columns="object_id")["object_id"])
    assert before.summary is None and before.opened.files_opened == 1
    cat.write_parquet_metadata(str(copy))
    after = cat.open_catalog(str(copy))
    assert after.summary is not None and after.opened.files_opened == 0
    assert set(cat.cone_search(after, 0.5, 1.0, 1.5, columns="object_id")["object_id"]) == want
    assert after.last_scan.files_opened < before.last_scan.files_opened  # the far file is never opened
    assert after.last_scan.bytes_read < before.last_scan.bytes_read  # no footer read per file
    n_far = int(pq.read_table(copy / "part-00004.parquet")["is_merger"].to_numpy().sum())
    assert len(cat.query(after, where="is_merger", columns="object_id")) == int(everything.is_merger.sum()) + n_far
    # a file published after the summary: the stale summary is not used
    ra, dec = np.array([0.5]), np.array([1.0])
    cat.write_catalog_file(catalog_rows(ra, dec, "late", 3, nulls=False), str(copy / "part-00005.parquet"), PROVENANCE)
    late = cat.open_catalog(str(copy))
    assert late.summary is None
    assert "late0" in set(cat.cone_search(late, 0.5, 1.0, 1.5, columns="object_id")["object_id"])


# --------------------------------------------------------------------------- cross-match


def counterparts(everything: pd.DataFrame, seed: int) -> pd.DataFrame:
    """An 'other' catalog: one object per chosen galaxy, offset by a known separation (0.05-2 arcsec)."""
    rng = np.random.default_rng(seed)
    placed = everything[everything.ra.notna()]
    chosen = pd.concat([placed[placed.object_id.str.startswith("v")],
                        placed[~placed.object_id.str.startswith("v")].sample(300, random_state=seed)])
    sep = rng.uniform(0.05, 2.0, len(chosen))
    sep[:6] = [0.995, 1.005, 0.999, 1.001, 0.5, 1.5]  # either side of the radius
    moved = SkyCoord(chosen.ra.to_numpy(), chosen.dec.to_numpy(), unit="deg").directional_offset_by(
        rng.uniform(0, 360, len(chosen)) * u.deg, sep * u.arcsec)
    return pd.DataFrame({"oid": [f"o{i}" for i in range(len(chosen))], "RAJ2000": moved.ra.deg,
                         "DEJ2000": moved.dec.deg, "z_spec": rng.uniform(0, 0.3, len(chosen))})


def true_pairs(everything: pd.DataFrame, other: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Every (galaxy, object) pair within RADIUS, with its separation (astropy), by brute force."""
    gal = everything[everything.ra.notna()]
    a = SkyCoord(gal.ra.to_numpy(), gal.dec.to_numpy(), unit="deg")
    b = SkyCoord(other.RAJ2000.to_numpy(), other.DEJ2000.to_numpy(), unit="deg")
    i, j, sep, _ = b.search_around_sky(a, RADIUS * 1.5 * u.arcsec)
    keep = sep.arcsec <= RADIUS
    assert len(set(i[keep])) == keep.sum()  # one object at most per galaxy: the nearest is the pair
    return {(gal.object_id.iloc[p], other.oid.iloc[q]): s for p, q, s in zip(i[keep], j[keep], sep.arcsec[keep])}


def check_pairs(got: pd.DataFrame, want: dict) -> None:
    found = {(g, o): s for g, o, s in zip(got.object_id, got.oid, got.separation_arcsec)}
    assert set(found) == set(want)  # every true pair, none beyond the radius
    assert max(abs(found[k] - want[k]) for k in want) < 1e-3  # separations to 1 milliarcsec


def straddling(hats_dir, everything, other, pairs) -> int:
    """How many pairs have their two positions in different HATS partitions."""
    parts = hats_parts(str(hats_dir))
    pos = everything.set_index("object_id")
    opos = other.set_index("oid")
    g = [k[0] for k in pairs]
    o = [k[1] for k in pairs]
    hp_g = cat.healpix29(pos.loc[g, "ra"].to_numpy(), pos.loc[g, "dec"].to_numpy()).to_numpy()
    hp_o = cat.healpix29(opos.loc[o, "RAJ2000"].to_numpy(), opos.loc[o, "DEJ2000"].to_numpy()).to_numpy()
    lo = parts.ranges[0]
    return int((np.searchsorted(lo, hp_g, "right") != np.searchsorted(lo, hp_o, "right")).sum())


@pytest.fixture(scope="module")
def other_table(everything):
    return counterparts(everything, seed=5)


def test_crossmatch_parquet_finds_every_pair(hats_dir, everything, other_table, tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.Table.from_pandas(other_table, preserve_index=False), path)
    want = true_pairs(everything, other_table)
    assert len(want) > 100 and straddling(hats_dir, everything, other_table, want) >= 5
    got = cat.crossmatch(str(hats_dir), str(path), "1arcsec", other_columns="oid,z_spec").to_pandas()
    check_pairs(got, want)
    assert {"morphology", "p_merger", "z_spec", "RAJ2000"} <= set(got.columns)


def test_crossmatch_plain_left_and_hats_other(plain_dir, everything, other_table, tmp_path):
    other_hats = tmp_path / "other_hats"
    lsdb.from_dataframe(other_table, ra_column="RAJ2000", dec_column="DEJ2000", margin_threshold=10.0) \
        .write_catalog(other_hats, catalog_name="other", as_collection=True, progress_bar=False)
    got = cat.crossmatch(str(plain_dir), str(other_hats), 1.0).to_pandas()
    check_pairs(got, true_pairs(everything, other_table))


def test_crossmatch_cli_fits_other(hats_dir, everything, other_table, tmp_path, capsys):
    path = tmp_path / "other.fits"
    Table.from_pandas(other_table).write(path)
    out = tmp_path / "pairs.csv"
    argv = [str(hats_dir), str(path), "--radius", "1arcsec", "--columns", "object_id,p_merger", "--out", str(out)]
    assert run_entry_point(cat.crossmatch_main, argv) == 0
    got = pd.read_csv(out)
    check_pairs(got, true_pairs(everything, other_table))
    assert {"object_id", "p_merger", "oid", "z_spec", "separation_arcsec"} <= set(got.columns)
    assert run_entry_point(cat.crossmatch_main, [str(hats_dir), str(path), "--radius", "one"]) == 2
    assert "--radius 'one'" in capsys.readouterr().err
    assert cat.parse_radius("0.5arcmin") == pytest.approx(30.0) and cat.parse_radius("2") == 2.0


# --------------------------------------------------------------------------- S3


@pytest.mark.slow
def test_s3_summary_hats_and_crossmatch(s3_bucket, other_table, everything, tmp_path):
    plain = f"{s3_bucket}/plain"
    ra, dec = sky(1500, seed=21)
    table = catalog_rows(ra, dec, "s", 21)
    cat.write_catalog_file(table, f"{plain}/part-00000.parquet", PROVENANCE, row_group_size=100)
    cat.write_catalog_summary(plain, {**PROVENANCE, "rows": 1500})
    cat.write_parquet_metadata(plain)
    df = table.to_pandas()
    want = brute_cone(df, 0.5, 1.0, 2.0)
    opened = cat.open_catalog(plain)
    assert opened.summary is not None
    assert set(cat.cone_search(opened, 0.5, 1.0, 2.0, columns="object_id")["object_id"]) == want
    out = f"{s3_bucket}/hats/survey"
    got = cat.to_hats(plain, out, margin_arcsec=60.0, partition_rows=300, highest_order=5)
    assert got["rows"] == int(df.ra.notna().sum()) and got["partitions"] > 1
    assert storage.exists(f"{out}/survey/dataset/_metadata")
    assert set(cat.cone_search(out, 0.5, 1.0, 2.0, columns="object_id")["object_id"]) == want
    assert set(lsdb.open_catalog(hats_upath(out)).cone_search(0.5, 1.0, 7200).compute().object_id) == want
    other = tmp_path / "other.csv"
    mine = df[df.ra.notna()].head(50)
    moved = SkyCoord(mine.ra.to_numpy(), mine.dec.to_numpy(), unit="deg").directional_offset_by(0 * u.deg,
                                                                                                0.4 * u.arcsec)
    pd.DataFrame({"name": mine.object_id.to_numpy(), "ra": moved.ra.deg, "dec": moved.dec.deg}).to_csv(other,
                                                                                                      index=False)
    storage.write_bytes_atomic(f"{s3_bucket}/other.csv", other.read_bytes())
    pairs = cat.crossmatch(out, f"{s3_bucket}/other.csv", 1.0).to_pandas()
    assert len(pairs) == 50 and (pairs.object_id == pairs.name).all()
    assert np.allclose(pairs.separation_arcsec, 0.4, atol=1e-3)


def test_plain_query_stays_light(plain_dir):
    """`galaxy-ray query` on the plain layout imports neither LSDB, Dask, hats nor torch."""
    import subprocess
    import sys

    code = ("import sys; from galaxy_ray.cli import main; "
            f"rc = main(['query', {str(plain_dir)!r}, '--cone', '0.5', '1', '1', '--max-print', '0']); "
            "heavy = [m for m in ('lsdb', 'dask', 'hats', 'hats_import', 'torch', 'ray') if m in sys.modules]; "
            "print('HEAVY', heavy); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
