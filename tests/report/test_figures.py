"""What a reader sees in the report's figures, checked on the matplotlib objects before they are saved and on the PNGs."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from galaxy_ray import catalog, evaluate, report
from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.io.layout import EVALUATION_JSON, VALIDATION_PREDICTIONS
from galaxy_ray.model.spec import ModelSpec
from galaxy_ray.report.run import read_predictions
from galaxy_ray.report.sky import MIN_CELL_GALAXIES, coarser_cells, ra_centre, sky_figure
from galaxy_ray.report.style import panel_title
from galaxy_ray.schema import GALAXY10_CLASSES, GALAXY10_MERGER_CLASS, GZ2_ANSWER_COLUMNS, GZ2_KAGGLE_COLUMNS
from test_report import fake_run


class KeptReport(report.Report):
    """A real Report that also keeps each Figure it saves, to inspect what was drawn."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kept = {}

    def save(self, fig, name, *args, **kwargs):
        self.kept[name] = fig
        return super().save(fig, name, *args, **kwargs)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    from galaxy_ray.synthetic import synthesize

    out = tmp_path_factory.mktemp("figures_survey")
    synthesize(str(out), 30, size=32, fmt="shards", seed=3, workers=1)
    return out


def visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>"]


def test_panel_titles_are_whole_and_short_enough():
    for kaggle, column in zip(GZ2_KAGGLE_COLUMNS, GZ2_ANSWER_COLUMNS):
        title = panel_title(column)
        lines = title.splitlines()
        assert len(lines) == 2 and "…" not in title and all(len(line) <= 30 for line in lines), title
        assert lines[0].startswith(kaggle + " ") and "_" not in title
    assert panel_title("odd_feature_merger") == "Class8.6 odd feature:\nmerger"
    long = panel_title("a_class_name_of_many_words_that_cannot_fit_on_two_lines_of_thirty_characters")
    assert len(long.splitlines()) == 2 and long.endswith("…")


@pytest.mark.slow
def test_gz2_run_figures_have_labels_a_colour_bar_and_a_compact_image_grid(source, tmp_path):
    run = fake_run(tmp_path, source, "gz2")
    rep = KeptReport(str(tmp_path / "out"), "t")
    (tmp_path / "out").mkdir()
    report.run_figures(rep, str(run), top=4)
    hist = visible_axes(rep.kept["prediction_histograms.png"])
    assert len(hist) == 37
    for ax in hist:
        assert ax.get_xlabel() == "vote fraction" and ax.get_ylabel() == "fraction of galaxies"
        assert ax.title.get_fontsize() >= 8 and "…" not in ax.get_title()
        grey = [p.get_height() for p in ax.patches if p.get_facecolor()[:3] == pytest.approx((0.75,) * 3)]
        assert sum(grey) == pytest.approx(1.0)  # bars are fractions of the galaxies
    hexes = rep.kept["predicted_vs_true.png"]
    panels = visible_axes(hexes)
    assert len(panels) == 37 and all(ax.get_xlabel() == "true fraction" for ax in panels)
    norms = {(c.norm.vmin, c.norm.vmax) for ax in panels for c in ax.collections}
    assert len(norms) == 1  # one colour scale for every panel...
    colourbars = [ax for ax in hexes.axes if "per hexagon" in ax.get_ylabel() + ax.get_xlabel()]
    assert len(colourbars) == 1  # ...and its colour bar
    ticks = [t.get_text() for t in colourbars[0].get_yticklabels()]
    assert ticks and not any("$" in t for t in ticks) and "1" in ticks  # plain numbers, not raw mathtext
    grid = rep.kept["top_predictions.png"]
    assert grid.get_suptitle() == ""  # the page titles it; nothing drawn over the first labels
    png = (tmp_path / "out" / "top_predictions.png").read_bytes()
    assert len(png) < 1_000_000 and Image.open(io.BytesIO(png)).mode == "P"
    labels = [ax.get_title(loc="left") for ax in grid.axes if ax.get_title(loc="left")]
    assert any(label.startswith("Class8.6 odd feature: merger\n") for label in labels)


def test_the_page_summarises_the_model_and_its_merger_flag(source, tmp_path):
    run = fake_run(tmp_path, source, "classes")
    ids, y_true, y_pred = read_predictions(str(run / VALIDATION_PREDICTIONS))
    spec = ModelSpec("resnet18", "classes", list(GALAXY10_CLASSES), PreprocessConfig(32), GALAXY10_MERGER_CLASS)
    evaluation = evaluate.evaluate_predictions(spec, {"y_true": y_true, "y_pred": y_pred,
                                                      "error": np.array([None] * len(ids), dtype=object)},
                                               threshold=0.3, vote_cut=None)
    (run / EVALUATION_JSON).write_text(json.dumps(evaluation))
    out = tmp_path / "page"
    out.mkdir()
    rep = report.Report(str(out), "t")
    report.run_figures(rep, str(run), top=1)
    summary = dict(rep.summary)
    assert summary["task"].startswith("classes (10 classes)") and summary["architecture"].startswith("resnet18 at")
    assert "balanced" in summary["evaluation"]
    assert summary["merger flag"].startswith("p_merger >= 0.3 ") and "precision" in summary["merger flag"]
    page = open(rep.write_index()).read()
    assert "<th>merger flag</th>" in page and "recall" in page and "<th>architecture</th>" in page


def _footprint_cells(n, ra_range, seed=2):
    rng = np.random.default_rng(seed)
    ra = rng.uniform(*ra_range, n) % 360
    dec = rng.uniform(-5, 65, n)
    p = rng.random(n).astype(np.float32)
    cols = {"object_id": [f"s{i}" for i in range(n)], "ra": ra, "dec": dec}
    cols.update({name: rng.random(n).astype(np.float32) for name in GZ2_ANSWER_COLUMNS})
    cols.update(morphology=rng.choice(["spiral", "elliptical"], n), p_merger=p, is_merger=p > 0.9, error=[None] * n)
    return pa.table(cols)


@pytest.mark.slow
@pytest.mark.parametrize("ra_range, centre", [((120, 240), 180.0), ((330, 390), 0.0)])
def test_sky_maps_are_centred_on_the_footprint_and_hide_sparse_cells(tmp_path, ra_range, centre):
    prov = {"task": "gz2", "output_columns": list(GZ2_ANSWER_COLUMNS)}
    cat_dir = tmp_path / "catalog"
    cat_dir.mkdir()
    catalog.write_catalog_file(_footprint_cells(3000, ra_range), str(cat_dir / "part-00000.parquet"), prov)
    catalog.write_catalog_summary(str(cat_dir), prov)
    cells = report.sky_cells(catalog.open_catalog(str(cat_dir)), 4)
    fig, shown = sky_figure(cells, 4)
    page = report.Report(str(tmp_path / "page"), "t")
    (tmp_path / "page").mkdir()
    report.catalog_figures(page, str(cat_dir), order=4)
    summary = dict(page.summary)
    assert summary["catalog"].endswith(": 3000 rows, 0 error rows")
    assert summary["flagged merger fraction"].startswith("0.") and "Wilson" in summary["flagged merger fraction"]
    assert min(abs(shown["centre"] - centre), 360 - abs(shown["centre"] - centre)) < 5
    maps = [ax for ax in fig.axes if ax.name == "mollweide"]
    assert len(maps) == 3 and len(fig.axes) == 6  # three maps, three colour bars
    density = maps[0].collections[-1].get_offsets()
    assert np.all(np.abs(density[:, 0]) < np.radians(70))  # one lobe in the middle, not two at the edges
    merged = coarser_cells(cells, 4 - shown["merger_order"])
    enough = int((merged["classified"] >= MIN_CELL_GALAXIES).sum())
    assert len(maps[1].collections[-1].get_offsets()) == enough  # coloured cells: only those with enough galaxies
    assert shown["sparse_cells"] == len(merged["cell"]) - enough
    data_lat = density[:, 1]
    for text in maps[0].texts:  # RA labels on a parallel clear of the data
        lat = text.get_position()[1]
        assert lat < data_lat.min() or lat > data_lat.max()


def test_ra_centre_is_circular():
    assert ra_centre(np.array([350.0, 10.0])) == pytest.approx(0.0, abs=1e-9) or \
        ra_centre(np.array([350.0, 10.0])) == pytest.approx(360.0)
    assert ra_centre(np.array([120.0, 240.0])) == pytest.approx(180.0)
