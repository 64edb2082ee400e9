"""The shared owners: resumable outputs, file layout, the GPU flag, one-line errors."""

from __future__ import annotations

import argparse
import os

import pytest

from galaxy_ray import runtime
from galaxy_ray.errors import GalaxyRayError, error_reason, one_line
from galaxy_ray.io import layout, resume, storage


def test_scan_output_sorts_published_parts_from_a_killed_runs_temporaries(tmp_path, s3_bucket):
    for root in (str(tmp_path), s3_bucket):
        storage.write_bytes_atomic(storage.join(root, layout.part_name(0)), b"a")
        storage.write_bytes_atomic(storage.join(root, "part-r10-19.parquet"), b"b")
        storage.write_bytes_atomic(storage.join(root, layout.CATALOG_SUMMARY), b"{}")
        # What a process killed inside write_bytes_atomic leaves: the name plus the temp marker.
        killed = storage.join(root, layout.part_name(1) + storage.TEMP_MARKER + "0123abcd")
        storage.write_bytes_atomic(killed, b"half")
        state = resume.scan_output(root)
        assert state.published == {"part-00000.parquet", "part-r10-19.parquet"}
        assert state.indices == {0}
        assert state.temps == [killed]
        assert resume.remove_temps(state) == 1
        assert not storage.exists(killed) and storage.exists(storage.join(root, "part-r10-19.parquet"))


def test_scan_output_of_a_missing_directory_is_empty(tmp_path):
    state = resume.scan_output(str(tmp_path / "nothing"))
    assert state.published == set() and state.temps == []


def test_write_bytes_atomic_leaves_no_temporary_behind(tmp_path):
    storage.write_bytes_atomic(str(tmp_path / "x.parquet"), b"data")
    assert os.listdir(tmp_path) == ["x.parquet"]
    assert storage.is_temp_file(f"{tmp_path}/x.parquet{storage.TEMP_MARKER}ff") and not storage.is_temp_file("x.parquet")


def test_checkpoint_file_takes_a_run_directory_and_names_a_missing_one(tmp_path):
    (tmp_path / layout.MODEL).write_bytes(b"x")
    assert layout.checkpoint_file(str(tmp_path)) == str(tmp_path / layout.MODEL)
    with pytest.raises(GalaxyRayError, match="no such checkpoint"):
        layout.checkpoint_file(str(tmp_path / "missing.pt"))


@pytest.mark.parametrize("flag, gpus, expected", [
    ("auto", 0, False), ("auto", 2, True), ("yes", 1, True), ("no", 4, False), (True, 1, True), ("false", 1, False),
])
def test_resolve_gpu(flag, gpus, expected):
    assert runtime.resolve_gpu(flag, gpus) is expected


def test_gpu_yes_without_gpus_is_one_clear_error():
    with pytest.raises(GalaxyRayError, match="--gpu yes: the Ray cluster has no GPUs"):
        runtime.resolve_gpu("yes", 0)
    with pytest.raises(GalaxyRayError, match="--gpu 'sometimes'"):
        runtime.resolve_gpu("sometimes", 0)


def test_gpu_flag_has_one_spelling_with_an_alias():
    parser = argparse.ArgumentParser()
    runtime.add_gpu_argument(parser, "one GPU per worker")
    assert parser.parse_args([]).gpu == "auto"
    assert parser.parse_args(["--use-gpu", "true"]).gpu == "yes"
    assert parser.parse_args(["--gpu", "no"]).gpu == "no"
    with pytest.raises(SystemExit):
        parser.parse_args(["--gpu", "maybe"])


def test_one_line_keeps_the_first_non_empty_line():
    assert one_line(ValueError("\n  bad header\nsecond line")) == "bad header"
    assert one_line(KeyError()) == "KeyError"


def test_package_versions_name_what_shapes_a_prediction():
    versions = runtime.package_versions()
    assert {"torch", "ray", "numpy", "python"} <= set(versions)


@pytest.mark.parametrize("message, reason", [
    ("s3://b/a.png: not JPEG, PNG, FITS or .npy bytes (nor TIFF); starts with b'junk'", "not JPEG, PNG, FITS or .npy bytes"),
    ("/x/b.png: no signal: blank or outside the survey footprint (all zero)", "no signal"),
    ("d.png: corrupt or truncated PNG (image file is truncated); re-fetch the cutout", "corrupt or truncated PNG"),
    ("x.fits: DecompressionBombError: Image size (182250000 pixels) exceeds limit", "DecompressionBombError"),
    ("no colon at all", "no colon at all"),
])
def test_error_reason_drops_the_cutout_and_the_detail(message, reason):
    assert error_reason(message) == reason
