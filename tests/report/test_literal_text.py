"""Text that is data reaches every figure literally: ids and labels with mathtext in them (issue 21, item 12)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from matplotlib.figure import Figure

from galaxy_ray import catalog, report
from galaxy_ray.cli import run_entry_point
from galaxy_ray.report.page import literal_text
from galaxy_ray.schema import GZ2_ANSWER_COLUMNS
from builders import noise_png

IDS = ["$\\x$", "a$b$c", "two\nlines", "plain-1"]
LABELS = ["$\\alpha$ merger", "$\\alpha$ merger", "Round_Smooth %", "Round_Smooth %"]
PNG = b"\x89PNG\r\n\x1a\n"


def test_source_report_with_mathtext_ids_and_labels(tmp_path, capsys):
    src = tmp_path / "survey"
    (src / "images").mkdir(parents=True)
    for k in range(len(IDS)):
        (src / "images" / f"{k}.png").write_bytes(noise_png(k))
    pd.DataFrame({"object_id": IDS, "ra": [10.0, 11.0, 12.0, 13.0], "dec": [1.0, 2.0, 3.0, 4.0],
                  "path": [f"images/{k}.png" for k in range(len(IDS))], "label": LABELS}
                 ).to_parquet(src / "manifest.parquet")
    out = tmp_path / "report"
    assert run_entry_point(report.main, [str(src), str(out), "--top", "2"]) == 0, capsys.readouterr().err
    for name in ("class_counts.png", "class_examples.png"):  # the figures that show labels and ids
        assert (out / name).read_bytes()[:8] == PNG, name


@pytest.mark.slow
def test_catalog_report_with_a_mathtext_morphology(tmp_path):
    n = 400
    rng = np.random.default_rng(4)
    cols = {"object_id": [f"$\\x{i}$" for i in range(n)], "ra": rng.uniform(0, 360, n),
            "dec": rng.uniform(-60, 60, n)}
    for name in GZ2_ANSWER_COLUMNS:
        cols[name] = rng.random(n).astype(np.float32)
    p = rng.random(n).astype(np.float32)
    cols.update(morphology=rng.choice(["$\\x$", "spiral_$1"], n), p_merger=p, is_merger=p > 0.8, error=[None] * n)
    prov = {"task": "gz2", "output_columns": list(GZ2_ANSWER_COLUMNS)}
    cat_dir = tmp_path / "catalog"
    catalog.write_catalog_file(pa.table(cols), str(cat_dir / "part-00000.parquet"), prov)
    catalog.write_catalog_summary(str(cat_dir), prov)
    out = tmp_path / "report"
    assert run_entry_point(report.main, [str(cat_dir), str(out), "--order", "2"]) == 0
    assert (out / "morphology.png").read_bytes()[:8] == PNG


def test_text_in_report_figures_is_never_mathtext_or_tex():
    @literal_text
    def draw():
        fig = Figure()
        ax = fig.subplots()
        ax.barh(["$\\x$"], [1])
        title = ax.set_title("$x^2$")
        fig.savefig(io.BytesIO(), format="png")  # tick labels are made while saving
        return title, ax.get_yticklabels()

    title, ticks = draw()
    assert title.get_parse_math() is False and title.get_usetex() is False
    assert [t.get_text() for t in ticks] == ["$\\x$"] and not any(t.get_parse_math() for t in ticks)
    outside = Figure().subplots().set_title("$x^2$")  # outside a report, matplotlib's own default
    assert outside.get_parse_math() is True
