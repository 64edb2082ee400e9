"""What every stage needs from the process it runs in: a Ray connection, the GPU
decision, and the package versions recorded as provenance.

Kept free of torch at import time, so that light commands can use it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from galaxy_ray.errors import GalaxyRayError

__all__ = ["GPU_CHOICES", "add_gpu_argument", "ensure_ray", "package_versions", "resolve_gpu", "say"]

#: The values of every command's ``--gpu`` flag.
GPU_CHOICES = ("auto", "yes", "no")

#: Packages whose versions shape a model or a catalog, recorded in checkpoints and catalogs.
PROVENANCE_PACKAGES = ("galaxy-ray", "torch", "torchvision", "ray", "numpy", "pyarrow", "astropy",
                       "pillow", "cdshealpix")


def say(line: str) -> None:
    """Print one line of galaxy-ray's own progress to stderr, flushed (job logs show it at once)."""
    print(line, file=sys.stderr, flush=True)


def ensure_ray(min_cpus: int = 1, dashboard: bool = False) -> Any:
    """Connect to the cluster in ``RAY_ADDRESS`` (set by ``ray job submit``), else start a local Ray.

    Parameters
    ----------
    min_cpus : int
        A local Ray gets at least this many logical CPUs (and at least the machine's
        cores), so that Ray Data tasks can run beside training workers on a small machine.
    dashboard : bool
        Start the dashboard on loopback.  Ray Train needs it: its placement-group
        cleaner asks the state API whether the run is alive, and without it logs a
        warning every second.  Inference skips it to start faster.

    Returns
    -------
    module
        The ``ray`` module, initialised.
    """
    import ray

    if ray.is_initialized():
        return ray
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
        return ray
    kwargs: dict[str, Any] = {"include_dashboard": dashboard}
    if dashboard:
        kwargs["dashboard_host"] = "127.0.0.1"
    context = ray.init(address="local", num_cpus=max(os.cpu_count() or 1, int(min_cpus)), log_to_driver=True,
                       **kwargs)
    if dashboard and context.dashboard_url:
        say(f"galaxy-ray: local Ray dashboard at http://{context.dashboard_url}")
    return ray


def add_gpu_argument(parser: argparse.ArgumentParser, help_: str) -> None:
    """``--gpu auto|yes|no`` (``--use-gpu`` is accepted as the same flag)."""
    parser.add_argument("--gpu", "--use-gpu", dest="gpu", type=_gpu_choice, default="auto",
                        help=f"{help_}: auto (default: when the cluster has GPUs), yes or no")


def _gpu_choice(text: str) -> str:
    value = {"true": "yes", "1": "yes", "false": "no", "0": "no"}.get(str(text).lower(), str(text).lower())
    if value not in GPU_CHOICES:
        raise argparse.ArgumentTypeError(f"{text!r}: one of auto, yes, no")
    return value


def resolve_gpu(flag: str | bool, cluster_gpus: float) -> bool:
    """Whether to use GPUs, from a ``--gpu`` value and the GPUs the cluster has.

    Raises
    ------
    GalaxyRayError
        ``flag`` is not auto/yes/no, or is yes on a cluster without GPUs.
    """
    if isinstance(flag, bool):
        flag = "yes" if flag else "no"
    try:
        value = _gpu_choice(flag)
    except argparse.ArgumentTypeError:
        raise GalaxyRayError(f"--gpu {flag!r}: one of auto, yes, no") from None
    if value == "auto":
        return cluster_gpus >= 1
    if value == "yes" and cluster_gpus < 1:
        raise GalaxyRayError("--gpu yes: the Ray cluster has no GPUs; use --gpu auto or no")
    return value == "yes"


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PROVENANCE_PACKAGES`, and Python's."""
    from importlib import metadata

    versions = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    versions["python"] = sys.version.split()[0]
    return versions
