"""Benchmark: the per-cutout CPU costs behind the sizing of ``docs/scale.md`` (section 2).

Two figures per cutout, on one core:

1. **Read + decode + resize.**  ``transforms.preprocess_batch`` (what the
   pipeline's decode tasks run) on the bytes of real cutout JPEGs, read from
   disk each time: the files as they are (``--jpeg-sides 0``) and resampled
   (Lanczos, re-encoded at quality 90) to each other side, stand-ins for
   survey cutouts of that size built from real sky pixels (424 px: Galaxy
   Zoo DECaLS, Walmsley et al. 2022; 256 px: a common training size), to
   each model size of ``--sizes``; beside it, on the same bytes, the plain
   Pillow loop a user writes (``Image.open(b).convert("RGB").resize((S, S),
   BILINEAR)``, uint8), the floor galaxy-ray's decode stage is held to.
2. **The model.**  Each of ``--archs``' forward pass (``predict_numpy`` on
   uint8 pixels, one torch thread) at each of ``--sizes``.

Both are CPU time of this single-threaded process (``time.process_time``),
not wall time, so that other load on a shared machine inflates them less (it
still does: caches and memory bandwidth are shared); a sizing multiplies them
by the cutouts and divides by the cores.  ``docs/scale.md`` section 2
("Per-cutout costs") quotes them.

Then the plan of ``docs/scale.md`` section 2 (:func:`plan`): decode vCPUs per GPU, decode nodes,
hours and cost for 1, 10 and 100 million cutouts, from the 424-px decode figure (galaxy-ray's, and
the plain loop's), printed as Markdown tables.  ``--plan-from FILE`` recomputes them from a saved
JSON line of this script (or ``--decode-ms MS`` from a figure measured elsewhere, e.g.
``jobs/bench_decode.py``'s per-core rate: MS = 1000 / cutouts per second per core) without
measuring.

The last line of output is one JSON object with all the figures::

    python jobs/bench_sizing.py
    python jobs/bench_sizing.py --reps 1 --archs resnet18
    python jobs/bench_sizing.py --decode-ms 1.5 --gpu-rate 2500      # the plan alone
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from galaxy_ray.cli import run_entry_point  # noqa: E402

#: Images per ``preprocess_batch`` call and per forward pass.
BATCH_SIZE = 64


def resampled_jpegs(files: Sequence[Path], side: int, quality: int, dest: Path) -> list[Path]:
    """The JPEGs ``files`` resized (Lanczos) to ``side`` x ``side`` and re-encoded at ``quality``.

    Stand-ins for survey cutouts of that size (424 px: Galaxy Zoo DECaLS, Walmsley et al. 2022;
    256 px: a common training size) built from real sky pixels, so that the JPEG decoder sees
    real noise and sources at the byte count of such a cutout.
    """
    from PIL import Image

    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        target = dest / f"{f.stem}.jpg"
        with Image.open(f) as im:
            im.convert("RGB").resize((side, side), Image.LANCZOS).save(target, format="JPEG", quality=quality)
        out.append(target)
    return out


def decode_cpu_s(files: Sequence[Path], config, batch_size: int, reps: int) -> tuple[float, np.ndarray]:
    """CPU seconds per cutout of read + ``preprocess_batch`` (decode, crop, resize) over ``files``; (s, last pixels)."""
    from galaxy_ray.data.transforms import preprocess_batch

    def batch_of(chunk):
        return {"object_id": np.array([f.stem for f in chunk], dtype=object),
                "image": np.array([f.read_bytes() for f in chunk], dtype=object),
                "source": np.array([str(f) for f in chunk], dtype=object)}

    preprocess_batch(batch_of(files[:1]), config)  # imports, first call
    cpu0, n, pixels = time.process_time(), 0, None
    for _ in range(reps):
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            pixels = preprocess_batch(batch_of(chunk), config)["pixels"]
            n += len(chunk)
    return (time.process_time() - cpu0) / n, pixels


def plain_decode_cpu_s(files: Sequence[Path], size: int, reps: int) -> float:
    """CPU seconds per cutout of read + the plain Pillow decode + bilinear resize to ``size`` (uint8), one thread."""
    import io

    from PIL import Image

    def one(f: Path) -> np.ndarray:
        with Image.open(io.BytesIO(f.read_bytes())) as im:
            return np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))

    one(files[0])
    cpu0 = time.process_time()
    for _ in range(reps):
        for f in files:
            one(f)
    return (time.process_time() - cpu0) / (reps * len(files))


def model_cpu_s(arch: str, config, batch_size: int, pixels: np.ndarray) -> float:
    """CPU seconds per cutout of ``arch``'s forward pass (``predict_numpy``, one thread), batch after batch."""
    import torch

    from galaxy_ray import model as model_mod

    torch.manual_seed(0)
    net = model_mod.build_model(model_mod.ModelSpec.for_gz2(arch, config)).eval()
    size = config.image_size
    x = np.resize(pixels, (batch_size, 3, size, size)).astype(np.uint8)
    model_mod.predict_numpy(net, x)  # warm
    cpu0, m = time.process_time(), 0
    while m < max(2 * batch_size, 256 * 64 * 64 // (size * size)):
        model_mod.predict_numpy(net, x)
        m += batch_size
    return (time.process_time() - cpu0) / m


def sizing(jpeg_dir: str, jpeg_sides: Sequence[int], image_sizes: Sequence[int], archs: Sequence[str],
           batch_size: int, reps: int, quality: int = 90) -> dict:
    """CPU seconds per cutout on one core: read + decode + resize of JPEG cutouts, and the models' forward pass.

    CPU time (``time.process_time``) of this single-threaded process, not wall time, so that other
    load on a shared machine inflates it less (it still does: caches and memory bandwidth are shared).
    Decoding is ``transforms.preprocess_batch`` (what the pipeline's decode tasks run) on the files'
    bytes, read from disk each time, for the real JPEGs (side 0 in ``jpeg_sides``) and for them
    resampled to each other side (:func:`resampled_jpegs`); the model is ``predict_numpy`` on uint8
    pixels at each of ``image_sizes``.

    Returns
    -------
    dict
        ``decode``: ``{"<side>px_to_<size>px" or "original_to_<size>px": {"ms": CPU ms per cutout,
        "jpeg_kib": mean file size}}``; ``model``: ``{"<arch>_<size>px": CPU ms per cutout}``.

    Raises
    ------
    GalaxyRayError
        ``jpeg_dir`` holds no ``.jpg`` files.
    """
    import torch

    from galaxy_ray.data.transforms import PreprocessConfig
    from galaxy_ray.errors import GalaxyRayError

    torch.set_num_threads(1)
    files = sorted(Path(jpeg_dir).glob("*.jpg"))
    if not files:
        raise GalaxyRayError(f"bench_sizing --jpegs {jpeg_dir}: no .jpg files there; point it at a folder "
                             "of cutout JPEGs")
    result: dict = {"jpegs": len(files), "threads": 1, "jpeg_quality_resampled": quality, "decode": {}, "model": {}}
    tmp = Path(tempfile.mkdtemp(prefix="bench_sizing_"))
    pixels = {}
    for side in jpeg_sides:
        batch = resampled_jpegs(files, side, quality, tmp / str(side)) if side else files
        label = f"{side}px" if side else "original"
        kib = round(float(np.mean([f.stat().st_size for f in batch])) / 1024, 1)
        for size in image_sizes:
            config = PreprocessConfig(size, 1.0)
            s, pixels[size] = decode_cpu_s(batch, config, batch_size, reps)
            plain = plain_decode_cpu_s(batch, size, reps)
            result["decode"][f"{label}_to_{size}px"] = dict(ms=round(s * 1e3, 3), jpeg_kib=kib,
                                                            plain_ms=round(plain * 1e3, 3),
                                                            ratio=round(plain / s, 3))
            print(f"{label} JPEGs ({kib} KiB) -> {size} px: read + decode + resize {s * 1e3:.2f} ms CPU per "
                  f"cutout ({1 / s:.0f} cutouts/s/core); plain Pillow {plain * 1e3:.2f} ms ({1 / plain:.0f}/s/core), "
                  f"galaxy-ray at {plain / s:.3f} of it", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    for arch in archs:
        for size in image_sizes:
            s = model_cpu_s(arch, PreprocessConfig(size, 1.0), batch_size, pixels[size])
            result["model"][f"{arch}_{size}px"] = round(s * 1e3, 3)
            print(f"{arch} at {size} px: forward {s * 1e3:.2f} ms CPU per cutout ({1 / s:.1f} cutouts/s/core)",
                  flush=True)
    return result


#: The plan's machines, as docs/scale.md section 2 cites them (AWS us-east-1 on-demand list prices, $/h,
#: not checked live): a g5.2xlarge GPU node (1 A10G), a c6i.4xlarge decode node (16 vCPUs), the head.
GPU_NODE_USD, DECODE_NODE_USD, DECODE_NODE_VCPUS, HEAD_USD = 1.212, 0.68, 16, 0.384
#: Assumed images/s of ResNet-50 at 224 px on one A10G (docs/scale.md: from NVIDIA's published A10 figures).
GPU_RATE = 2500.0
#: (cutouts, GPU nodes) of the plan's rows.
PLAN_ROWS = ((1_000_000, 1), (10_000_000, 4), (100_000_000, 8))


def plan(decode_ms: float, gpu_rate: float = GPU_RATE, rows: Sequence[tuple[int, int]] = PLAN_ROWS) -> dict:
    """Decode vCPUs per GPU and, per row of (cutouts, GPUs), decode nodes, rate, hours and cost.

    Decode vCPUs per GPU = ``gpu_rate`` x ``decode_ms`` / 1000; the decode nodes are enough
    c6i.4xlarge (16 vCPUs) for the GPUs; the rate is min(GPUs x ``gpu_rate``, decode vCPUs /
    decode seconds per cutout); cost = hours x (GPUs x $1.212 + nodes x $0.68 + $0.384 head).
    """
    per_gpu = gpu_rate * decode_ms / 1e3
    out = []
    for cutouts, gpus in rows:
        nodes = max(1, math.ceil(gpus * per_gpu / DECODE_NODE_VCPUS - 1e-9))
        rate = min(gpus * gpu_rate, nodes * DECODE_NODE_VCPUS / (decode_ms / 1e3))
        hours = cutouts / rate / 3600
        cost = hours * (gpus * GPU_NODE_USD + nodes * DECODE_NODE_USD + HEAD_USD)
        out.append(dict(cutouts=cutouts, gpus=gpus, decode_nodes=nodes, decode_vcpus=nodes * DECODE_NODE_VCPUS,
                        rate=round(rate), hours=round(hours, 3), cost_usd=round(cost, 2),
                        usd_per_million=round(cost / (cutouts / 1e6), 2)))
    return dict(decode_ms=decode_ms, gpu_rate=gpu_rate, decode_vcpus_per_gpu=round(per_gpu, 1), rows=out)


def plan_table(p: dict, title: str) -> str:
    """``p`` (:func:`plan`) as the Markdown table of docs/scale.md, under a bold title line."""
    lines = [f"**{title}: {p['decode_vcpus_per_gpu']} decode vCPUs per GPU** ({p['gpu_rate']:,.0f} x "
             f"{p['decode_ms']} ms)", "",
             "| cutouts | GPUs (g5.2xlarge) | decode nodes (c6i.4xlarge, vCPUs) | rate | hours | cost | cost per million |",
             "|---|---|---|---|---|---|---|"]
    for r in p["rows"]:
        lines.append(f"| {r['cutouts'] // 1_000_000} M | {r['gpus']} | {r['decode_nodes']} ({r['decode_vcpus']}) | "
                     f"{r['rate']:,}/s | {r['hours']:.2f} | ${r['cost_usd']:.2f} | ${r['usd_per_million']:.2f} |")
    return "\n".join(lines)


def plans_from(result: dict, gpu_rate: float) -> dict:
    """The plans for each 424-px decode figure of a :func:`sizing` result (galaxy-ray's and the plain loop's)."""
    plans = {}
    for key, fig in result.get("decode", {}).items():
        if key.startswith("424px_to_"):
            plans[f"galaxy_ray_{key}"] = plan(fig["ms"], gpu_rate)
            if "plain_ms" in fig:
                plans[f"plain_{key}"] = plan(fig["plain_ms"], gpu_rate)
    return plans


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jpegs", default="/work/shared/data/sdss_gz2_sample/images",
                   help="folder of real cutout JPEGs")
    p.add_argument("--sizes", default="224", help="model image sizes, pixels (comma-separated)")
    p.add_argument("--jpeg-sides", default="0,256,424",
                   help="JPEG sides: 0 = the files as they are, else resampled to that side (comma-separated)")
    p.add_argument("--archs", default="resnet18,resnet50", help="models (comma-separated; \"\" for none)")
    p.add_argument("--reps", type=int, default=3, help="passes over the JPEGs")
    p.add_argument("--gpu-rate", type=float, default=GPU_RATE, help="images/s per GPU of the plan (default 2500)")
    p.add_argument("--plan-from", default=None, help="a saved JSON line of this script: only recompute the plans")
    p.add_argument("--decode-ms", type=float, default=None,
                   help="only the plan, for this decode CPU ms per 424-px cutout (e.g. from jobs/bench_decode.py)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ints = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
    if args.decode_ms is not None:
        result = {"plans": {"given": plan(args.decode_ms, args.gpu_rate)}}
    elif args.plan_from:
        result = json.loads(Path(args.plan_from).read_text().strip().splitlines()[-1])
    else:
        archs = [a for a in args.archs.split(",") if a]
        result = sizing(args.jpegs, ints(args.jpeg_sides), ints(args.sizes), archs, BATCH_SIZE, args.reps)
    if args.decode_ms is None:
        result["plans"] = plans_from(result, args.gpu_rate)
    for name, p in result["plans"].items():
        print(plan_table(p, name) + "\n", flush=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_entry_point(main))
