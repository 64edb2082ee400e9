"""``jobs/gpu_check.sh`` runs, small, on the CPU, and its JSON line holds every figure it promises.

No timing is asserted: only that each stage ran (positive rates, the catalog's row count), that the
derived figures follow from the rates (ratios, GPU-hours for 8.7 million galaxies), and that the
GPU-only stage says why it was skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # starts a local Ray and runs galaxy-ray infer


def test_gpu_check_runs_small_on_the_cpu(tmp_path):
    import torch

    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHON=sys.executable, GPU_CHECK_N="48", GPU_CHECK_SIZE="32",
               GPU_CHECK_ARCHS="resnet18", GPU_CHECK_BATCH="16", GPU_CHECK_BATCHES="8,16", GPU_CHECK_ITERS="2",
               GPU_CHECK_COMPILE="0", GPU_CHECK_JPEGS="synthetic", GPU_CHECK_WORK=str(tmp_path / "work"),
               GPU_CHECK_BUDGET_S="1500", GPU_CHECK_LIMITS="300 300 600 300 120 10")
    env.pop("RAY_ADDRESS", None)  # its own local Ray, as on the GPU machine
    done = subprocess.run(["bash", str(ROOT / "jobs" / "gpu_check.sh"), str(out)], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=1700)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = out.read_text().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert json.loads(done.stdout.strip().splitlines()[-2]) == result  # printed too, before the closing line

    assert (result["n"], result["source_size"], result["arch"], result["image_size"]) == (48, 424, "resnet18", 32)
    assert "synthetic 424-px" in result["inputs"]
    assert set(result["model_alone"]) == {"resnet18_b8_eager", "resnet18_b16_eager"}
    rates = result["images_per_s"]
    assert rates["model_alone"] == result["model_alone"]["resnet18_b16_eager"] > 0
    assert rates["plain"] > 0 and rates["infer"] > 0
    assert rates["infer_after_startup"] is None or rates["infer_after_startup"] > 0
    assert result["ratio_infer_over_model"] == round(rates["infer"] / rates["model_alone"], 3)
    assert result["ratio_plain_over_model"] == round(rates["plain"] / rates["model_alone"], 3)
    for key, rate in rates.items():
        if rate:
            assert result["gpu_hours_8_7M"][key] == round(8.7e6 / rate / 3600, 3)
    infer = json.loads((tmp_path / "work" / "infer.json").read_text())
    assert infer["images"] == 48  # every cutout classified into the catalog
    if not torch.cuda.is_available():
        assert result["device"] == "cpu" and rates["gpu_decode"] is None
        assert result["stages"]["gpudecode"] == {"skipped": "no CUDA device"}
        assert result["gpu_util_mean"] is None
    assert set(result["stages"]) == {"gpudecode", "model_compiled"} - ({"gpudecode"} if rates["gpu_decode"] else set())
