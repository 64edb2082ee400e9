"""A votes model's catalog: Galaxy Zoo's column names, fractions that sum to 1 per question, intervals
around them, descriptions in the provenance, and the friendly view in ``query``."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from galaxy_ray import infer
from galaxy_ray.catalog.cli import query_main
from galaxy_ray.data.vote_counts import find_vote_columns, stack_counts
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.synthetic.survey import synthesize
from galaxy_ray.trees import DECALS_DR5, DECALS_DR8, GZ2

SIZE = 32


@pytest.fixture(scope="module")
def vote_catalog(tmp_path_factory, tiny_checkpoint, ray_cluster):
    root = tmp_path_factory.mktemp("votes")
    survey = synthesize(str(root / "survey"), 12, SIZE, "manifest", seed=4, workers=1, tree="decals-dr8")
    model = tiny_checkpoint(str(root / "model.pt"), task="votes", size=SIZE)
    out = str(root / "catalog")
    summary = infer.run_inference(model, survey, out, batch_size=6, rows_per_file=6, num_actors=1,
                                  log=lambda line: None, progress=False)
    assert summary["rows"] == 12
    return out


def test_columns_speak_galaxy_zoo(vote_catalog):
    df = pd.read_parquet(vote_catalog)
    for column in (*DECALS_DR8.fraction_columns, *DECALS_DR8.proportion_asked_columns, *DECALS_DR8.interval_columns[0],
                   *DECALS_DR8.interval_columns[1], "p_merger", "is_merger", "morphology"):
        assert column in df.columns, column
    for q in DECALS_DR8.questions:
        sums = df[[DECALS_DR8.fraction_columns[k] for k in q.indices]].sum(axis=1)
        np.testing.assert_allclose(sums, 1.0, rtol=1e-5)
    for name, lower, upper in zip(DECALS_DR8.fraction_columns, *DECALS_DR8.interval_columns):
        assert (df[lower] <= df[name] + 1e-6).all() and (df[name] <= df[upper] + 1e-6).all()
    asked = df["bar_proportion_asked"]
    np.testing.assert_allclose(asked, df["smooth-or-featured_featured-or-disk_fraction"] * df["disk-edge-on_no_fraction"],
                               rtol=1e-5)
    # an uncalibrated model's p_merger is the merging_merger fraction (merging is asked of every galaxy)
    np.testing.assert_allclose(df["p_merger"], df["merging_merger_fraction"], rtol=1e-6)


def test_provenance_describes_every_probability_column(vote_catalog):
    provenance = json.loads(open(f"{vote_catalog}/_catalog.json").read())
    assert provenance["task"] == "votes" and provenance["tree"] == "decals-dr8"
    described = provenance["column_descriptions"]
    assert "Dirichlet" in described["merging_merger_fraction"]
    assert "merger" in described["p_merger"] and "not a probability" in described["p_merger"]
    assert described["merging_merger_90pc-upper"].startswith("95% quantile")


def test_friendly_view_masks_unreached_questions(vote_catalog, tmp_path, capsys):
    out = tmp_path / "friendly.csv"
    answers = ("bar_strong", "smooth-or-featured_smooth")  # the root question is always asked: never masked
    columns = [f"{a}{end}" for a in answers for end in ("_fraction", "_90pc-lower", "_90pc-upper")]
    assert query_main([vote_catalog, "--friendly", "--columns",
                       ",".join(["object_id", "bar_proportion_asked", *columns]), "--out", str(out)]) == 0
    shown = pd.read_csv(out)
    raw = pd.read_parquet(vote_catalog).set_index("object_id").loc[shown["object_id"]]
    for column in columns:
        asked = raw["bar_proportion_asked" if column.startswith("bar") else "smooth-or-featured_proportion_asked"]
        masked = asked.to_numpy() < 0.5
        assert shown[column].isna().to_numpy().tolist() == masked.tolist(), column  # an interval goes with its value
        np.testing.assert_allclose(shown[column].to_numpy()[~masked], raw[column].to_numpy()[~masked], rtol=1e-6)
    assert not shown["smooth-or-featured_smooth_fraction"].isna().any()


def test_count_columns_are_found_and_stacked():
    import pyarrow as pa

    names = DECALS_DR5.count_forms["galaxy-datasets"]
    table = pa.table({name: pa.array([1.0, None, 2.0]) for name in names})
    counts = stack_counts(table.slice(0, 2), list(names)).column("vote_counts").to_pylist()
    assert counts[0] == [1.0] * 34 and counts[1] is None  # all missing: unlabelled
    negative = table.set_column(0, names[0], pa.array([1.0, 1.0, -1.0]))
    with pytest.raises(GalaxyRayError, match=names[0]):
        stack_counts(negative, list(names))
    assert find_vote_columns(list(names), None, "t.csv").schema is DECALS_DR5
    hart = GZ2.count_forms["hart"]
    assert find_vote_columns([*hart, *GZ2.fraction_forms["hart"]], None, "gz2.csv").schema is GZ2
    with pytest.raises(GalaxyRayError, match="pass --schema decals-dr5"):
        find_vote_columns(list(names), "gz2", "t.csv")
    with pytest.raises(GalaxyRayError, match="no Galaxy Zoo vote-count columns"):
        find_vote_columns(["object_id", "path"], None, "t.csv")


@pytest.mark.parametrize("tree", ["gz2", "decals-dr5", "decals-dr8"])
def test_every_tree_writes_galaxy_zoo_columns(tree):
    from galaxy_ray.data.transforms import PreprocessConfig
    from galaxy_ray.infer.rows import catalog_rows
    from galaxy_ray.merger.rule import MergerRule
    from galaxy_ray.model import ModelSpec, output_columns
    from galaxy_ray.trees import get_schema

    spec = ModelSpec.for_votes("resnet18", tree, PreprocessConfig(32))
    schema = get_schema(tree)
    rng = np.random.default_rng(1)
    alpha = rng.uniform(1.0, 30.0, (5, len(schema.answers)))
    fractions = np.concatenate([alpha[:, a:b] / alpha[:, a:b].sum(axis=1, keepdims=True) for a, b in schema.slices],
                               axis=1).astype(np.float32)
    batch = {"object_id": np.array([f"g{i}" for i in range(5)], dtype=object), "ra": np.linspace(10, 20, 5),
             "dec": np.zeros(5), "error": np.array([None] * 5, dtype=object)}
    rule = MergerRule(output=spec.merger, threshold=0.5, threshold_source="given")
    df = catalog_rows(spec, output_columns(spec), batch, fractions, np.ones(5, bool), rule,
                      concentrations=alpha).to_pandas()
    # the rows leave _healpix_29 to the driver's write_catalog_file: outputs follow the position
    assert list(df.columns[:3 + len(schema.answers)]) == ["object_id", "ra", "dec", *schema.fraction_columns]
    for q in schema.questions:
        np.testing.assert_allclose(df[[schema.fraction_columns[k] for k in q.indices]].sum(axis=1), 1.0, rtol=1e-5)
    for q, column in zip(schema.questions, schema.proportion_asked_columns):
        expected = np.ones(5)
        for parent in schema.ancestors(q):  # the product of the parent answers' fractions, by hand
            expected *= fractions[:, parent]
        np.testing.assert_allclose(df[column], expected, rtol=1e-5)
    merger = schema.answer_index(spec.merger)
    merger_q = next(q for q in schema.questions if merger in q.indices)
    asked = df[schema.proportion_asked_columns[schema.questions.index(merger_q)]]
    np.testing.assert_allclose(df["p_merger"], fractions[:, merger] * asked, rtol=1e-5)
