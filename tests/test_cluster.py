"""The cluster configs parse, run the pinned Ray, and name entry points that exist."""

from __future__ import annotations

import importlib.metadata as md
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
RAY_VERSION = md.version("ray")


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _images(node) -> list[str]:
    """Every `image:` value anywhere in a parsed YAML document."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "image" and isinstance(v, str)]
        return found + [i for v in node.values() for i in _images(v)]
    if isinstance(node, list):
        return [i for v in node for i in _images(v)]
    return []


def _rayjobs() -> list[dict]:
    return [d for p in sorted(CLUSTER.glob("kuberay-*.yaml")) for d in _docs(p) if d.get("kind") == "RayJob"]


def test_every_yaml_parses():
    files = sorted(CLUSTER.glob("*.yaml"))
    assert {f.name for f in files} >= {"aws.yaml", "kuberay-train.yaml", "kuberay-infer.yaml", "runtime_env.yaml"}
    for f in files:
        assert _docs(f), f"{f.name} is empty"


def test_pyproject_pins_the_installed_ray():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ray_dep = next(d for d in deps if d.startswith("ray["))
    assert ray_dep.endswith(f"=={RAY_VERSION}")


def test_every_image_runs_the_pinned_ray():
    images = _images(_docs(CLUSTER / "aws.yaml")) + [i for job in _rayjobs() for i in _images(job)]
    assert len(images) >= 5
    for image in images:
        assert re.fullmatch(rf"rayproject/ray:{re.escape(RAY_VERSION)}-py3\d+-gpu", image), image
    for job in _rayjobs():
        assert job["spec"]["rayClusterSpec"]["rayVersion"] == RAY_VERSION


def test_gpu_worker_groups_request_gpus_and_tolerate_the_taint():
    for job in _rayjobs():
        groups = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
        gpu = [g for g in groups if "gpu" in g["groupName"]]
        assert gpu, job["metadata"]["name"]
        for g in gpu:
            pod = g["template"]["spec"]
            res = pod["containers"][0]["resources"]
            assert res["limits"]["nvidia.com/gpu"] == res["requests"]["nvidia.com/gpu"] == "1"
            assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])


def test_aws_config_has_head_gpu_and_cpu_worker_types():
    cfg = _docs(CLUSTER / "aws.yaml")[0]
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    assert {"gpu_worker", "cpu_worker"} <= set(types)
    for name in ("gpu_worker", "cpu_worker"):
        assert types[name]["min_workers"] <= types[name]["max_workers"]


def _requirements(lines) -> dict[str, str]:
    return {re.split(r"[\[<>=]", r, maxsplit=1)[0].lower(): r for r in lines}


def test_runtime_env_installs_what_pyproject_needs():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {k: v for k, v in _requirements(deps).items() if k != "ray"}
    assert _requirements(_docs(CLUSTER / "runtime_env.yaml")[0]["pip"]) == wanted
    for job in _rayjobs():
        env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
        assert _requirements(env["pip"]) == wanted, job["metadata"]["name"]
        assert env["working_dir"].startswith("s3://")


def _entrypoint_scripts() -> list[str]:
    scripts = []
    for job in _rayjobs():
        argv = shlex.split(job["spec"]["entrypoint"])
        assert argv[0] == "python"
        scripts.append(argv[1])
    return scripts


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted({*_entrypoint_scripts(), *(f"jobs/{p.name}" for p in (ROOT / "jobs").glob("*.py"))}))
def test_entrypoint_exists_and_answers_help(script):
    path = ROOT / script
    assert path.exists(), script
    out = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage" in out.stdout.lower()
