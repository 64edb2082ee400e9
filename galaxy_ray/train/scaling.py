"""How many Ray Train workers, and how many torch threads each: ``--workers auto`` and ``--workers N``.

The rule of ``--workers auto`` (:func:`auto_layout`):

* a cluster with GPUs: one worker per GPU, each with one CPU and one torch
  thread; every other CPU decodes cutouts for the GPUs;
* a CPU-only cluster: on each node of C CPUs, ``max(1, C // 2)`` workers of
  one torch thread each; the other half of the CPUs is left to Ray Data's
  decoding and the driver.  A local Ray that galaxy-ray starts for it gets at
  least :data:`AUTO_LOCAL_CPUS` logical CPUs (as ``--workers 2`` always had).

Data-parallel processes of one torch thread each scale best: a small
ResNet step is too small to split over intra-op threads, and a thread that
loses its core stalls the others at each barrier, while a worker pays only
a gradient all-reduce per step.  The measurements behind the rule are in
``docs/measurements.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from galaxy_ray.errors import GalaxyRayError

__all__ = ["AUTO", "AUTO_LOCAL_CPUS", "WorkerLayout", "auto_layout", "cluster_nodes", "parse_workers", "worker_layout"]

#: The value of ``--workers`` that sizes the run to the cluster.
AUTO = "auto"

#: Logical CPUs of a local Ray started for ``--workers auto``: two workers and two decoding CPUs on a small machine.
AUTO_LOCAL_CPUS = 4

#: Ray's resource key of the head node (every node also has ``node:<ip>``).
_HEAD_KEY = "node:__internal_head__"


@dataclass(frozen=True)
class WorkerLayout:
    """Ray Train workers of a run and what each holds.

    Attributes
    ----------
    workers : int
        Number of Ray Train workers.
    threads : int
        Torch intra-op threads per worker; also the CPUs each worker reserves.
    use_gpu : bool
        One GPU per worker.
    rule : str
        Where the numbers came from, for the start line ("--workers 2", or the auto rule).
    """

    workers: int
    threads: int
    use_gpu: bool
    rule: str

    def resources_per_worker(self) -> dict[str, float]:
        """``ScalingConfig(resources_per_worker=...)``: the CPUs (and GPU) each worker reserves."""
        return {"CPU": float(self.threads), **({"GPU": 1.0} if self.use_gpu else {})}

    def describe(self) -> str:
        """``2 workers x 1 thread (GPU; auto: one worker per GPU)``, for the start line."""
        plural = lambda n, word: f"{n} {word}{'' if n == 1 else 's'}"  # noqa: E731
        return (f"{plural(self.workers, 'worker')} x {plural(self.threads, 'thread')} "
                f"({'GPU' if self.use_gpu else 'CPU'}; {self.rule})")


def cluster_nodes(resources: Mapping[str, Any]) -> int:
    """Nodes of a cluster from :func:`ray.cluster_resources` (one ``node:<ip>`` key each), at least 1."""
    return max(1, sum(1 for key in resources if str(key).startswith("node:") and key != _HEAD_KEY))


def auto_layout(resources: Mapping[str, Any], use_gpu: bool) -> WorkerLayout:
    """The layout ``--workers auto`` means on a cluster (the rule of the module doc).

    Parameters
    ----------
    resources : mapping
        :func:`ray.cluster_resources` (keys ``CPU``, ``GPU``, ``node:<ip>``, ...).
    use_gpu : bool
        Whether the run trains on GPUs (:func:`galaxy_ray.runtime.resolve_gpu`).

    Returns
    -------
    WorkerLayout
        GPUs: ``int(GPU)`` workers x 1 thread.  CPU only, N nodes of C CPUs in
        all: ``N * max(1, (C // N) // 2)`` workers x 1 thread.

    Raises
    ------
    GalaxyRayError
        ``use_gpu`` on a cluster without a whole GPU.
    """
    if use_gpu:
        gpus = int(float(resources.get("GPU", 0)))
        if gpus < 1:
            raise GalaxyRayError("--workers auto with --gpu: the Ray cluster has no GPU; use --gpu no")
        return WorkerLayout(gpus, 1, True, "auto: one worker per GPU")
    nodes = cluster_nodes(resources)
    per_node = int(float(resources.get("CPU", 1))) // nodes
    workers = max(1, per_node // 2)
    where = "" if nodes == 1 else f" on each of {nodes} nodes"
    return WorkerLayout(nodes * workers, 1, False,
                        f"auto: {workers} of {per_node} CPUs{where} train, the rest decode")


def parse_workers(value: Any) -> int | str:
    """A ``--workers`` value: :data:`AUTO` or a whole number of at least 1.

    Raises
    ------
    GalaxyRayError
        Anything else, in one line naming the flag.
    """
    if str(value).strip().lower() == AUTO:
        return AUTO
    try:
        n = int(str(value).strip())
    except ValueError:
        raise GalaxyRayError(f"--workers {value!r}: 'auto' or a number of workers") from None
    if n < 1:
        raise GalaxyRayError(f"--workers {value!r}: must be at least 1")
    return n


def worker_layout(workers: int | str, resources: Mapping[str, Any], use_gpu: bool) -> WorkerLayout:
    """The layout of a run: :func:`auto_layout` for ``auto``, else ``workers`` x 1 thread (Ray's default)."""
    value = parse_workers(workers)
    if value == AUTO:
        return auto_layout(resources, use_gpu)
    return WorkerLayout(int(value), 1, use_gpu, f"--workers {value}")
