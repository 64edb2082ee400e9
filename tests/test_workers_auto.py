"""``--workers auto``: the documented rule on given cluster resources, and on the real local Ray."""

from __future__ import annotations

import pytest

from galaxy_ray import runtime
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.synthetic import synthesize
from galaxy_ray.train import config_from_args, make_trainer, plan_run
from galaxy_ray.train.scaling import AUTO, auto_layout, cluster_nodes, parse_workers, worker_layout

HEAD = "node:__internal_head__"


def _nodes(*ips: str) -> dict[str, float]:
    return {HEAD: 1.0, **{f"node:{ip}": 1.0 for ip in ips}}


@pytest.mark.parametrize(
    "resources, workers",
    [
        ({"CPU": 2.0, **_nodes("10.0.0.1")}, 1),     # one CPU trains, one decodes
        ({"CPU": 3.0, **_nodes("10.0.0.1")}, 1),     # 3 // 2
        ({"CPU": 4.0, **_nodes("10.0.0.1")}, 2),     # galaxy-ray's local Ray on a 2-core machine
        ({"CPU": 16.0, **_nodes("10.0.0.1")}, 8),
        ({"CPU": 1.0, **_nodes("10.0.0.1")}, 1),     # never fewer than one worker
        ({"CPU": 32.0, **_nodes("10.0.0.1", "10.0.0.2")}, 16),   # 2 nodes x (16 // 2)
        ({"CPU": 24.0, **_nodes("a", "b", "c")}, 12),           # 3 nodes x (8 // 2)
        ({"CPU": 6.0}, 3),                           # no node keys: one node
    ],
)
def test_auto_on_cpu_clusters(resources, workers):
    layout = auto_layout(resources, use_gpu=False)
    assert (layout.workers, layout.threads, layout.use_gpu) == (workers, 1, False)
    assert layout.resources_per_worker() == {"CPU": 1.0}
    assert layout.describe().startswith(f"{workers} worker{'s' if workers > 1 else ''} x 1 thread (CPU; auto: ")


def test_auto_with_gpus_is_one_worker_per_gpu():
    layout = auto_layout({"CPU": 32.0, "GPU": 4.0, **_nodes("10.0.0.1", "10.0.0.2")}, use_gpu=True)
    assert (layout.workers, layout.threads, layout.use_gpu) == (4, 1, True)
    assert layout.resources_per_worker() == {"CPU": 1.0, "GPU": 1.0}
    assert layout.describe() == "4 workers x 1 thread (GPU; auto: one worker per GPU)"
    # GPUs present but not used (--gpu no): the CPU rule
    assert auto_layout({"CPU": 8.0, "GPU": 1.0, **_nodes("h")}, use_gpu=False).workers == 4
    with pytest.raises(GalaxyRayError, match="no GPU"):
        auto_layout({"CPU": 8.0, "GPU": 0.5}, use_gpu=True)


def test_a_number_of_workers_keeps_one_cpu_each():
    layout = worker_layout(3, {"CPU": 16.0}, use_gpu=False)
    assert (layout.workers, layout.threads) == (3, 1)
    assert layout.describe() == "3 workers x 1 thread (CPU; --workers 3)"
    assert worker_layout("2", {"CPU": 2.0, "GPU": 2.0}, use_gpu=True).resources_per_worker() == {"CPU": 1.0, "GPU": 1.0}
    assert cluster_nodes({HEAD: 1.0}) == 1 and cluster_nodes(_nodes("a", "b")) == 2


def test_the_flag_and_the_config_file(tmp_path):
    assert parse_workers("AUTO") == AUTO and parse_workers(" 4 ") == 4
    for bad, why in (("0", "at least 1"), ("two", "'auto' or a number"), ("1.5", "'auto' or a number")):
        with pytest.raises(GalaxyRayError, match=why):
            parse_workers(bad)
    assert config_from_args(["--source", str(tmp_path)]).workers == AUTO  # the default
    assert config_from_args(["--source", str(tmp_path), "--workers", "2"]).workers == 2
    config = tmp_path / "run.yaml"
    config.write_text(f"source: {tmp_path}\nworkers: auto\n")
    assert config_from_args(["--config", str(config)]).workers == AUTO
    config.write_text(f"source: {tmp_path}\nworkers: 3\n")
    assert config_from_args(["--config", str(config)]).workers == 3
    with pytest.raises(GalaxyRayError, match="--workers"):
        config_from_args(["--source", str(tmp_path), "--workers", "many"])


def test_auto_on_the_real_local_cluster(ray_cluster, tmp_path):
    """The session's local Ray has 4 logical CPUs on one node, no GPU: 4 // 2 = 2 workers x 1 thread."""
    resources = ray_cluster.cluster_resources()
    assert resources["CPU"] == 4.0 and cluster_nodes(resources) == 1
    layout = auto_layout(resources, use_gpu=False)
    assert (layout.workers, layout.threads) == (2, 1)
    assert layout.describe() == "2 workers x 1 thread (CPU; auto: 2 of 4 CPUs train, the rest decode)"
    # what `galaxy-ray train --workers auto` plans on it, and the trainer it builds
    source = synthesize(str(tmp_path / "src"), 20, size=16, fmt="shards", seed=5, workers=1)
    cfg = config_from_args(["--source", source, "--image-size", "16", "--gpu", "no", "--storage", str(tmp_path / "runs")])
    plan = plan_run(cfg)
    assert (plan.layout.workers, plan.layout.threads, plan.use_gpu) == (2, 1, False)
    config = plan.worker
    assert config.torch_threads == 1 and config.n_train == plan.summary.n_train
    assert config.progress == "lines"  # pytest captures stderr: not a terminal
    assert config.verbose == runtime.is_verbose()
    scaling = make_trainer(plan).scaling_config
    assert scaling.num_workers == 2 and scaling.resources_per_worker == {"CPU": 1.0}
