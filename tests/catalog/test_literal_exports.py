"""Ids reach every export as written: mathtext, line breaks, quotes, commas, non-ASCII (issue 21, item 12)."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from galaxy_ray import catalog as cat
from galaxy_ray.cli import run_entry_point
from test_catalog import PROVENANCE, random_rows

ODD = ["$\\x$", "two\nlines", 'say "hi", twice', "é-ünï 銀河", "tab\there", "bell\x07", "\r\nwindows"]


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("odd_ids")
    rows = random_rows(len(ODD) + 3, seed=3, with_nulls=False)
    ids = ODD + ["1001", "1002", "1003"]
    rows = rows.set_column(0, "object_id", pa.array(ids))
    cat.write_catalog_file(rows, str(out / "part-00000.parquet"), PROVENANCE)
    cat.write_catalog_summary(str(out), PROVENANCE)
    return out


def _ids(values) -> list[str]:
    return sorted(str(v) for v in values)


WANT = sorted(ODD + ["1001", "1002", "1003"])


@pytest.mark.parametrize("name", ["ids.csv", "ids.parquet", "ids.fits", "ids.vot"])
def test_query_out_keeps_every_id(catalog_dir, tmp_path, name):
    out = tmp_path / name
    assert run_entry_point(cat.query_main, [str(catalog_dir), "--columns", "object_id,p_merger", "--out", str(out)]) == 0
    if name.endswith(".csv"):
        got = pd.read_csv(out, dtype={"object_id": str}, keep_default_na=False).object_id
    elif name.endswith(".parquet"):
        got = pq.read_table(out)["object_id"].to_pylist()
    else:
        got = Table.read(out)["object_id"]
    assert _ids(got) == WANT


def test_kaggle_submission_quotes_ids_that_need_it(catalog_dir, tmp_path):
    out = tmp_path / "submission.csv"
    assert run_entry_point(cat.query_main, [str(catalog_dir), "--kaggle-submission", str(out)]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))  # the standard library's RFC 4180 reader
    assert len(rows) == len(WANT) + 1 and all(len(r) == 38 for r in rows)
    assert sorted(r[0] for r in rows[1:]) == WANT


def test_kaggle_submission_of_plain_ids_stays_unquoted(tmp_path):
    src = tmp_path / "plain"
    rows = random_rows(5, seed=8, with_nulls=False).set_column(0, "object_id", pa.array(["100008", "100023", "100053",
                                                                                         "100078", "100090"]))
    cat.write_catalog_file(rows, str(src / "part-00000.parquet"), PROVENANCE)
    cat.write_catalog_summary(str(src), PROVENANCE)
    out = tmp_path / "submission.csv"
    assert run_entry_point(cat.query_main, [str(src), "--kaggle-submission", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert next(csv.reader(lines[:1]))[:3] == ["GalaxyID", "Class1.1", "Class1.2"]  # pyarrow quotes a header always
    assert sorted(line.split(",", 1)[0] for line in lines[1:]) == ["100008", "100023", "100053", "100078", "100090"]
    assert float(lines[1].split(",")[1]) == pytest.approx(
        float(np.float32(rows.to_pandas().set_index("object_id").loc[lines[1].split(",")[0], "smooth_or_features_smooth"])))
