"""What the inference benchmarks share: real-size inputs, the plain-script baseline, and a process-tree watcher.

- **Inputs.**  :func:`jpeg_pool` gives the encoded cutouts a benchmark packs: real 424-px JPEGs
  as they are (the 2,000 Kaggle Galaxy Zoo cutouts of ``/work/shared/data/kaggle_gz_spirals``),
  real JPEGs of another side resampled (Lanczos, quality 90) to ``side``, or, where no real
  cutouts are at hand (the GPU machine), synthetic galaxies encoded as JPEG; :func:`write_shards`
  packs them, cycled, into shards of the contract in ``docs/contracts.md`` (the cutout table
  plus ``error``, zstd Parquet) with a pool of processes.  Model-sized PNG shards (``side`` 0,
  the older mode that skips the resize) are written the same way.
- **The baseline.**  :func:`plain_loop` runs ``jobs/plain_loop.py`` (Pillow, torchvision, a
  DataLoader; none of galaxy-ray's code) in a subprocess and returns its JSON figures.
- **Watching.**  :func:`tree_pss_bytes` and :class:`PeakMemory` (Pss of this process's tree),
  :class:`RunWatcher` (a subprocess's tree: RSS, Pss, CPU seconds, published catalog parts,
  Ray's spill directory).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: Real 424-px JPEG cutouts (Kaggle Galaxy Zoo), the default source of real-size inputs.
REAL_JPEGS = ("/work/shared/data/kaggle_gz_spirals/images", str(ROOT.parent / "shared/data/kaggle_gz_spirals/images"))

# --------------------------------------------------------------------------- inputs


def synth_pixels(rng: np.random.Generator, n: int, size: int, noise: float = 0.03) -> np.ndarray:
    """``n`` elliptical exponential blobs with Gaussian noise, uint8 (n, size, size, 3), vectorised."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2.0
    angle = rng.uniform(0, np.pi, n).astype(np.float32)[:, None, None]
    q = rng.uniform(0.3, 1.0, n).astype(np.float32)[:, None, None]
    scale = rng.uniform(0.08, 0.25, n).astype(np.float32)[:, None, None] * size
    c, s = np.cos(angle), np.sin(angle)
    u = xx * c + yy * s
    v = (-xx * s + yy * c) / q
    r = np.sqrt(u * u + v * v) / scale
    light = np.exp(-r)[..., None] * rng.uniform(0.5, 1.0, (n, 1, 1, 3)).astype(np.float32)
    light += rng.normal(0.0, noise, light.shape).astype(np.float32)
    return (np.clip(light, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def default_jpegs() -> str | None:
    """The first folder of :data:`REAL_JPEGS` that exists, or None."""
    return next((d for d in REAL_JPEGS if Path(d).is_dir()), None)


def jpeg_pool(side: int, jpegs: str | None, count: int = 2000, seed: int = 0, quality: int = 90) -> tuple[list, str]:
    """Encoded ``side``-px JPEG cutouts to cycle through, and where they came from.

    Files of ``jpegs`` (``*.jpg``, name order, at most ``count``) already ``side`` x ``side``
    are taken byte for byte; others are resampled (Lanczos) and re-encoded at ``quality``.
    Without ``jpegs``, ``min(count, 256)`` synthetic galaxies (:func:`synth_pixels`, noise 0.02,
    about the byte count of a real cutout) are encoded at ``quality``.
    """
    from PIL import Image

    def encode(im) -> bytes:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
        return buf.getvalue()

    if jpegs:
        files = sorted(Path(jpegs).glob("*.jpg"))[:count]
        if not files:
            raise SystemExit(f"--jpegs {jpegs}: no .jpg files there; point it at a folder of cutout JPEGs")
        pool = []
        for f in files:
            with Image.open(f) as im:
                same = im.size == (side, side) and im.format == "JPEG" and im.mode == "RGB"
                pool.append(f.read_bytes() if same else encode(im.convert("RGB").resize((side, side), Image.LANCZOS)))
        return pool, f"{len(pool)} real JPEGs from {jpegs}"
    rng = np.random.default_rng(seed)
    pool = [encode(Image.fromarray(p)) for p in synth_pixels(rng, min(count, 256), side, noise=0.02)]
    return pool, f"{len(pool)} synthetic {side}-px galaxies (JPEG quality {quality})"


_POOL: dict[str, list] = {}


def _pool_from(path: str) -> list:
    if path not in _POOL:  # once per pool process
        import pyarrow.parquet as pq

        _POOL[path] = pq.read_table(path).column("image").to_pylist()
    return _POOL[path]


def write_shard(args: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Write shard ``k`` (runs in a pool process); its (ra, dec) in degrees.

    ``args`` = (out, k, first, n, seed, pool_path, model_size, id_prefix): rows take the pool's
    images cycled by row number; with ``pool_path`` None, ``model_size``-px PNGs written as
    ``pack --image-size`` stores them (with its provenance, so they skip the resize).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from galaxy_ray.data.sources import CUTOUT_SCHEMA
    from galaxy_ray.data.sources.shards import PACK_METADATA_KEY, PIXELS_KEY
    from galaxy_ray.io import layout, storage
    from galaxy_ray.schema import CatalogColumns as C

    out, k, first, n, seed, pool_path, model_size, prefix = args
    rng = np.random.default_rng([seed, k])
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))  # uniform on the sphere
    if pool_path:
        pool = _pool_from(pool_path)
        images = [pool[i % len(pool)] for i in range(first, first + n)]
    else:
        images = []
        for rgb in synth_pixels(rng, n, model_size):
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="PNG", compress_level=6)  # as pack --image-size stores them
            images.append(buf.getvalue())
    table = pa.Table.from_pydict({
        C.OBJECT_ID: [f"{prefix}-{i:09d}" for i in range(first, first + n)], C.RA: ra, C.DEC: dec, C.IMAGE: images,
        C.SOURCE: [f"{prefix}(seed={seed})[{i}]" for i in range(first, first + n)],
        C.VOTES: pa.nulls(n, pa.list_(pa.float32())), C.LABEL: pa.nulls(n, pa.string()),
    }, schema=CUTOUT_SCHEMA).append_column(C.ERROR, pa.nulls(n, pa.string()))
    provenance = {"source": f"{prefix}(seed={seed})", "format": "jpeg" if pool_path else "synthetic", "shard": k,
                  "first_row": first, "rows": n}
    if not pool_path:
        provenance[PIXELS_KEY] = {"image_size": model_size, "crop_fraction": 1.0, "stored_size": model_size}
    table = table.replace_schema_metadata({PACK_METADATA_KEY: json.dumps(provenance).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    storage.write_bytes_atomic(os.path.join(out, layout.part_name(k)), sink.getvalue().to_pybytes())
    return ra, dec


def write_shards(out: str, n: int, rows_per_shard: int, *, seed: int, workers: int, source_size: int,
                 model_size: int, jpegs: str | None, id_prefix: str = "bench") -> dict:
    """Pack ``n`` cutouts into ``out``: ``source_size``-px JPEGs (:func:`jpeg_pool`), or model-sized PNGs (0).

    Returns ``shards``, ``rows`` (per shard), ``ra``, ``dec``, ``bytes``, ``seconds`` and ``inputs`` (what
    the images are).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    Path(out).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pool_path, what = None, f"synthetic {model_size}-px PNGs at the model's size (no resize)"
    if source_size:
        pool, what = jpeg_pool(source_size, jpegs, seed=seed)
        pool_path = os.path.join(out, os.pardir, f"jpeg_pool_{source_size}.parquet")
        pq.write_table(pa.table({"image": pa.array(pool, pa.binary())}), pool_path)
    jobs = [(out, k, first, min(rows_per_shard, n - first), seed, pool_path, model_size, id_prefix)
            for k, first in enumerate(range(0, n, rows_per_shard))]
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool_exec:
        positions = list(pool_exec.map(write_shard, jobs))
    return dict(shards=len(jobs), rows=[j[3] for j in jobs], ra=np.concatenate([p[0] for p in positions]),
                dec=np.concatenate([p[1] for p in positions]), seconds=time.perf_counter() - t0, inputs=what,
                bytes=sum(f.stat().st_size for f in Path(out).glob("*.parquet")))


# --------------------------------------------------------------------------- the plain-script baseline


def plain_loop(shards: str, arch: str, image_size: int, batch_size: int, workers: int, device: str = "cpu",
               max_rows: int | None = None, decode: str = "cpu", timeout_s: float | None = None) -> dict:
    """Run ``jobs/plain_loop.py`` on ``shards`` in a subprocess; its JSON figures (``images_per_s``, ...).

    Raises
    ------
    RuntimeError
        The script failed (its stderr's last lines in the message).
    """
    cmd = [sys.executable, str(ROOT / "jobs" / "plain_loop.py"), shards, "--arch", arch, "--image-size",
           str(image_size), "--batch-size", str(batch_size), "--workers", str(workers), "--device", device,
           "--decode", decode]
    if max_rows is not None:
        cmd += ["--max-rows", str(max_rows)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"plain_loop.py failed (rc {done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- watching processes


def process_tree(root: int | None = None) -> list:
    """``root`` (default this process) and all its descendants, as ``psutil.Process`` (none once it has exited)."""
    import psutil

    try:
        proc = psutil.Process(root)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_pss_bytes(pid: int | None = None) -> int:
    """Pss of a process and all its descendants, in bytes (``/proc/PID/smaps_rollup``: shared pages split)."""
    import psutil

    total = 0
    for proc in process_tree(pid):
        try:
            total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass  # exited between the listing and the read
    return total


class PeakMemory:
    """Samples :func:`tree_pss_bytes` of this process in a thread; ``peak`` in bytes."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_pss_bytes())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_pss_bytes())


def sample_process(proc) -> tuple[float, int, int, str] | None:
    """(CPU seconds, RSS bytes, Pss bytes, command line) of a ``psutil.Process``; None when it has gone."""
    import psutil

    try:
        with proc.oneshot():
            cpu = proc.cpu_times()
            mem = proc.memory_full_info()  # Pss from /proc/PID/smaps_rollup
            return cpu.user + cpu.system, mem.rss, mem.pss, " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def part_names(out: str) -> list[str]:
    """The published catalog parts (``part-*.parquet``) in ``out``."""
    try:
        return [p for p in os.listdir(out) if p.startswith("part-") and p.endswith(".parquet")]
    except OSError:
        return []


def alive(proc) -> bool:
    """Still running (not exited, not a zombie), and the same process as when seen (psutil checks its start time)."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def name_of(proc) -> str:
    import psutil

    try:
        return proc.name()
    except psutil.NoSuchProcess:
        return "?"


def spill_dir_bytes(session_dir: str) -> int:
    """Bytes in the session's spill directories (Ray spills to ``<session>/ray_spilled_objects*`` by default)."""
    total = 0
    try:
        entries = [e for e in os.listdir(session_dir) if e.startswith("ray_spilled_objects")]
    except OSError:
        return 0
    for e in entries:
        for dirpath, _, files in os.walk(os.path.join(session_dir, e)):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(dirpath, f))
                except OSError:
                    pass
    return total


_PEAKS = ("driver_rss", "workers_rss", "worker_rss_max", "ray_system_rss", "tree_rss", "tree_pss", "workers")


class RunWatcher:
    """Polls a subprocess's process tree and its output directory in a thread.

    ``peak``: the largest RSS of the driver, of Ray's workers and actors (summed, and the largest one),
    of Ray's own processes, RSS and Pss of the whole tree, the bytes in Ray's spill directory;
    ``first_part_s``: seconds to the first catalog part this run published; ``cpu_s``: CPU
    seconds of every process of the tree, as last seen (steadier than wall time on a shared machine).
    """

    def __init__(self, proc: subprocess.Popen, out: str, interval_s: float = 1.0) -> None:
        self.proc, self.out, self.interval_s = proc, out, interval_s
        self.t0 = time.perf_counter()
        self.peak = dict.fromkeys(_PEAKS + ("spill_dir_bytes",), 0)
        self.first_part_s: float | None = None
        self.parts = 0
        self._already = set(part_names(out))
        self.session_dir: str | None = None
        self.last_tree: list = []
        self.cpu_s: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "RunWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        tree = self.last_tree = process_tree(self.proc.pid)
        figures = dict.fromkeys(_PEAKS, 0)
        for proc in tree:
            sample = sample_process(proc)
            if sample is None:
                continue
            cpu, rss, pss, cmd = sample
            self.cpu_s[proc.pid] = max(self.cpu_s.get(proc.pid, 0.0), cpu)
            figures["tree_rss"] += rss
            figures["tree_pss"] += pss
            if proc.pid == self.proc.pid:
                figures["driver_rss"] = rss
            elif cmd.startswith("ray::"):  # Ray's workers and actors name themselves ray::<task or actor>
                figures["workers_rss"] += rss
                figures["worker_rss_max"] = max(figures["worker_rss_max"], rss)
                figures["workers"] += 1
            else:
                figures["ray_system_rss"] += rss
                if self.session_dir is None and "raylet" in cmd and "--session_dir=" in cmd:
                    self.session_dir = cmd.split("--session_dir=", 1)[1].split()[0]
        if self.session_dir:
            figures["spill_dir_bytes"] = spill_dir_bytes(self.session_dir)
        for k, v in figures.items():
            self.peak[k] = max(self.peak[k], v)
        names = part_names(self.out)
        self.parts = len(names)
        if self.first_part_s is None and set(names) - self._already:
            self.first_part_s = time.perf_counter() - self.t0

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)


def mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def main(argv: Sequence[str] | None = None) -> None:
    """Write a benchmark's real-size input shards on their own (the inputs ``bench_infer``,
    ``bench_scale`` and ``gpu_check`` pack), so one set can be reused across runs and machines."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n\n")[0].replace("\n    ", " "))
    parser.add_argument("out", help="folder to write the shards into")
    parser.add_argument("--n", type=int, default=1000, help="cutouts (default 1000)")
    parser.add_argument("--rows-per-shard", type=int, default=250)
    parser.add_argument("--source-size", type=int, default=424, help="JPEG side in px (0: model-sized PNGs)")
    parser.add_argument("--model-size", type=int, default=224, help="PNG side with --source-size 0")
    parser.add_argument("--jpegs", default=default_jpegs(), help="folder of real JPEG cutouts to cycle")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    done = write_shards(args.out, args.n, args.rows_per_shard, seed=args.seed, workers=os.cpu_count() or 1,
                        source_size=args.source_size, model_size=args.model_size, jpegs=args.jpegs)
    print(json.dumps({k: done[k] for k in ("shards", "bytes", "seconds", "inputs") if k in done}, default=str))


if __name__ == "__main__":
    main()
