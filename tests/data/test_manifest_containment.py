"""Issue 21, item 8: a manifest names only files under its own folder, and no message shows a file's bytes."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from galaxy_ray.cli import main as cli_main
from galaxy_ray.data.decode import DecodeError, decode_cutout, image_encoding
from galaxy_ray.data.sources import open_source
from galaxy_ray.data.sources.containment import outside_paths
from galaxy_ray.errors import GalaxyRayError
from builders import noise_png

SECRET = "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG"


@pytest.fixture
def tree(tmp_path):
    """``survey/`` (the manifest's folder) with images, and ``elsewhere/`` beside it holding a real PNG."""
    root, elsewhere = tmp_path / "survey", tmp_path / "elsewhere"
    (root / "images").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "images" / "a.png").write_bytes(noise_png(1))
    (elsewhere / "b.png").write_bytes(noise_png(2))  # an image: what is refused is where it is, not what it is
    os.symlink(elsewhere / "b.png", root / "images" / "out.png")
    os.symlink(root / "images" / "a.png", root / "images" / "in.png")
    os.symlink(elsewhere, root / "linked")
    return root, elsewhere


def _manifest(root, paths) -> str:
    pd.DataFrame({"object_id": [f"g{k}" for k in range(len(paths))], "path": paths}).to_csv(
        root / "manifest.csv", index=False)
    return str(root)


@pytest.mark.parametrize("path, shown", [
    ("ELSEWHERE/b.png", "ELSEWHERE/b.png"),                      # absolute, outside
    ("../elsewhere/b.png", "/../elsewhere/b.png"),                # climbs out
    ("images/../../elsewhere/b.png", "/../elsewhere/b.png"),
    ("images/out.png", "images/out.png (a symlink to ELSEWHERE/b.png)"),
    ("linked/b.png", "linked/b.png"),                           # a symlinked folder leading out
])
def test_paths_leaving_the_manifest_folder_are_refused_in_one_line(tree, path, shown):
    root, elsewhere = tree
    path, shown = path.replace("ELSEWHERE", str(elsewhere)), shown.replace("ELSEWHERE", str(elsewhere))
    source = _manifest(root, ["images/a.png", path])
    with pytest.raises(GalaxyRayError) as err:
        open_source(source).metadata()
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{root / 'manifest.csv'}: row 2 of its 'path' column names ")
    assert shown in message and "outside the table's folder" in message and "--allow-outside-paths" in message
    # the user who trusts the manifest says so, and the row then reads that file
    meta = open_source(source, allow_outside_paths=True).metadata()
    assert os.path.realpath(meta["_path"][1]) == str(elsewhere / "b.png")


def test_paths_inside_the_folder_are_read_whatever_their_spelling(tree):
    root, _ = tree
    paths = ["images/a.png", str(root / "images" / "a.png"), "images/../images/a.png", "images/in.png"]
    meta = open_source(_manifest(root, paths)).metadata()
    assert [os.path.realpath(p) for p in meta["_path"]] == [str(root / "images" / "a.png")] * 4


def test_s3_keys_outside_the_manifest_prefix_are_found():
    paths = ["s3://b/survey/images/a.png", "s3://b/other/x.png", "/etc/passwd",
             "s3://b/survey/../other/x.png", "s3://b/surveyX/a.png", None, "s3://b/survey/deep/er/c.fits"]
    assert [(row, why) for row, _, why in outside_paths(paths, "s3://b/survey")] == [
        (1, ""), (2, " (a local path)"), (3, DOTS), (4, "")]


DOTS = " (an S3 key with a '..' part, which S3 reads literally, not as the folder above)"


def test_s3_keys_with_dots_are_compared_as_s3_reads_them():
    # issue 33: these normalise to a path inside the folder, but S3 reads the key as written: another object,
    # or (the variant) another bucket altogether, since s3://x/../b/... is bucket x
    paths = ["s3://b/other/../survey/a.png", "s3://x/../b/survey/a.png", "s3://b/survey/a/../b.png",
             "s3://b/survey/./a.png", "s3://b/survey/..a.png"]
    assert [(row, why) for row, _, why in outside_paths(paths, "s3://b/survey")] == [(0, DOTS), (1, DOTS), (2, DOTS)]


def test_an_s3_manifest_naming_a_key_with_dots_is_refused_before_any_read(s3_bucket):
    """Real S3 (moto on loopback): the literal key ``other/../survey/images/a.png`` is another object than
    ``survey/images/a.png``; HEAD let the manifest name it and read that object into the cutout table."""
    from galaxy_ray.io import storage

    storage.write_bytes_atomic(f"{s3_bucket}/survey/images/a.png", noise_png(1))
    path = f"{s3_bucket}/other/../survey/images/a.png"
    storage.write_bytes_atomic(path, noise_png(2))  # the object S3 stores under the literal key
    assert storage.read_bytes(path) == noise_png(2) != storage.read_bytes(f"{s3_bucket}/survey/images/a.png")
    table = pd.DataFrame({"object_id": ["g0", "g1"], "path": ["images/a.png", path]}).to_csv(index=False)
    storage.write_bytes_atomic(f"{s3_bucket}/survey/manifest.csv", table.encode())
    with pytest.raises(GalaxyRayError) as err:
        open_source(f"{s3_bucket}/survey").metadata()
    assert str(err.value) == (
        f"{s3_bucket}/survey/manifest.csv: row 2 of its 'path' column names {path}{DOTS}, outside the table's "
        f"folder {s3_bucket}/survey; a table may name only files under its own folder: move the cutouts there, "
        "or pass --allow-outside-paths if you trust this table")


def test_pack_and_infer_refuse_before_any_work_and_name_the_flag(tree, capsys, tiny_checkpoint):
    root, elsewhere = tree
    source = _manifest(root, ["images/a.png", str(elsewhere / "b.png")])
    out = root.parent / "packed"
    assert cli_main(["pack", source, str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(elsewhere / "b.png") in err and "--allow-outside-paths" in err
    assert not out.exists()
    checkpoint = tiny_checkpoint(str(root.parent / "model.pt"))
    assert cli_main(["infer", "--checkpoint", checkpoint, "--source", source, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--allow-outside-paths" in err and not out.exists()


def test_a_file_that_is_no_image_is_named_never_shown(tmp_path, capsys, tiny_checkpoint):
    creds = tmp_path / "credentials.png"
    creds.write_text(SECRET + "\n")
    with pytest.raises(DecodeError) as err:
        decode_cutout(creds.read_bytes(), str(creds))
    assert str(err.value) == (f"{creds}: not JPEG, PNG, TIFF, FITS or .npy bytes (nor one of these in gzip, bzip2 "
                              "or xz); check that the file is a cutout")
    checkpoint = tiny_checkpoint(str(tmp_path / "model.pt"))
    assert cli_main(["predict", checkpoint, str(creds)]) == 1
    out = capsys.readouterr()
    assert out.out.startswith(f"{creds}: error: not JPEG, PNG") and SECRET[:8] not in out.out + out.err


def test_image_formats_are_told_from_their_first_bytes_even_when_wrapped():
    import bz2
    import gzip
    import lzma

    png = noise_png()
    assert [image_encoding(x) for x in (png, gzip.compress(png), bz2.compress(lzma.compress(png)),
                                        b"SIMPLE  =                    T", b"\xff\xd8\xff\xe0")] == [
        "png", "png", "png", "fits", "jpeg"]
    assert [image_encoding(x) for x in (SECRET.encode(), gzip.compress(SECRET.encode()), b"\x1f\x8b broken",
                                        gzip.compress(gzip.compress(gzip.compress(png))), b"", None)] == [None] * 6


def test_a_table_that_does_not_parse_is_named_not_quoted(tmp_path):
    (tmp_path / "manifest.csv").write_text(f"object_id,path\ng0,images/a.png\n{SECRET}\n")
    with pytest.raises(GalaxyRayError) as err:
        open_source(str(tmp_path)).metadata()
    assert str(err.value) == (f"{tmp_path / 'manifest.csv'}: not a readable CSV/Parquet table "
                              "(CSV parse error: Expected 2 columns, got 1)")


def test_a_gz2_catalogs_image_column_is_held_to_its_folder_too(tmp_path):
    from galaxy_ray import synthetic
    from galaxy_ray.data.sources import gz2_catalog

    root = tmp_path / "gz2"
    assert synthetic.main([str(root), "--n", "3", "--size", "32", "--format", "gz2-catalog", "--seed", "1"]) == 0
    (table_path,) = [p for p in root.glob("*.csv")]
    table = pd.read_csv(table_path, dtype={gz2_catalog.ID_COLUMN: str})
    (tmp_path / "stolen.jpg").write_bytes((root / table[gz2_catalog.IMAGE_COLUMN][0]).read_bytes())
    table.loc[2, gz2_catalog.IMAGE_COLUMN] = "../stolen.jpg"
    table.to_csv(table_path, index=False)
    with pytest.raises(GalaxyRayError) as err:
        open_source(str(root)).metadata()
    assert f"row 3 of its '{gz2_catalog.IMAGE_COLUMN}' column names {root}/../stolen.jpg" in str(err.value)
    assert len(open_source(str(root), allow_outside_paths=True).metadata()) == 3


def test_report_refuses_as_pack_does_and_takes_the_same_flag(tree, capsys):
    root, elsewhere = tree
    source = _manifest(root, ["images/a.png", str(elsewhere / "b.png")])
    out = root.parent / "report"
    assert cli_main(["report", source, str(out)]) == 2
    err = capsys.readouterr().err  # report's progress lines, then the refusal
    errors = [line for line in err.splitlines() if line.startswith("galaxy-ray: error:")]
    assert len(errors) == 1 and "Traceback" not in err
    assert str(elsewhere / "b.png") in errors[0] and "--allow-outside-paths" in errors[0]
    assert cli_main(["report", source, str(out), "--allow-outside-paths"]) == 0  # the flag the refusal names
    assert (out / "index.html").exists()
