"""The installed package, the torchvision compatibility step, storage and the CLI shell."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from galaxy_ray.io import storage
from galaxy_ray.tv import nms_reference, torchvision


def test_torchvision_resnet_forward_pass():
    model = torchvision.models.resnet18(weights=None, num_classes=5).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()


def test_nms_operator_exists_and_is_correct():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    keep = torch.ops.torchvision.nms(boxes, scores, 0.5)
    assert keep.tolist() == [3, 2]
    assert nms_reference(boxes, scores, 0.5).tolist() == keep.tolist()


_DYNAMO_CHECK = """
import sys
import torch
from galaxy_ray.tv import torchvision
print("dynamo_after_import", "torch._dynamo" in sys.modules)
# roi_align asks torch._dynamo whether it may compile: the deferred helper imports it then
image = torch.full((1, 1, 8, 8), 3.0)
pooled = torchvision.ops.roi_align(image, torch.tensor([[0.0, 1.0, 1.0, 5.0, 5.0]]), output_size=2)
print("roi_align", pooled.shape == (1, 1, 2, 2), bool(torch.allclose(pooled, torch.tensor(3.0))))
import torch._dynamo
print("dynamo_real", hasattr(torch._dynamo, "optimize"), hasattr(torch._dynamo.utils, "is_compile_supported"))
double = torch.compile(lambda x: 2 * x, backend="eager")
print("compile", bool(torch.equal(double(torch.arange(3.0)), torch.tensor([0.0, 2.0, 4.0]))))
"""


@pytest.mark.slow
def test_torchvision_import_leaves_dynamo_until_it_is_used():
    """A fresh process (as a model actor is): torchvision imports without torch._dynamo, which still works later."""
    out = subprocess.run([sys.executable, "-c", _DYNAMO_CHECK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["dynamo_after_import", "False", "roi_align", "True", "True",
                                  "dynamo_real", "True", "True", "compile", "True"]


def test_cli_lists_commands_and_rejects_unknown():
    out = subprocess.run([sys.executable, "-m", "galaxy_ray.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "infer" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "galaxy_ray.cli", "frobnicate"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "frobnicate" in bad.stderr


def test_storage_roundtrip_local_and_s3(tmp_path, s3_bucket):
    for root in (str(tmp_path), s3_bucket):
        uri = storage.join(root, "sub", "a.bin")
        storage.write_bytes_atomic(uri, b"hello")
        assert storage.read_bytes(uri) == b"hello"
        assert storage.exists(uri)
        assert storage.list_files(storage.join(root, "sub"), (".bin",)) == [uri]
        fs, path = storage.pyarrow_filesystem(storage.join(root, "t.parquet"))
        pq.write_table(pa.table({"x": np.arange(3)}), path, filesystem=fs)
        assert pq.read_table(path, filesystem=fs)["x"].to_pylist() == [0, 1, 2]
