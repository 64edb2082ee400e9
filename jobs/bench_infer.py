"""Benchmark: the Ray Data inference pipeline against a plain PyTorch script, and its memory.

In one run, on the same packed shards (real-size cutouts by default: 424-px JPEGs,
``--source-size``; the 2,000 real Kaggle Galaxy Zoo cutouts cycled, or synthetic galaxies
where they are absent) and the same torchvision ResNet at the model's side:

(a) a plain script, ``jobs/plain_loop.py``: none of galaxy-ray's code, as a user writes one:
    pyarrow reads the shards, Pillow decodes and resizes (bilinear, uint8), a torch
    ``DataLoader`` runs as many worker processes as the pipeline gets cores
    (``--plain-workers``, default every core), the model classifies batch after batch;
(b) the pipeline, ``infer.run_inference`` on a local Ray cluster (started,
    and warmed up on one shard, before the clock runs; the model actors'
    start-up, the planning and the writing of the catalog are inside the
    timing).

``--source-size 0`` is the older mode: synthetic PNGs at the model's own size, so that neither
side resizes (the data plane and the model without the decoder's cost).

The plain loop runs before and after each timed pipeline run, and the pipeline
is compared with the mean of those two: the speed of these shared machines
drifts by 10-20 % within minutes, so one run at the start is not a fair
baseline for a pipeline run ten minutes later.

It prints images/s of each and the ratio b/a twice: end to end, and after the
pipeline's start-up (the time to first row: until its first catalog rows reach
the driver: planning, starting the actor process, importing torch and loading
the model, about 10 s on 2 cores).  (d) splits a fresh model actor's share of
it: importing the model code, loading the checkpoint, the first batch.  A job pays the start-up once, so at survey
scale the end-to-end rate tends to the rate after start-up.  Then it runs the pipeline on N and
10N inputs (the N shards copied ten times with new object ids) and prints the
peak memory of each and their ratio.

Memory is the sum of the proportional set size (Pss, from
``/proc/PID/smaps_rollup``) of the driver and every process it started: the
Ray cluster's GCS, raylet with its plasma object store, and all worker and
actor processes.  Pss splits each shared page between the processes that map
it, so the object store's shared memory is counted once, not once per worker
that reads it.  A thread samples it every 0.5 s; the figure is the peak.

CPU (default): ResNet-18 at 128 pixels.  ``--gpu``: ResNet-50 at 224 pixels
in bf16 on one GPU per actor, with (c) the model alone on pre-made GPU tensors,
and the hours it would take to classify the 8.7 million galaxies of the Galaxy
Zoo DESI catalog at the pipeline's rate per GPU.

The last line of output is one JSON object with all the figures::

    python jobs/bench_infer.py --n 1000
    python jobs/bench_infer.py --n 1000 --time-10n
    python jobs/bench_infer.py --n 1000 --source-size 0      # model-sized inputs, no resize
    python jobs/bench_infer.py --gpu --n 20000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_common  # noqa: E402
from bench_common import PeakMemory, tree_pss_bytes  # noqa: E402
from galaxy_ray.cli import run_entry_point  # noqa: E402

#: Galaxies in the Galaxy Zoo DESI catalog (Walmsley et al. 2023).
GZ_DESI_GALAXIES = 8.7e6


# --------------------------------------------------------------------------- inputs


def make_inputs(workdir: Path, n: int, size: int, rows_per_shard: int, copies: int, source_size: int = 424,
                jpegs: str | None = None) -> tuple[str, str, str]:
    """N cutouts as packed shards, the same shards ``copies`` times with new ids, and what the images are.

    ``source_size`` > 0: ``source_size``-px JPEGs (:func:`bench_common.jpeg_pool`: the files of
    ``jpegs``, cycled; synthetic without it); 0: synthetic PNGs at the model's ``size``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    small, big = workdir / "shards_n", workdir / f"shards_{copies}n"
    made = bench_common.write_shards(str(small), n, rows_per_shard, seed=1, workers=os.cpu_count() or 1,
                                     source_size=source_size, model_size=size, jpegs=jpegs, id_prefix="infer")
    big.mkdir(parents=True, exist_ok=True)
    shards = sorted(small.glob("*.parquet"))
    for k in range(copies):
        for j, shard in enumerate(shards):
            table = pq.read_table(shard)
            ids = pa.array([f"{i}-copy{k}" for i in table["object_id"].to_pylist()], pa.string())
            table = table.set_column(table.column_names.index("object_id"), "object_id", ids)
            pq.write_table(table, big / f"part-{k * len(shards) + j:05d}.parquet")
    return str(small), str(big), made["inputs"]


def make_checkpoint(workdir: Path, arch: str, image_size: int) -> str:
    """A randomly initialised GZ2 model (weights do not change the speed)."""
    import torch

    from galaxy_ray import model as model_mod
    from galaxy_ray.data.transforms import PreprocessConfig

    torch.manual_seed(0)
    spec = model_mod.ModelSpec.for_gz2(arch, PreprocessConfig(image_size, crop_fraction=1.0))
    return model_mod.save_checkpoint(str(workdir / "model.pt"), model_mod.build_model(spec), spec)


# --------------------------------------------------------------------------- (a) the plain script


def bare_loop(shards: str, arch: str, image_size: int, batch_size: int, device: str,
              workers: int) -> tuple[int, float, dict]:
    """``jobs/plain_loop.py`` over every cutout of ``shards``; (images, seconds, its JSON figures)."""
    figures = bench_common.plain_loop(shards, arch, image_size, batch_size, workers,
                                      device="cuda" if device == "cuda" else "cpu")
    return figures["images"], figures["seconds"], figures


# --------------------------------------------------------------------------- (b) pipeline


def pipeline(checkpoint: str, shards: str, out: str, batch_size: int, use_gpu: bool,
             num_actors: int | None, rows_per_file: int, sample_memory: bool = True) -> tuple[int, float, int, dict]:
    """``run_inference`` end to end; (images, seconds, peak memory in bytes (0 when not sampled), its summary).

    The summary's ``startup_seconds`` and ``rows_per_second_after_startup``
    split the run into the start-up a job pays once (actors start, import torch
    and load the model) and the rate it then streams at.

    Timed runs do not sample: walking /proc and every process's smaps_rollup twice a
    second costs the driver (at normal priority, above Ray's niced workers) a good part of
    a core on a 2-core machine, which the pipeline would be charged for.
    """
    from galaxy_ray import infer

    shutil.rmtree(out, ignore_errors=True)
    mem = PeakMemory() if sample_memory else contextlib.nullcontext()
    with mem:
        t0 = time.perf_counter()
        summary = infer.run_inference(checkpoint, shards, out, batch_size=batch_size, rows_per_file=rows_per_file,
                                      num_actors=num_actors, use_gpu=use_gpu, log=lambda s: None)
        seconds = time.perf_counter() - t0
    return summary["rows_this_run"], seconds, mem.peak if sample_memory else 0, summary


# --------------------------------------------------------------------------- (c) model alone (GPU)


def model_alone(checkpoint: str, batch_size: int, image_size: int, iters: int = 50) -> float:
    """Images/s of the model on pre-made uint8 GPU tensors, as the pipeline feeds it (bf16 autocast, channels_last)."""
    import torch

    from galaxy_ray import model as model_mod

    model, _ = model_mod.load_checkpoint(checkpoint, map_location="cuda")
    model = model.to(memory_format=torch.channels_last)
    x = torch.randint(0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8, device="cuda").contiguous(
        memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        for _ in range(5):
            model.predict(x)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            model.predict(x)
        torch.cuda.synchronize()
    return batch_size * iters / (time.perf_counter() - t0)


# --------------------------------------------------------------------------- (d) a model actor's start-up


_ACTOR_STARTUP = """
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from galaxy_ray.infer.pipeline import CatalogModel
t1 = time.perf_counter()
model = CatalogModel(sys.argv[1], device=sys.argv[2])
t2 = time.perf_counter()
n, side = int(sys.argv[3]), int(sys.argv[4])
model({"pixels": np.zeros((n, 3, side, side), np.uint8), "error": np.full(n, "", dtype=object),
       "object_id": np.full(n, "x", dtype=object), "ra": np.zeros(n), "dec": np.zeros(n)})
t3 = time.perf_counter()
print(json.dumps({"import_s": round(t1 - t0, 2), "load_s": round(t2 - t1, 2), "first_batch_s": round(t3 - t2, 2)}))
"""


def actor_startup(checkpoint: str, device: str, batch_size: int, image_size: int) -> dict:
    """What a fresh model actor spends before its first rows, in a new process as Ray starts one:
    importing the model code (torch, torchvision), loading the checkpoint, and the first batch."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", _ACTOR_STARTUP, checkpoint, device, str(batch_size), str(image_size)],
                         capture_output=True, text=True, check=True, cwd=str(Path(__file__).resolve().parents[1]))
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"(d) a fresh model actor: import {figures['import_s']:.1f} s, load the checkpoint {figures['load_s']:.1f} s, "
          f"first batch {figures['first_batch_s']:.1f} s", flush=True)
    return {f"actor_{k}": v for k, v in figures.items()}


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="galaxies in the base input N (10N for the memory run)")
    p.add_argument("--gpu", action="store_true", help="ResNet-50 at 224 px in bf16 on GPUs")
    p.add_argument("--arch", default=None, help="override the architecture (default resnet18, resnet50 on --gpu)")
    p.add_argument("--image-size", type=int, default=None, help="model input side (default 128, 224 on --gpu)")
    p.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default 64, 256 on --gpu)")
    p.add_argument("--source-size", type=int, default=424,
                   help="side of the packed cutout JPEGs, pixels (default 424, the size of SDSS/GZ cutouts); "
                        "0: synthetic PNGs at the model's own size (no resize)")
    p.add_argument("--jpegs", default=bench_common.default_jpegs(),
                   help="folder of real cutout JPEGs to pack, cycled (default: the Kaggle Galaxy Zoo sample where "
                        "present); 'synthetic' for synthetic galaxies")
    p.add_argument("--plain-workers", type=int, default=None,
                   help="DataLoader worker processes of the plain script (default: every core, as the pipeline)")
    p.add_argument("--rows-per-shard", type=int, default=250, help="rows per input shard")
    p.add_argument("--rows-per-file", type=int, default=1000, help="rows per output file")
    p.add_argument("--num-actors", type=int, default=None, help="model actors (default: one per GPU / 4 CPUs)")
    p.add_argument("--copies", type=int, default=10, help="the memory run's input is this many times N")
    p.add_argument("--skip-memory", action="store_true", help="only the speed comparison")
    p.add_argument("--time-10n", action="store_true",
                   help="also time the pipeline, unsampled, on the 10N input (end to end, start-up amortised)")
    p.add_argument("--workdir", default=None, help="where to write inputs and catalogs (default: a temp dir)")
    return p


class Bench:
    """One benchmark run: its inputs and model, and the plain-script rates measured so far."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.arch = args.arch or ("resnet50" if args.gpu else "resnet18")
        self.image_size = args.image_size or (224 if args.gpu else 128)
        self.batch_size = args.batch_size or (256 if args.gpu else 64)
        self.device = "cuda" if args.gpu else "cpu"
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_infer_"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bare_rates: list[float] = []
        self.bare_cpu_ms: list[float] = []
        self.plain_workers = args.plain_workers or os.cpu_count() or 1
        jpegs = None if args.jpegs in (None, "", "synthetic") else args.jpegs
        t0 = time.perf_counter()
        self.small, self.big, self.inputs = make_inputs(self.workdir, args.n, self.image_size, args.rows_per_shard,
                                                        args.copies, args.source_size, jpegs)
        self.checkpoint = make_checkpoint(self.workdir, self.arch, self.image_size)
        side = f"{args.source_size}-px JPEG" if args.source_size else f"model-sized {self.image_size}-px PNG"
        print(f"inputs: {args.n} and {args.copies * args.n} {side} cutouts ({self.inputs}) in shards of "
              f"{args.rows_per_shard} ({time.perf_counter() - t0:.0f} s); model {self.arch} at {self.image_size} px, "
              f"batch {self.batch_size}, {self.device}, {os.cpu_count()} CPU cores; load average "
              f"{os.getloadavg()[0]:.1f}", flush=True)

    def bare(self) -> float:
        """One plain-script run over the N input; images/s (also kept in ``bare_rates``)."""
        n_a, s_a, figures = bare_loop(self.small, self.arch, self.image_size, self.batch_size, self.device,
                                      self.plain_workers)
        self.bare_rates.append(n_a / s_a)
        self.bare_cpu_ms.append(figures["cpu_ms_per_image"])
        print(f"(a) plain script (Pillow, torchvision, DataLoader with {self.plain_workers} workers): {n_a} images in "
              f"{s_a:.1f} s = {n_a / s_a:.1f} images/s ({figures['cpu_ms_per_image']:.1f} ms CPU per image; load "
              f"average {os.getloadavg()[0]:.1f})", flush=True)
        return n_a / s_a

    def pipeline(self, shards: str, out: str, sample_memory: bool = True) -> tuple[int, float, int, dict]:
        """:func:`pipeline` on ``shards`` into ``workdir/out`` with this run's options."""
        return pipeline(self.checkpoint, shards, str(self.workdir / out), self.batch_size, self.args.gpu,
                        self.args.num_actors, self.args.rows_per_file, sample_memory=sample_memory)

    def warm_up(self) -> None:
        """Run the pipeline on one shard: starts the cluster's worker processes (and their imports of
        torch), as a long-lived cluster has them; the plain script imports torch before its clock starts."""
        warm = self.workdir / "warmup"
        warm.mkdir(exist_ok=True)
        shutil.copy(sorted(Path(self.small).glob("*.parquet"))[0], warm / "part-00000.parquet")
        self.pipeline(str(warm), "catalog_warmup")

    def speed(self, before: float, gpus: int) -> dict:
        """Time the pipeline on N against the mean of the plain script just before and just after it."""
        n_b, s_b, _, summary = self.pipeline(self.small, "catalog_n", sample_memory=False)
        rate_a = (before + self.bare()) / 2
        rate_b = n_b / s_b
        startup = summary.get("startup_seconds", float("nan"))
        planning = summary.get("planning_seconds", float("nan"))
        steady = summary.get("rows_per_second_after_startup", float("nan"))
        print(f"(b) Ray Data pipeline:     {n_b} images in {s_b:.1f} s = {rate_b:.1f} images/s end to end; "
              f"time to first row {startup:.1f} s (the driver planning {planning:.1f} s, then the model actors and "
              f"the first batches {startup - planning:.1f} s), then {steady:.1f} images/s", flush=True)
        print(f"    against the plain script's {rate_a:.1f} images/s (mean of the runs before and after): "
              f"ratio b/a after start-up = {steady / rate_a:.3f}  (goal >= 0.9); end to end = {rate_b / rate_a:.3f} "
              f"(the {startup:.1f} s start-up is paid once per job)", flush=True)
        return {
            "device": self.device, "arch": self.arch, "image_size": self.image_size, "batch_size": self.batch_size,
            "source_size": self.args.source_size, "inputs": self.inputs, "plain_workers": self.plain_workers,
            "cpu_cores": os.cpu_count(), "gpus": gpus, "n": self.args.n,
            "bare_images_per_s": round(rate_a, 2), "pipeline_images_per_s": round(rate_b, 2),
            "pipeline_startup_s": startup, "time_to_first_row_s": startup, "planning_s": planning,
            "pipeline_images_per_s_after_startup": steady,
            "ratio": round(rate_b / rate_a, 3), "ratio_after_startup": round(steady / rate_a, 3),
        }

    def memory(self, idle: int, n_b: int) -> dict:
        """Peak memory of the pipeline on N and on ``copies`` times N inputs, and their ratio."""
        _, _, mem_n, _ = self.pipeline(self.small, "catalog_n")
        n_c, s_c, mem_10n, summary_10n = self.pipeline(self.big, "catalog_10n")
        mib = 1 << 20
        print(f"    idle Ray cluster + driver: {idle / mib:.0f} MiB Pss", flush=True)
        steady_10n = summary_10n.get("rows_per_second_after_startup", float("nan"))
        print(f"    peak memory, {n_b} inputs: {mem_n / mib:.0f} MiB;  {n_c} inputs: {mem_10n / mib:.0f} MiB "
              f"({n_c / s_c:.1f} images/s end to end, {steady_10n:.1f} after start-up, while sampled);  "
              f"ratio {mem_10n / mem_n:.3f}  (goal <= 1.2)", flush=True)
        return dict(idle_mib=round(idle / mib), peak_mib_n=round(mem_n / mib), peak_mib_10n=round(mem_10n / mib),
                    n_10n=n_c, pipeline_images_per_s_10n=round(n_c / s_c, 2),
                    pipeline_images_per_s_10n_after_startup=steady_10n, mem_ratio=round(mem_10n / mem_n, 3))

    def time_10n(self) -> dict:
        """Time the pipeline, unsampled, on the big input against the plain script around it (on N, not 10N)."""
        before = self.bare()
        n_d, s_d, _, summary_d = self.pipeline(self.big, "catalog_10n", sample_memory=False)
        rate_10n = (before + self.bare()) / 2
        steady_d = summary_d.get("rows_per_second_after_startup", float("nan"))
        print(f"(b) on {n_d} images: {n_d / s_d:.1f} images/s end to end = {n_d / s_d / rate_10n:.3f} of the plain "
              f"loop's {rate_10n:.1f} (mean of the runs before and after); {steady_d:.1f} after start-up "
              f"= {steady_d / rate_10n:.3f}", flush=True)
        return dict(bare_images_per_s_10n=round(rate_10n, 2), pipeline_images_per_s_10n_timed=round(n_d / s_d, 2),
                    pipeline_images_per_s_10n_timed_after_startup=steady_d,
                    ratio_10n=round(n_d / s_d / rate_10n, 3), ratio_10n_after_startup=round(steady_d / rate_10n, 3))

    def gpu_figures(self, rate_b: float, gpus: int) -> dict:
        """The model alone on GPU tensors, the pipeline's share of it, and the GZ DESI hours per GPU."""
        rate_c = model_alone(self.checkpoint, self.batch_size, self.image_size)
        per_gpu = rate_b / max(1, gpus)
        hours = GZ_DESI_GALAXIES / per_gpu / 3600
        print(f"(c) model alone on GPU tensors: {rate_c:.0f} images/s; pipeline per GPU {per_gpu:.0f} images/s "
              f"= {per_gpu / rate_c:.3f} of it (goal >= 0.8)", flush=True)
        print(f"    8.7 million Galaxy Zoo DESI galaxies: {hours:.2f} hours per GPU", flush=True)
        return dict(model_alone_images_per_s=round(rate_c, 1), pipeline_per_gpu_images_per_s=round(per_gpu, 1),
                    pipeline_over_model=round(per_gpu / rate_c, 3), hours_8_7M_per_gpu=round(hours, 2))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from galaxy_ray import runtime

    if args.gpu and not torch.cuda.is_available():
        print("bench_infer: --gpu needs a CUDA GPU", file=sys.stderr)
        return 2
    bench = Bench(args)
    # The machine's speed drifts by 10-20 % over minutes, so each pipeline timing is compared with
    # the mean of the plain-script runs just before and just after it.
    before = bench.bare()
    # The cluster `galaxy-ray infer` starts (or joins, with RAY_ADDRESS), so the start-up is the users'
    ray = runtime.ensure_ray()
    gpus = int(ray.cluster_resources().get("GPU", 0))
    bench.warm_up()
    idle = tree_pss_bytes()
    result = bench.speed(before, gpus)
    if not args.skip_memory:
        result.update(bench.memory(idle, args.n))
    if args.time_10n:
        result.update(bench.time_10n())
    result.update(actor_startup(bench.checkpoint, bench.device, bench.batch_size, bench.image_size))
    result["bare_runs_images_per_s"] = [round(r, 2) for r in bench.bare_rates]
    result["bare_cpu_ms_per_image"] = round(bench_common.mean(bench.bare_cpu_ms), 3)
    result["load_average_end"] = round(os.getloadavg()[0], 2)
    if args.gpu:
        result.update(bench.gpu_figures(result["pipeline_images_per_s"], gpus))
    ray.shutdown()
    if not args.workdir:
        shutil.rmtree(bench.workdir, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_entry_point(main))
