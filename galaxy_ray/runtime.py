"""What every stage needs from the process it runs in: a Ray connection, the GPU
decision, and the package versions recorded as provenance.

Kept free of torch at import time, so that light commands can use it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import warnings
from typing import Any

from galaxy_ray import raycompat
from galaxy_ray.errors import GalaxyRayError

__all__ = ["GPU_CHOICES", "add_gpu_argument", "add_verbose_argument", "ensure_ray", "is_verbose", "package_versions",
           "quiet_worker_logs", "resolve_gpu", "say", "set_verbosity", "QuietConsoleFilter"]

#: The values of every command's ``--gpu`` flag.
GPU_CHOICES = ("auto", "yes", "no")

#: Packages whose versions shape a model or a catalog, recorded in checkpoints and catalogs.
PROVENANCE_PACKAGES = ("galaxy-ray", "torch", "torchvision", "ray", "numpy", "pyarrow", "astropy",
                       "pillow", "cdshealpix")


#: Set to "1" by :func:`set_verbosity`; worker processes of a local Ray inherit it.
VERBOSE_ENV = "GALAXY_RAY_VERBOSE"


def say(line: str) -> None:
    """Print one line of galaxy-ray's own progress to stderr, flushed (job logs show it at once)."""
    print(line, file=sys.stderr, flush=True)


def ensure_ray(min_cpus: int = 1, dashboard: bool = False) -> Any:
    """Connect to the cluster in ``RAY_ADDRESS`` (set by ``ray job submit``), else start a local Ray.

    The console stays quiet unless :func:`set_verbosity` asked for more: Ray's
    INFO lines and Ray Data's progress go only to the session's log files
    (``/tmp/ray/session_latest/logs``), warnings and errors still show.

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
    verbose = is_verbose()
    if not _is_terminal(sys.stdout):
        # Ray colours each worker's line prefix; in a pipe, a log file or a job log those are raw escape codes
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    _filter_ray_deprecations(verbose)
    raycompat.quiet_ray_data_logging(not verbose)
    # Worker output (training's progress lines) must reach the driver: keep log_to_driver.
    common: dict[str, Any] = {"log_to_driver": True, "logging_level": logging.INFO if verbose else logging.WARNING}
    address = os.environ.get("RAY_ADDRESS")
    _set_quiet_filter_on("ray", not verbose)
    if address:
        ray.init(address=address, **common)
    else:
        kwargs: dict[str, Any] = {"include_dashboard": dashboard}
        pinned: dict[str, str] = {}
        if dashboard:
            kwargs["dashboard_host"] = "127.0.0.1"
            kwargs["dashboard_port"] = _free_port()
            # Ray Train's placement-group cleaner asks the state API for "the" local Ray; with another
            # Ray instance on the machine it cannot tell which and prints a ConnectionError traceback.
            # The processes this start spawns inherit the environment: name this cluster's API server.
            pinned["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{kwargs['dashboard_port']}"
        with _environment(pinned):
            context = _start_local_ray(ray, num_cpus=max(os.cpu_count() or 1, int(min_cpus)), **common, **kwargs)
        if dashboard and context.dashboard_url:
            say(f"galaxy-ray: local Ray dashboard at http://{context.dashboard_url}")
    configure_ray_data(verbose)
    return ray


def _is_terminal(stream) -> bool:
    """True when ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _free_port() -> int:
    """A TCP port free on loopback now (for the local dashboard, so that its address is known before start)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """``os.environ`` with ``values`` set inside the block (the processes started there keep them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: Tries at starting a local Ray whose raylet misses Ray's registration deadline.
LOCAL_START_ATTEMPTS = 3


def _start_local_ray(ray, **init_kwargs):
    """``ray.init(address="local", ...)``, started afresh when its raylet does not register in time.

    Ray gives a new raylet a fixed 30 s to register with the GCS
    (``ray/_private/node.py``) and otherwise raises a bare ``Exception``,
    leaving the processes it started running.  A loaded machine misses that
    deadline now and then; the processes of a failed try (this process's
    children that the try started) are ended by their ids before the next.

    Raises
    ------
    GalaxyRayError
        :data:`LOCAL_START_ATTEMPTS` tries all timed out.
    """
    import psutil

    me = psutil.Process()
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        before = {p.pid for p in me.children(recursive=True)}
        try:
            return ray.init(address="local", **init_kwargs)
        except Exception as exc:  # noqa: BLE001  (Ray raises a plain Exception for this)
            if "timed out during startup" not in str(exc):
                raise
            _end_processes([p for p in me.children(recursive=True) if p.pid not in before])
            ray.shutdown()
            if attempt == LOCAL_START_ATTEMPTS:
                raise GalaxyRayError(
                    f"could not start a local Ray: its raylet missed Ray's 30 s deadline to register, "
                    f"{LOCAL_START_ATTEMPTS} times (is the machine overloaded?); retry when it is quieter, or "
                    "start Ray yourself (`ray start --head`) and set RAY_ADDRESS") from None
            say(f"galaxy-ray: the local Ray did not start in time (try {attempt} of {LOCAL_START_ATTEMPTS}); "
                "starting it again")


def _end_processes(procs) -> None:
    """Kill these processes (``psutil.Process``, by id) and wait for them."""
    import psutil

    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` / ``-v``: show Ray's INFO logs and Ray Data's own progress on the console."""
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="also show Ray's own INFO logs and Ray Data's progress (default: they go to "
                             "Ray's log files, /tmp/ray/session_latest/logs)")


def set_verbosity(verbose: bool) -> None:
    """Quiet console (False, the default) or Ray's own logs too (True); call before :func:`ensure_ray`.

    Sets :data:`VERBOSE_ENV` for processes started later, and hides the
    deprecation warnings that Ray's code raises against Ray's own calls
    (not ours: a warning attributed to galaxy-ray's code still shows).
    """
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    _filter_ray_deprecations(verbose)
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        logging.getLogger("ray").setLevel(logging.INFO if verbose else logging.WARNING)
        configure_ray_data(verbose)


def _filter_ray_deprecations(verbose: bool) -> None:
    warnings.filterwarnings("default" if verbose else "ignore", category=DeprecationWarning, module=r"ray(\.|$)")


def is_verbose() -> bool:
    """Whether :func:`set_verbosity` (here or in the process that started this one) asked for Ray's logs."""
    return os.environ.get(VERBOSE_ENV, "0") == "1"


#: Ray's console warnings that need nothing from a galaxy-ray user: Ray Data's note that its bars
#: are off (galaxy-ray turned them off), and the note that a new local cluster uses token
#: authentication (Ray's secure default, on a cluster that galaxy-ray started for this process), and the note
#: that a bar's operator name is shortened.
_NOTICES = ("Progress bars disabled", "Token authentication is enabled for this Ray cluster",
            "Truncating long operator name")


class QuietConsoleFilter(logging.Filter):
    """Console filter: drops Ray's records below WARNING, and Ray's :data:`_NOTICES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and _from_ray(record):
            return False
        return not str(record.msg).startswith(_NOTICES)


def _from_ray(record: logging.LogRecord) -> bool:
    # Ray Train logs some lines under the file's path rather than a "ray." name.
    return record.name == "ray" or record.name.startswith("ray.") or f"{os.sep}ray{os.sep}" in record.pathname


def configure_ray_data(verbose: bool) -> None:
    """Ray Data's console: INFO lines and its own progress bars only when ``verbose``.

    Its records still reach ``ray-data.log`` in the session's log folder; galaxy-ray's
    own bar (:mod:`galaxy_ray.progress`) is the one to watch.  Applies to datasets
    created after the call (a dataset copies the current ``DataContext``).
    """
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = bool(verbose)
    _set_quiet_filter_on("ray.data", not verbose)


def _set_quiet_filter(handler: logging.Handler, quiet: bool) -> None:
    for f in [f for f in handler.filters if isinstance(f, QuietConsoleFilter)]:
        handler.removeFilter(f)
    if quiet:
        handler.addFilter(QuietConsoleFilter())


def _set_quiet_filter_on(logger: str | None, quiet: bool) -> None:
    for handler in logging.getLogger(logger).handlers:
        if not raycompat.is_log_file_handler(handler):
            _set_quiet_filter(handler, quiet)


def quiet_worker_logs(verbose: bool | None = None) -> None:
    """In a Ray worker (e.g. a training loop): keep Ray's INFO records off the console.

    Ray Train's per-rank ``Reporting training result ...`` lines are INFO
    records on the worker's root logger; this filters Ray's records below
    WARNING out of every console handler of the root and ``ray`` loggers, so
    they stay in Ray Train's log files but no longer stream to the driver.
    ``verbose`` None reads :func:`is_verbose`.
    """
    quiet = not (is_verbose() if verbose is None else verbose)
    for name in (None, "ray", "ray.train"):
        _set_quiet_filter_on(name, quiet)


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
