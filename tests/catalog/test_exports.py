"""`query --out x.fits / x.vot` keep units, UCDs and the catalog's provenance (issue 21, item 15)."""

from __future__ import annotations

import gzip
import json

import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.io.votable import parse
from astropy.io.votable.ucd import check_ucd
from astropy.table import Table

from galaxy_ray import catalog as cat
from galaxy_ray.cli import run_entry_point
from test_catalog import PROVENANCE, random_rows

SHA = "3f" * 32
VALIDATION = {"threshold": 0.46666667, "rule": "f1", "precision": 0.75, "recall": 0.6, "f1": 0.667,
              "precision_interval": [0.55, 0.88], "recall_interval": [0.45, 0.73], "false_positive_rate": 0.021,
              "positives": 50, "negatives": 950, "true_positives": 30, "false_positives": 20,
              "truth": "Class8.6 vote fraction > 0.4", "vote_cut": 0.4, "calibration": "isotonic"}
FULL = {**PROVENANCE, "arch": "resnet18", "checkpoint": "/home/u/runs/g10/model.pt", "checkpoint_sha256": SHA,
        "checkpoint_portable": "../runs/g10/model.pt",
        "source": "s3://survey/shards", "source_format": "shards", "tta": False, "merger_threshold": 0.46666667,
        "merger_threshold_source": "validation (F1-optimal)", "merger_validation": VALIDATION}


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export_catalog")
    cat.write_catalog_file(random_rows(3000, seed=5), str(out / "part-00000.parquet"), FULL)
    cat.write_catalog_summary(str(out), FULL)
    return out


def _query(catalog_dir, out) -> None:
    argv = [str(catalog_dir), "--cone", "30", "10", "25", "--where", "p_merger > 0.2", "--out", str(out)]
    assert run_entry_point(cat.query_main, argv) == 0


def _column_number(header, name: str) -> int:
    return next(i for i in range(1, header["TFIELDS"] + 1) if header[f"TTYPE{i}"] == name)


@pytest.mark.parametrize("name", ["hits.fits", "hits.fits.gz"])
def test_fits_has_units_ucds_and_the_provenance(catalog_dir, tmp_path, name):
    out = tmp_path / name
    _query(catalog_dir, out)
    if name.endswith(".gz"):
        assert out.read_bytes()[:2] == b"\x1f\x8b"  # gzip magic
        (tmp_path / "plain.fits").write_bytes(gzip.decompress(out.read_bytes()))
        out = tmp_path / "plain.fits"
    header = fits.getheader(out, "CATALOG")
    # what a FITS reader that knows no astropy sees: TUNITn and TUCDn next to TTYPEn
    for column, unit, ucd in (("ra", "deg", "pos.eq.ra;meta.main"), ("dec", "deg", "pos.eq.dec;meta.main"),
                              ("object_id", None, "meta.id;meta.main"), ("p_merger", None, "stat.probability;src.morph")):
        n = _column_number(header, column)
        assert header.get(f"TUNIT{n}") == unit and header[f"TUCD{n}"] == ucd, column
    assert "right ascension" in header[f"TCOMM{_column_number(header, 'ra')}"]
    # the provenance, keyword by keyword, as the test wrote it
    assert header["GRCKSHA"] == SHA and header["GRTASK"] == "gz2" and header["GRARCH"] == "resnet18"
    assert header["GRCKPT"] == "/home/u/runs/g10/model.pt" and header["GRCKPTP"] == "../runs/g10/model.pt"
    assert header["GRSOURCE"] == "s3://survey/shards"
    assert header["MRGTHR"] == 0.46666667 and header["MRGTHSRC"] == "validation (F1-optimal)"
    assert (header["MRGPREC"], header["MRGPRLO"], header["MRGPRHI"]) == (0.75, 0.55, 0.88)
    assert (header["MRGRECAL"], header["MRGRCLO"], header["MRGRCHI"]) == (0.6, 0.45, 0.73)
    assert (header["MRGVPOS"], header["MRGVTP"], header["MRGVNEG"], header["MRGVFP"]) == (50, 30, 950, 20)
    assert header["MRGFPR"] == 0.021 and header["MRGTRUTH"] == "Class8.6 vote fraction > 0.4"
    assert header["GRQWHERE"] == "p_merger > 0.2" and header["GRQCONE"] == "[30.0, 10.0, 25.0]"
    assert json.loads(header["GRPROV"]) == FULL  # the whole provenance, over CONTINUE cards
    # astropy's Table.read gives back the units, UCDs and descriptions, and the keywords as meta
    t = Table.read(out, hdu="CATALOG")
    assert str(t["ra"].unit) == "deg" and str(t["dec"].unit) == "deg" and t["p_merger"].unit is None
    assert t["ra"].meta["ucd"] == "pos.eq.ra;meta.main" and t["object_id"].meta["ucd"] == "meta.id;meta.main"
    assert t["odd_feature_merger"].description.startswith("GZ2 cumulative vote fraction, Class8.6")
    assert t.meta["GRCKSHA"] == SHA and t.meta["MRGTHR"] == 0.46666667
    assert len(t) > 0 and min(t["p_merger"]) > 0.2


def test_votable_fields_coordinates_and_provenance(catalog_dir, tmp_path):
    out = tmp_path / "hits.vot"
    _query(catalog_dir, out)
    vot = parse(str(out))
    table = vot.get_first_table()
    fields = {f.name: f for f in table.fields}
    # a VO reader finds the position by UCD alone, in degrees, in an ICRS frame
    assert [f.name for f in table.fields if f.ucd == "pos.eq.ra;meta.main"] == ["ra"]
    assert [f.name for f in table.fields if f.ucd == "pos.eq.dec;meta.main"] == ["dec"]
    assert str(fields["ra"].unit) == "deg" and str(fields["dec"].unit) == "deg"
    systems = {c.ID: c.system for c in vot.resources[0].coordinate_systems}
    assert systems[fields["ra"].ref] == "ICRS" and systems[fields["dec"].ref] == "ICRS"
    assert fields["object_id"].ucd == "meta.id;meta.main" and fields["is_merger"].ucd == "meta.code.class;src.morph"
    for f in table.fields:  # every UCD written is built of words of the UCD1+ vocabulary
        if f.ucd:
            assert check_ucd(f.ucd, check_controlled_vocabulary=True), f.ucd
    params = {p.name: p.value for p in table.params}
    assert params["merger_threshold"] == pytest.approx(0.46666667, abs=0)
    assert params["merger_validation_true_positives"] == 30 and params["merger_validation_negatives"] == 950
    assert params["merger_validation_precision_interval_low"] == 0.55
    infos = {i.name: i.value for i in table.infos}
    assert infos["checkpoint_sha256"] == SHA and infos["task"] == "gz2"
    assert json.loads(infos["galaxy_ray_provenance"]) == FULL
    t = Table.read(out)
    assert str(t["ra"].unit) == "deg" and t["dec"].meta["ucd"] == "pos.eq.dec;meta.main"


def test_text_a_fits_header_cannot_hold_is_escaped_not_lost(tmp_path):
    prov = {**FULL, "source": "/data/survey é\nnight 2"}
    out = tmp_path / "catalog"
    cat.write_catalog_file(random_rows(200, seed=2, with_nulls=False), str(out / "part-00000.parquet"), prov)
    cat.write_catalog_summary(str(out), prov)
    assert run_entry_point(cat.query_main, [str(out), "--out", str(tmp_path / "all.fits")]) == 0
    header = fits.getheader(tmp_path / "all.fits", "CATALOG")
    assert header["GRSOURCE"] == "/data/survey \\xe9\\nnight 2"  # printable ASCII, as FITS requires
    assert json.loads(header["GRPROV"])["source"] == "/data/survey é\nnight 2"


def test_parquet_export_carries_the_provenance(catalog_dir, tmp_path):
    out = tmp_path / "hits.parquet"
    _query(catalog_dir, out)
    meta = pq.read_schema(out).metadata
    assert json.loads(meta[b"galaxy_ray"]) == FULL
