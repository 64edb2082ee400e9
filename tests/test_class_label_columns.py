"""Class labels that make the same catalog column name (``Spiral``/``spiral``, ``Sb``/``Sb:``, two non-Latin
names) get distinct, recorded columns, and ``infer`` never writes a catalog with duplicate fields (issue 33, §2)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from galaxy_ray import infer, model, schema
from galaxy_ray.catalog.columns import column_info
from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.schema import class_columns, shared_class_columns
from galaxy_ray.synthetic import synthetic_table

SIZE = 32
#: the issue's three collisions, in the order a checkpoint stores classes (sorted), and a Galaxy10-like class
CLASSES = sorted(["Sb", "Sb:", "Spiral", "spiral", "楕円銀河", "渦巻銀河", "Merger"])


def test_the_issues_collisions_get_distinct_columns_first_keeps_the_plain_name():
    assert class_columns(["Spiral", "spiral"]) == ["prob_spiral", "prob_spiral_2"]
    assert class_columns(["Sb", "Sb:"]) == ["prob_sb", "prob_sb_2"]
    assert class_columns(["楕円銀河", "渦巻銀河"]) == ["prob_class", "prob_class_2"]
    assert shared_class_columns(["Sb", "Sb:", "Sc"]) == [["Sb", "Sb:"]]


def test_a_suffix_never_takes_another_class_s_own_name():
    """Variant not in the issue: three spellings of one word plus a class literally named like the suffix."""
    columns = class_columns(["Edge-on", "edge on", "edge_on", "edge_on_2"])
    assert columns == ["prob_edge_on", "prob_edge_on_3", "prob_edge_on_4", "prob_edge_on_2"]
    assert len(set(columns)) == 4


def test_names_without_collisions_keep_their_columns():
    assert class_columns(schema.GALAXY10_CLASSES) == [schema.class_column(c) for c in schema.GALAXY10_CLASSES]


@pytest.mark.slow
def test_catalog_of_colliding_classes_is_readable_and_names_each_class(ray_cluster, tmp_path, write_shards):
    """A classes checkpoint (as training writes, classes sorted) over 12 cutouts: pandas and pyarrow read the
    catalog, every prob_ field once, and the provenance says which class each column is."""
    spec = model.ModelSpec("resnet18", "classes", CLASSES, PreprocessConfig(SIZE), "Merger")
    checkpoint = model.save_checkpoint(str(tmp_path / "model.pt"), model.build_model(spec), spec)
    source, out = str(tmp_path / "survey"), str(tmp_path / "catalog")
    write_shards(synthetic_table(12, size=SIZE, seed=2), source, rows_per_shard=6)
    infer.run_inference(checkpoint, source, out, batch_size=8, num_actors=1, log=lambda _line: None)

    frame = pd.concat(pd.read_parquet(p) for p in sorted(Path(out).glob("*.parquet")))
    probs = [c for c in frame.columns if c.startswith("prob_")]
    assert len(probs) == len(set(probs)) == len(CLASSES) == 7
    assert len(frame) == 12
    # the softmax over the seven columns sums to 1 on every row: no column was overwritten by another
    assert frame[probs].sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-4)
    prov = json.loads((Path(out) / "_catalog.json").read_text())
    mapping = dict(zip(prov["output_columns"], prov["output_names"]))
    assert mapping["prob_spiral"] == "Spiral" and mapping["prob_spiral_2"] == "spiral"
    assert mapping["prob_sb_2"] == "Sb:"
    assert column_info("prob_class_2", prov).description.startswith("probability of class '渦巻銀河'")


def test_training_says_which_classes_share_a_name_and_where_they_went(capsys):
    from galaxy_ray.train.driver import say_shared_columns

    say_shared_columns(["Sb", "Sb:", "Sc"])
    err = capsys.readouterr().err
    assert "'Sb' -> prob_sb and 'Sb:' -> prob_sb_2" in err and err.count("\n") == 1
    say_shared_columns(["Sb", "Sc"])
    assert capsys.readouterr().err == ""
