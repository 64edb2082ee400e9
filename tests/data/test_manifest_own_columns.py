"""A manifest's columns named like galaxy-ray's own (``error``, ``p_merger``, ...) are carried as ``input_<name>``
and never taken for galaxy-ray's; a blank ``path`` cell is that row's error (issue 33, section 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from galaxy_ray import infer
from galaxy_ray.data.sources import open_source
from galaxy_ray.errors import GalaxyRayError
from builders import noise_png

SIZE = 32


def _folder(tmp_path, frame: pd.DataFrame, parquet: bool = False) -> str:
    root = tmp_path / "survey"
    (root / "images").mkdir(parents=True)
    for k in range(4):
        (root / "images" / f"{k}.png").write_bytes(noise_png(k, side=SIZE))
    if parquet:
        frame.to_parquet(root / "manifest.parquet", index=False)
    else:
        frame.to_csv(root / "manifest.csv", index=False)
    return str(root)


def _log_manifest() -> pd.DataFrame:
    """A download log: every cutout's ``error`` cell says how its first try went; g1's download failed."""
    return pd.DataFrame({
        "object_id": ["g0", "g1", "g2", "g3"],
        "path": ["images/0.png", "", "images/2.png", "images/3.png"],
        "error": ["retried: HTTP 500", "timeout", "", "retried: HTTP 503"],
        "p_merger": [0.9, 0.1, 0.2, 0.3],
        "source": ["legacy", "legacy", "legacy", "legacy"],
    })


def test_own_names_are_carried_under_input_and_said_once(tmp_path, capsys):
    source = open_source(_folder(tmp_path, _log_manifest()))
    meta = source.metadata()
    assert {"input_error", "input_p_merger", "input_source"} <= set(meta.columns)
    assert "error" not in meta.columns and "p_merger" not in meta.columns
    assert meta["input_p_merger"].tolist() == [0.9, 0.1, 0.2, 0.3]
    err = capsys.readouterr().err
    assert "carrying 'error' as 'input_error', 'p_merger' as 'input_p_merger', 'source' as 'input_source'" in err
    rows = source.read_rows(meta)
    assert rows["input_source"].to_pylist() == ["legacy"] * 4  # galaxy-ray's own source column is the file
    assert rows["source"].to_pylist()[0].endswith("images/0.png")


def test_class_probabilities_of_an_old_catalog_are_carried_too(tmp_path):
    """Variant not in the issue: a classes catalog re-used as a manifest brings prob_* and vote_counts columns."""
    frame = pd.DataFrame({"object_id": ["g0"], "path": ["images/0.png"], "prob_spiral": [0.7], "vote_counts": [3]})
    meta = open_source(_folder(tmp_path, frame)).metadata()
    assert {"input_prob_spiral", "input_vote_counts"} <= set(meta.columns)
    assert "prob_spiral" not in meta.columns and "vote_counts" not in meta.columns


def test_a_table_with_both_the_name_and_its_input_name_is_refused(tmp_path):
    frame = pd.DataFrame({"object_id": ["g0"], "path": ["images/0.png"], "error": ["x"], "input_error": ["y"]})
    with pytest.raises(GalaxyRayError, match=r"manifest.csv: has a column 'error', a name galaxy-ray writes itself, "
                                             r"and also 'input_error'.*rename one of them"):
        open_source(_folder(tmp_path, frame))


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_path_is_that_row_s_error_not_the_table_s(tmp_path, blank):
    """The blank cell as a CSV writes it, and (variant not in the issue) a cell of spaces."""
    frame = pd.DataFrame({"object_id": ["g0", "g1", "g2"], "path": ["images/0.png", blank, "images/2.png"]})
    source = open_source(_folder(tmp_path, frame))
    rows = source.read_rows(source.metadata())
    errors = rows["error"].to_pylist()
    assert errors[0] is None and errors[2] is None
    assert "no path (object g1: blank 'path' cell)" in errors[1]
    assert rows["image"].to_pylist()[1] is None


@pytest.mark.slow
def test_infer_over_a_download_log_classifies_every_downloaded_cutout(ray_cluster, tmp_path, tiny_checkpoint):
    """On HEAD the log's ``error`` cells stopped g0 and g3 being classified, and g1's blank path refused the table."""
    checkpoint = tiny_checkpoint(str(tmp_path / "model.pt"), size=SIZE)
    source = _folder(tmp_path, _log_manifest(), parquet=True)  # Parquet keeps g1's path a null
    out = str(tmp_path / "catalog")
    infer.run_inference(checkpoint, source, out, batch_size=8, num_actors=1, log=lambda _line: None)
    tables = [pq.read_table(p) for p in sorted(Path(out).glob("*.parquet"))]
    errors = {oid: e for t in tables for oid, e in zip(t["object_id"].to_pylist(), t["error"].to_pylist())}
    assert errors["g0"] is None and errors["g2"] is None and errors["g3"] is None
    assert "no path" in errors["g1"]
    assert json.loads((Path(out) / "_catalog.json").read_text())["error_rows"] == 1
