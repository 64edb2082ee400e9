"""Issue 21, item 8: ``pack`` stores only images; any other listed file becomes an error row without its bytes."""

from __future__ import annotations

import gzip
import io
import json
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from astropy.io import fits

from galaxy_ray.data.sources import pack
from builders import noise_png

SECRET = "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG"
NOT_AN_IMAGE = "not JPEG, PNG, TIFF, FITS or .npy bytes (nor one of these in gzip, bzip2 or xz); its bytes were not packed"


def _fits_gz() -> bytes:
    buf = io.BytesIO()
    fits.PrimaryHDU(np.random.default_rng(0).normal(size=(3, 16, 16)).astype(np.float32)).writeto(buf)
    return gzip.compress(buf.getvalue())


def test_pack_keeps_the_bytes_of_images_only(ray_cluster, tmp_path):
    root, elsewhere = tmp_path / "survey", tmp_path / "home"
    (root / "images").mkdir(parents=True)
    elsewhere.mkdir()
    files = {"images/a.png": noise_png(1), "images/b.fits.gz": _fits_gz(),
             "images/error_page.png": b"<html><body>503 Service Unavailable</body></html>",
             "notes/credentials": SECRET.encode()}
    for name, data in files.items():
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_bytes(data)
    (elsewhere / "id_rsa").write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}\n")
    listed = [*files, str(elsewhere / "id_rsa")]  # the last one only because the user allows it
    pd.DataFrame({"object_id": [f"g{k}" for k in range(len(listed))], "path": listed}).to_csv(
        root / "manifest.csv", index=False)

    summary = pack(str(root), str(tmp_path / "packed"), rows_per_shard=3, allow_outside_paths=True, verbose=False)

    assert summary["rows"] == 5 and summary["shards"] == 2 and summary["not_images"] == 3
    assert json.loads((tmp_path / "packed" / "_pack.json").read_text())["complete"] is True
    shards = sorted(str(p) for p in (tmp_path / "packed").glob("part-*.parquet"))
    rows = {r["object_id"]: r for s in shards for r in pq.read_table(s).to_pylist()}
    assert sorted(rows) == [f"g{k}" for k in range(5)]
    paths = {f"g{k}": os.path.join(str(root), p) if not os.path.isabs(p) else p for k, p in enumerate(listed)}
    for oid in ("g0", "g1"):  # images: their bytes as they were, no error
        assert rows[oid]["image"] == files[listed[int(oid[1])]] and rows[oid]["error"] is None
    for oid in ("g2", "g3", "g4"):  # anything else: named, no bytes
        assert rows[oid]["image"] is None and rows[oid]["error"] == f"{paths[oid]}: {NOT_AN_IMAGE}"
    # no column of any shard holds a byte of the files that are not images
    for s in shards:
        table = pq.read_table(s)
        for column in table.column_names:
            for value in table[column].to_pylist():
                text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                assert "wJalrXUtnFEMI" not in text and "503 Service" not in text and "PRIVATE KEY" not in text
