"""An astronomer's first command: astropy reads a catalog part, and the whole catalog in one line (issue 21, 14)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.table import MaskedColumn, Table

from galaxy_ray.catalog import write_catalog_file, write_catalog_summary
from galaxy_ray.schema import CatalogColumns as C

OUTPUTS = ["p_elliptical", "p_spiral"]


def _rows(ids: list[str], errors: list[str | None]) -> pa.Table:
    """Catalog rows as the writer gets them: an error row has null predictions, morphology and flag."""
    ok = [e is None for e in errors]
    n = len(ids)
    prob = [0.25 if good else None for good in ok]
    return pa.table({
        C.OBJECT_ID: pa.array(ids), C.RA: pa.array(np.linspace(150.0, 151.0, n)),
        C.DEC: pa.array(np.linspace(2.0, 2.5, n)), "p_elliptical": pa.array(prob, pa.float32()),
        "p_spiral": pa.array(prob, pa.float32()),
        C.MORPHOLOGY: pa.array(["spiral" if good else None for good in ok]),
        C.P_MERGER: pa.array(prob, pa.float32()), C.IS_MERGER: pa.array([False if good else None for good in ok]),
        C.ERROR: pa.array(errors, pa.string()),
    })


def _catalog(tmp_path) -> str:
    out = tmp_path / "catalog"
    out.mkdir()
    prov = {"output_columns": OUTPUTS}
    write_catalog_file(_rows(["a", "b", "c"], [None, None, None]), str(out / "part-00000.parquet"), prov)
    write_catalog_file(_rows(["d", "e"], [None, "e.fits: not a FITS file"]), str(out / "part-00001.parquet"), prov)
    write_catalog_summary(str(out), prov)
    return str(out)


def test_astropy_reads_a_part_whose_error_column_is_all_null(tmp_path):
    catalog = _catalog(tmp_path)
    part = f"{catalog}/part-00000.parquet"
    assert pq.read_table(part)[C.ERROR].null_count == 3  # every galaxy classified: the column is all null
    t = Table.read(part)
    assert len(t) == 3 and sorted(t[C.OBJECT_ID]) == ["a", "b", "c"]
    assert list(t[C.ERROR]) == ["None"] * 3  # astropy's Parquet reader has no nulls: a null string reads as "None"
    assert np.allclose(t[C.P_MERGER], 0.25)


def test_astropy_reads_a_part_with_an_error_row(tmp_path):
    t = Table.read(f"{_catalog(tmp_path)}/part-00001.parquet")
    bad = t[t[C.OBJECT_ID] == "e"][0]
    assert bad[C.ERROR] == "e.fits: not a FITS file" and np.isnan(bad[C.P_MERGER]) and bad[C.MORPHOLOGY] == "None"


def test_the_readme_one_liner_reads_the_whole_catalog_masked_where_null(tmp_path):
    # part by part, astropy's reader cannot stack them: a part with an error row has an object is_merger column
    t = Table.from_pandas(pd.read_parquet(_catalog(tmp_path), dtype_backend="numpy_nullable"))
    assert len(t) == 5 and sorted(t[C.OBJECT_ID]) == ["a", "b", "c", "d", "e"]
    assert isinstance(t[C.ERROR], MaskedColumn) and list(t[C.OBJECT_ID][~t[C.ERROR].mask]) == ["e"]
    for name in (C.P_MERGER, C.IS_MERGER, C.MORPHOLOGY):
        assert list(t[C.OBJECT_ID][t[name].mask]) == ["e"]
    assert t[C.IS_MERGER].dtype == bool and t[C.RA].dtype == np.float64
