"""`stats` says the threshold with every digit, and how many galaxies sit within rounding of it (issue 21, item 3)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from galaxy_ray import catalog as cat
from galaxy_ray.cli import run_entry_point
from test_catalog import PROVENANCE, random_rows


def test_stats_counts_the_galaxies_within_rounding_of_the_threshold(tmp_path, capsys):
    threshold = 0.46666667  # as an older checkpoint stored it: printed as 0.4667 it would move
    p = np.array([0.46666667] * 7 + [0.46664] + [0.4667] * 2 + [0.2] * 10 + [0.9] * 5, dtype=np.float32)
    # within 5e-5 of 0.46666667: the 7 ties, 0.46664 (2.7e-5 below) and 0.4667 (3.3e-5 above); not 0.2 or 0.9
    expected_near = 7 + 1 + 2
    table = random_rows(len(p), seed=4, with_nulls=False)
    table = table.set_column(table.schema.get_field_index("p_merger"), "p_merger", pa.array(p, pa.float32()))
    table = table.set_column(table.schema.get_field_index("is_merger"), "is_merger",
                             pa.array(p >= np.float32(threshold)))
    prov = {**PROVENANCE, "merger_threshold": threshold}
    cat.write_catalog_file(table, str(tmp_path / "part-00000.parquet"), prov)
    cat.write_catalog_summary(str(tmp_path), prov)

    assert run_entry_point(cat.stats_main, [str(tmp_path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["near_threshold_rows"] == expected_near and stats["merger_threshold_printed"] == "0.46666667"
    assert run_entry_point(cat.stats_main, [str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert f"p_merger >= 0.46666667; {expected_near} within 5e-05 of it" in text
