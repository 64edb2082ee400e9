"""Provenance paths that mean the same on another machine (issue 21, item 16)."""

from __future__ import annotations

import pytest

from galaxy_ray.catalog.metadata import portable_uri


@pytest.mark.parametrize("uri, catalog, want", [
    # remote URIs stay as given (credentials in them do not)
    ("s3://bucket/runs/g10/model.pt", "/home/alice/catalog", "s3://bucket/runs/g10/model.pt"),
    ("https://user:secret@host.org/m/model.pt", "/data/cat", "https://host.org/m/model.pt"),
    ("s3://bucket/survey", "s3://bucket/catalog", "s3://bucket/survey"),
    # local files beside the catalog: relative to it
    ("/home/alice/proj/runs/g10/model.pt", "/home/alice/proj/catalog", "../runs/g10/model.pt"),
    ("/home/alice/proj/catalog/inputs/model.pt", "/home/alice/proj/catalog", "inputs/model.pt"),
    ("file:///srv/survey/shards", "/srv/catalog", "../survey/shards"),
    # nothing in common but the root, or a remote catalog: the file name alone
    ("/home/alice/models/model.pt", "/scratch/catalog", "model.pt"),
    ("/home/alice/survey/", "s3://bucket/catalog", "survey"),
])
def test_portable_forms(uri, catalog, want):
    assert portable_uri(uri, catalog) == want


def test_relative_and_home_paths_are_resolved_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home" / "u"))
    # as typed in tmp_path: `infer --checkpoint runs/a/model.pt --out out/catalog`
    assert portable_uri("runs/a/model.pt", "out/catalog") == "../../runs/a/model.pt"
    assert portable_uri("~/runs/x.pt", "~/cat") == "../runs/x.pt"
    assert portable_uri("~/runs/x.pt", str(tmp_path / "home" / "u" / "cat")) == "../runs/x.pt"


def test_never_absolute():
    for uri in ("/home/u/a.pt", "/a.pt", "/tmp/x/y/z.pt", "file:///home/u/a.pt", "~/a.pt"):
        for catalog in ("/tmp/x/cat", "/home/u/cat", "/", "s3://b/cat"):
            got = portable_uri(uri, catalog)
            assert got and not got.startswith(("/", "~")), (uri, catalog, got)
