"""`galaxy-ray query --sort -p_merger`: the form galaxy-ray's own message suggests works (issue 21, item 13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from galaxy_ray import catalog as cat
from galaxy_ray.cli import main
from test_catalog import PROVENANCE, random_rows


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sort_catalog")
    cat.write_catalog_file(random_rows(500, seed=9), str(out / "part-00000.parquet"), PROVENANCE)
    cat.write_catalog_summary(str(out), PROVENANCE)
    return out


@pytest.fixture(scope="module")
def everything(catalog_dir) -> pd.DataFrame:
    return pq.read_table(catalog_dir / "part-00000.parquet").to_pandas()


def test_sort_descending_with_a_space_through_the_console_script(catalog_dir, everything, tmp_path):
    out = tmp_path / "top.csv"
    script = Path(sys.executable).with_name("galaxy-ray")
    done = subprocess.run([str(script), "query", str(catalog_dir), "--sort", "-p_merger", "--limit", "7",
                           "--columns", "object_id,p_merger", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    want = everything.sort_values("p_merger", ascending=False, kind="stable").object_id.head(7).tolist()
    assert pd.read_csv(out).object_id.tolist() == want


def test_several_keys_and_the_space_form_equal_the_equals_form(catalog_dir, tmp_path):
    spaced, joined = tmp_path / "spaced.parquet", tmp_path / "joined.parquet"
    assert main(["query", str(catalog_dir), "--sort", "-morphology, ra", "--out", str(spaced)]) == 0
    assert main(["query", str(catalog_dir), "--sort=-morphology, ra", "--out", str(joined)]) == 0
    got = pq.read_table(spaced).to_pandas()
    assert got.equals(pq.read_table(joined).to_pandas())
    assert got.morphology.tolist() == sorted(got.morphology.tolist(), reverse=True)
    first = got[got.morphology == got.morphology.iloc[0]]  # within a morphology: ra ascending, no position last
    assert first.ra.dropna().is_monotonic_increasing


def test_a_dash_value_naming_no_column_is_one_line(catalog_dir, capsys):
    assert main(["query", str(catalog_dir), "--sort", "-nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("galaxy-ray: error: --sort 'nope': unknown column")  # closest names, not all (issue 34)
    assert "\n" not in err


def test_an_option_after_sort_is_still_an_option(catalog_dir, capsys):
    # `--sort -v` keeps -v as --verbose: argparse then says --sort lacks its value (its own usage error, exit 2)
    with pytest.raises(SystemExit) as stop:
        main(["query", str(catalog_dir), "--sort", "-v"])
    assert stop.value.code == 2
    assert "--sort: expected one argument" in capsys.readouterr().err
