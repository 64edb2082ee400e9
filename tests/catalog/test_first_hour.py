"""Issue 34's first-hour problems, each for its whole kind: column names with hyphens, unknown names,
one angle grammar, query's default columns, stats' clipped values, every tree's UCDs, the image
folder, predict's ids, the workflow help."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io.votable.ucd import check_ucd
from PIL import Image

from galaxy_ray import catalog as cat
from galaxy_ray.catalog.angles import angle_deg
from galaxy_ray.catalog.cli import query_main
from galaxy_ray.catalog.columns import column_info
from galaxy_ray.catalog.crossmatch import parse_radius
from galaxy_ray.catalog.query import quote_known_columns
from galaxy_ray.catalog.regions import as_region
from galaxy_ray.cli import COMMANDS, WORKFLOW, main as cli_main, run_entry_point
from galaxy_ray.data.sources import detect_format
from galaxy_ray.data.sources.read import open_source
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.infer.predict import expand_images, object_id_of
from galaxy_ray.merger.fractions import format_corrected
from galaxy_ray.trees import SCHEMAS
from test_catalog import PROVENANCE, random_rows

EDGE = "disk-edge-on_yes_fraction"
LOWER = "bar_strong_90pc-lower"


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("hyphen_catalog")
    rows = random_rows(300, seed=4, with_nulls=False)
    rng = np.random.default_rng(4)
    rows = rows.append_column(EDGE, pa.array(rng.random(300).astype(np.float32)))
    rows = rows.append_column(LOWER, pa.array(rng.random(300).astype(np.float32)))
    cat.write_catalog_file(rows, str(out / "part-00000.parquet"), PROVENANCE)
    cat.write_catalog_summary(str(out), PROVENANCE)
    return out


@pytest.fixture(scope="module")
def everything(catalog_dir):
    return pq.read_table(catalog_dir / "part-00000.parquet").to_pandas()


def test_hyphenated_names_are_quoted_but_strings_and_quoted_names_are_left_alone():
    cols = [EDGE, LOWER, "p_merger"]
    text = f"{EDGE} > 0.5 AND \"{LOWER}\" < 1 AND object_id = '{EDGE}' AND p_merger > 0"
    assert quote_known_columns(text, cols) == (f'"{EDGE}" > 0.5 AND "{LOWER}" < 1 AND object_id = \'{EDGE}\' '
                                               "AND p_merger > 0")
    assert quote_known_columns("Disk-Edge-On_yes_fraction>0.5", cols) == f'"{EDGE}">0.5'


def test_where_columns_and_sort_take_hyphenated_names_as_written(catalog_dir, everything, capsys):
    got = cat.query(str(catalog_dir), where=f"{EDGE} > 0.5 AND {LOWER} < 0.5", columns=f"object_id,{EDGE}",
                    sort=f"-{EDGE}")
    want = everything[(everything[EDGE] > 0.5) & (everything[LOWER] < 0.5)].sort_values(EDGE, ascending=False)
    assert got.object_id.tolist() == want.object_id.tolist() and len(want) > 10
    stats = cat.merger_stats(str(catalog_dir), where=f"{EDGE} > 0.5", by="morphology")
    assert stats["rows"] == int((everything[EDGE] > 0.5).sum())


def test_an_unknown_column_gets_the_closest_names_not_the_whole_list(catalog_dir):
    with pytest.raises(GalaxyRayError) as err:
        cat.query(str(catalog_dir), where="disk-edge-on_yes_fractio > 0.5")
    message = str(err.value)
    assert EDGE in message and "did you mean" in message and "smooth_or_features_smooth" not in message
    with pytest.raises(GalaxyRayError, match="did you mean p_merger"):
        cat.query(str(catalog_dir), columns="object_id,p_mergr")


def test_query_prints_a_readable_default_and_all_columns_on_request(catalog_dir, capsys):
    assert run_entry_point(query_main, [str(catalog_dir), "--limit", "3", "--where", f"{EDGE} > 0.2"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header == ["object_id", "ra", "dec", "morphology", "p_merger", "is_merger", "error", EDGE]
    assert run_entry_point(query_main, [str(catalog_dir), "--limit", "1", "--columns", "all"]) == 0
    assert len(capsys.readouterr().out.splitlines()[0].split()) == len(cat.open_catalog(str(catalog_dir)).columns)
    assert len(cat.query(str(catalog_dir), limit=1, columns="all").columns) == len(cat.open_catalog(
        str(catalog_dir)).columns)


def test_one_angle_grammar_a_bare_number_is_degrees_everywhere():
    assert angle_deg("5arcsec") == pytest.approx(5 / 3600)
    assert angle_deg("30arcmin") == pytest.approx(0.5) and angle_deg("0.5 deg") == 0.5 and angle_deg(2) == 2.0
    assert as_region(("180", "30", "5arcsec"), None).radius == pytest.approx(5 / 3600)
    assert as_region((180, 30, 1), None).radius == 1.0
    assert parse_radius("1", bare_unit="deg") == pytest.approx(3600.0)  # the command line: degrees
    assert parse_radius(1.0) == 1.0  # the Python parameter radius_arcsec: arcsec, as its name says
    with pytest.raises(GalaxyRayError, match="not an angle"):
        angle_deg("5 kg", "--cone RADIUS")
    with pytest.raises(GalaxyRayError, match="--cone RADIUS 'five'"):
        as_region(("180", "30", "five"), None)


def test_a_cone_in_arcmin_equals_the_same_cone_in_degrees(catalog_dir):
    a = cat.query(str(catalog_dir), cone=(10, 0, "1800arcmin"), columns="object_id")
    b = cat.query(str(catalog_dir), cone=(10, 0, 30), columns="object_id")
    assert a.object_id.tolist() == b.object_id.tolist() and len(a) > 0


def test_a_clipped_correction_is_an_upper_limit_not_a_measured_zero():
    d = {"corrected_fraction": 0.0, "corrected_fraction_95": [0.0, 0.1437], "caveat": "x"}
    assert format_corrected(d) == "< 0.1437 (95% upper limit; the correction is clipped at 0)"
    assert format_corrected(d, brief=True) == "< 0.1437 (95% upper limit)"
    high = {"corrected_fraction": 1.0, "corrected_fraction_95": [0.8, 1.0]}
    assert format_corrected(high).startswith("> 0.8000 (95% lower limit")
    plain = {"corrected_fraction": 0.05, "corrected_fraction_95": [0.02, 0.08]}
    assert format_corrected(plain) == "0.0500 (95% interval 0.0200 - 0.0800)"


def test_every_column_of_every_tree_has_a_valid_ucd_and_a_description():
    for schema in SCHEMAS.values():
        lower, upper = schema.interval_columns
        for name in (*schema.fraction_columns, *schema.proportion_asked_columns, *lower, *upper):
            info = column_info(name)
            assert info is not None and info.ucd and info.description, (schema.name, name)
            assert check_ucd(info.ucd, check_controlled_vocabulary=True), (name, info.ucd)
    assert column_info(EDGE).ucd == "stat.probability;src.morph"


def _png(path, value):
    Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(path)


def test_a_folder_of_images_of_any_kind_is_a_source_named_image_folder(tmp_path):
    _png(tmp_path / "NGC1300.png", 10)
    Image.fromarray(np.full((16, 16, 3), 20, np.uint8)).save(tmp_path / "M51.jpg")
    Image.fromarray(np.full((16, 16, 3), 30, np.uint8)).save(tmp_path / "M101.tiff")
    assert detect_format(str(tmp_path)) == "image-folder"
    meta = open_source(str(tmp_path)).metadata()
    assert sorted(meta.object_id) == ["M101", "M51", "NGC1300"]


def test_two_files_with_one_stem_are_refused_naming_both(tmp_path):
    _png(tmp_path / "a.png", 1)
    Image.fromarray(np.full((8, 8, 3), 1, np.uint8)).save(tmp_path / "a.jpg")
    with pytest.raises(GalaxyRayError, match=r"a\.jpg and a\.png give the same object_id 'a'"):
        open_source(str(tmp_path)).metadata()


def test_predict_ids_are_the_catalogs_and_folders_expand(tmp_path):
    assert object_id_of("x/synth-2-0000000.png") == "synth-2-0000000"
    assert object_id_of("s3://b/NGC1300.fits.gz") == "NGC1300" and object_id_of("a/b.npy") == "b"
    _png(tmp_path / "b.png", 1)
    _png(tmp_path / "a.png", 2)
    (tmp_path / "notes.txt").write_text("not an image")
    assert expand_images([str(tmp_path)]) == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(GalaxyRayError, match="no image files"):
        expand_images([str(tmp_path / "empty")])


def test_help_lists_every_command_once_in_the_order_of_the_work(capsys):
    assert sorted(n for _, names in WORKFLOW for n in names) == sorted(COMMANDS)
    assert cli_main(["--help"]) == 0
    text = capsys.readouterr().out
    order = [text.index(f"   {name} ") for name in ("synth", "pack", "train", "infer", "query")]
    assert order == sorted(order) and "example" in text and "--cone 180 30 30arcmin" in text


def test_a_pipe_closed_early_ends_a_command_quietly(tmp_path):
    """``galaxy-ray query ... | head -1``: the reader stops, the command exits 0 with nothing on stderr."""
    import subprocess
    import sys

    code = ("import sys\nfrom galaxy_ray.cli import run_entry_point\n"
            "def rows(argv):\n    for _ in range(100000):\n        print('x' * 100)\n    return 0\n"
            "sys.exit(run_entry_point(rows))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read().decode()
    assert first == b"x" * 100 + b"\n"
    assert proc.wait(timeout=60) == 0 and err == ""
