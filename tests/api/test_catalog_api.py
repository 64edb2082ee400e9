"""open_catalog, cone, box and merger_stats of galaxy_ray.api on a real catalog written to disk."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from galaxy_ray import api
from galaxy_ray import catalog as cat
from galaxy_ray.errors import GalaxyRayError
from test_catalog import PROVENANCE, random_rows


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("api_catalog")
    table = random_rows(3000, seed=11)
    cat.write_catalog_file(table.slice(0, 1500), str(out / "part-00000.parquet"), PROVENANCE)
    cat.write_catalog_file(table.slice(1500), str(out / "part-00001.parquet"), PROVENANCE)
    cat.write_catalog_summary(str(out), PROVENANCE)
    return str(out), table.to_pandas()


def test_open_catalog_as_pandas_astropy_and_arrow(catalog_dir):
    uri, truth = catalog_dir
    frame = api.open_catalog(uri)
    assert len(frame) == 3000 and set(frame["object_id"]) == set(truth["object_id"])
    table = api.open_catalog(uri, as_="astropy", columns=["object_id", "ra", "dec"])
    assert table.colnames == ["object_id", "ra", "dec"] and str(table["ra"].unit) == "deg"
    mergers = api.open_catalog(uri, as_="arrow", where="is_merger")
    assert mergers.num_rows == int(truth["is_merger"].sum())


@pytest.mark.slow
def test_open_catalog_as_lsdb_keeps_the_positioned_rows(catalog_dir):
    uri, truth = catalog_dir
    lazy = api.open_catalog(uri, as_="lsdb", columns=["object_id", "ra", "dec", "p_merger"])
    assert len(lazy.compute()) == int(truth["ra"].notna().sum())


def test_open_catalog_refuses_what_it_cannot_do(catalog_dir, tmp_path):
    uri, _ = catalog_dir
    with pytest.raises(GalaxyRayError, match="as_='votable': one of pandas, astropy, arrow, lsdb"):
        api.open_catalog(uri, as_="votable")
    with pytest.raises(GalaxyRayError, match="no such catalog"):
        api.open_catalog(str(tmp_path / "missing"))
    with pytest.raises(GalaxyRayError, match="not for as_='lsdb'"):
        api.open_catalog(uri, as_="lsdb", where="is_merger")


def test_cone_is_exactly_the_rows_within_the_radius(catalog_dir):
    uri, truth = catalog_dir
    rows = api.cone(uri, 10.0, 20.0, 30.0, columns=["object_id", "ra", "dec"])
    pos = truth[truth["ra"].notna()]
    sep = SkyCoord(pos["ra"].to_numpy(), pos["dec"].to_numpy(), unit="deg").separation(
        SkyCoord(10.0, 20.0, unit="deg")).deg
    expected = set(pos["object_id"][sep <= 30.0])
    assert len(expected) > 50 and set(rows["object_id"]) == expected
    top = api.cone(uri, 10.0, 20.0, 30.0, sort="-p_merger", limit=3, output="arrow")
    p = top.column("p_merger").to_numpy()
    assert top.num_rows == 3 and np.all(np.diff(p) <= 0)


def test_box_crossing_ra_zero(catalog_dir):
    uri, truth = catalog_dir
    rows = api.box(uri, 350.0, 10.0, -20.0, 20.0)
    ra, dec = truth["ra"], truth["dec"]
    inside = ((ra >= 350) | (ra <= 10)) & (dec >= -20) & (dec <= 20)
    assert len(rows) > 10 and set(rows["object_id"]) == set(truth["object_id"][inside])
    with pytest.raises(GalaxyRayError):
        api.box(uri, 10.0, 20.0, 40.0, 30.0)  # dec_min > dec_max


def test_merger_stats_counts_and_groups(catalog_dir):
    uri, truth = catalog_dir
    ok = truth["error"].isna()
    stats = api.merger_stats(uri, by="morphology")
    assert stats["rows"] == 3000 and stats["classified_rows"] == int(ok.sum())
    assert stats["mergers"] == int(truth["is_merger"][ok].sum())
    assert {g["morphology"] if "morphology" in g else g.get("group") for g in stats["groups"]} >= {"spiral"}
    cone_stats = api.merger_stats(uri, cone=(10.0, 20.0, 30.0))
    assert 0 < cone_stats["rows"] < 3000


@pytest.mark.slow
def test_a_hats_collection_opens_in_every_form(catalog_dir, tmp_path):
    uri, truth = catalog_dir
    hats = str(tmp_path / "hats")
    cat.to_hats(uri, hats, workers=1)
    positioned = int(truth["ra"].notna().sum())  # HATS leaves out rows without RA/Dec
    assert len(api.open_catalog(hats)) == positioned
    assert len(api.open_catalog(hats, as_="lsdb", columns=["object_id", "ra", "dec"]).compute()) == positioned
    plain = set(api.cone(uri, 10.0, 20.0, 30.0)["object_id"])
    assert set(api.cone(hats, 10.0, 20.0, 30.0)["object_id"]) == plain and plain
