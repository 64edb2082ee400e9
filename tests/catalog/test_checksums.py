"""Every catalog file's SHA-256 is in ``_catalog.json``, and every reader refuses a file that differs (issue 33)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from galaxy_ray import api, cli, infer
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import layout
from galaxy_ray.synthetic import synthetic_table

# slow: the module's catalog is written by a real inference run (a Ray actor pool loading a model)
pytestmark = pytest.mark.slow

SIZE = 32
#: The _catalog.json key of the files' SHA-256 (docs/contracts.md).
CHECKSUMS_KEY = "files_sha256"


@pytest.fixture(scope="module")
def catalog(ray_cluster, tmp_path_factory, tiny_checkpoint, write_shards) -> Path:
    root = tmp_path_factory.mktemp("checksums")
    model = tiny_checkpoint(str(root / "model.pt"), size=SIZE)
    write_shards(synthetic_table(12, size=SIZE, seed=3), str(root / "survey"), rows_per_shard=6)
    infer.run_inference(model, str(root / "survey"), str(root / "catalog"), batch_size=6, rows_per_file=6,
                        num_actors=1, log=lambda _: None, progress=False)
    return root / "catalog"


@pytest.fixture()
def copy(catalog, tmp_path) -> Path:
    return Path(shutil.copytree(catalog, tmp_path / "catalog"))


def _damage(path: Path) -> None:
    """One byte changed in the middle of the file, as a bad copy does: the footer still parses."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(bytes(data))


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("galaxy-ray: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-2000:]
    return errors[0]


def test_catalog_json_holds_the_sha256_of_every_file_and_of_metadata(catalog):
    recorded = json.loads((catalog / layout.CATALOG_SUMMARY).read_text())[CHECKSUMS_KEY]
    files = sorted(p.name for p in catalog.glob("part-*.parquet")) + [layout.CATALOG_METADATA]
    assert sorted(recorded) == sorted(files) and len(files) == 3
    for name in files:
        assert recorded[name] == hashlib.sha256((catalog / name).read_bytes()).hexdigest()


def test_a_damaged_part_is_one_line_naming_it_in_query_stats_report_and_hats(copy, tmp_path, capsys):
    assert cli.main(["stats", str(copy)]) == 0  # intact: reads
    capsys.readouterr()
    part = sorted(copy.glob("part-*.parquet"))[1]
    _damage(part)
    commands = {"query": ["query", str(copy), "--limit", "3"],
                "cone": ["query", str(copy), "--cone", "0", "0", "180"],
                "stats": ["stats", str(copy)],
                "report": ["report", str(copy), str(tmp_path / "report")],
                "hats": ["hats", str(copy), str(tmp_path / "hats")]}
    for name, argv in commands.items():
        assert cli.main(argv) == 2, name
        line = _one_error(capsys)
        assert str(part) in line and "damaged or changed since infer wrote it" in line, (name, line)


def test_a_damaged_part_is_refused_by_the_python_api(copy):
    part = sorted(copy.glob("part-*.parquet"))[0]
    _damage(part)
    for read in (lambda: api.open_catalog(str(copy)), lambda: api.merger_stats(str(copy)),
                 lambda: api.cone(str(copy), 0.0, 0.0, 180.0)):
        with pytest.raises(GalaxyRayError, match=rf"{part}: damaged or changed"):
            read()


def test_a_part_no_run_listed_or_a_listed_part_missing_is_refused(copy, capsys):
    """Variant not in the issue: rows another run added beside the catalog, or a part lost on copy."""
    parts = sorted(copy.glob("part-*.parquet"))
    shutil.copy(parts[0], copy / "part-00099-00099.parquet")
    assert cli.main(["query", str(copy)]) == 2
    assert "part-00099-00099.parquet: not among the files" in _one_error(capsys)
    (copy / "part-00099-00099.parquet").unlink()
    parts[1].unlink()
    assert cli.main(["stats", str(copy)]) == 2
    assert f"{parts[1]}: listed in" in _one_error(capsys)


def test_a_damaged_metadata_summary_is_refused(copy):
    _damage(copy / layout.CATALOG_METADATA)
    with pytest.raises(GalaxyRayError, match=rf"{layout.CATALOG_METADATA}: damaged or changed"):
        api.open_catalog(str(copy))


def test_a_catalog_a_run_is_still_writing_says_so_instead_of_damage(copy):
    """Variant not in the issue: a reader started while a resumed infer adds parts (its lock is there)."""
    shutil.copy(sorted(copy.glob("part-*.parquet"))[0], copy / "part-00099-00099.parquet")
    (copy / "_infer.lock").write_text("{}")
    with pytest.raises(GalaxyRayError, match=r"infer is writing this catalog now \(_infer.lock\)"):
        api.open_catalog(str(copy))
