"""A plain PyTorch inference script over packed cutout shards, as a user would write one.

The baseline of ``jobs/bench_infer.py``, ``jobs/bench_scale.py`` and ``jobs/gpu_check.sh``.  It
uses none of galaxy-ray's code (it imports no ``galaxy_ray`` module; its JSON line says so):

- a ``torch.utils.data.IterableDataset`` that reads the ``image`` column of the Parquet shards
  with pyarrow, each DataLoader worker process taking every ``workers``-th shard;
- Pillow: ``Image.open(bytes).convert("RGB").resize((S, S), Image.BILINEAR)``, uint8;
- a ``torch.utils.data.DataLoader`` with ``--workers`` worker processes (default: every core,
  as many as the pipeline gets), batches of ``--batch-size``;
- the same torchvision ResNet as galaxy-ray's (``torchvision.models.<arch>`` with a 37-output
  linear head), ImageNet normalisation, sigmoid; on CUDA in bf16 autocast and channels_last.

``--decode gpu`` decodes the JPEG bytes on the GPU instead (``torchvision.io.decode_jpeg`` with
``device="cuda"``, nvJPEG) and resizes there (``torch.nn.functional.interpolate``, bilinear,
antialiased); the workers then only read the bytes.

The clock runs from building the model to the last batch's outputs on the host (imports of
torch and torchvision are outside it, reported as ``import_s``).  CPU seconds are this process's
and its finished worker processes' (``resource.getrusage``).  The last line is one JSON object::

    python jobs/plain_loop.py SHARDS --arch resnet18 --image-size 128 --batch-size 64
    python jobs/plain_loop.py SHARDS --device cuda --arch resnet50 --image-size 224 --batch-size 256 --decode gpu
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402


def _import_torchvision():
    """``import torchvision``; where its compiled ops cannot load (PyPI's CUDA torchvision wheel beside the
    CPU torch wheel: "operator torchvision::nms does not exist"), define the two op schemas it
    registers fake kernels for, and import again.  The models need neither op."""
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold, int input_zero_point, "
                   "float input_scale) -> Tensor")
        _import_torchvision.lib = lib  # dropping the Library would unregister the ops
        import torchvision
    return torchvision


torchvision = _import_torchvision()

IMPORT_S = time.perf_counter() - T_START
#: Outputs of the GZ2 decision tree's answers (galaxy-ray's gz2 head has as many).
NUM_OUTPUTS = 37
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def shards_for(folder: str, max_rows: int | None) -> list[str]:
    """The folder's ``*.parquet`` files in name order; whole shards until ``max_rows`` rows (all if None)."""
    files = sorted(str(p) for p in Path(folder).glob("*.parquet"))
    if max_rows is None:
        return files
    chosen, rows = [], 0
    for f in files:
        if rows >= max_rows:
            break
        chosen.append(f)
        rows += pq.ParquetFile(f).metadata.num_rows
    return chosen


def decode(data: bytes, side: int) -> np.ndarray:
    """JPEG/PNG bytes -> uint8 (3, side, side): Pillow decode, RGB, bilinear resize."""
    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")
        if rgb.size != (side, side):
            rgb = rgb.resize((side, side), Image.BILINEAR)
        return np.asarray(rgb).transpose(2, 0, 1)


class ShardImages(torch.utils.data.IterableDataset):
    """The cutouts of ``files``, decoded (``side`` > 0) or as raw bytes (``side`` = 0, for GPU decoding)."""

    def __init__(self, files: list[str], side: int) -> None:
        self.files, self.side = files, side

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        mine = self.files[info.id::info.num_workers] if info else self.files
        for f in mine:
            for data in pq.read_table(f, columns=["image"]).column("image").to_pylist():
                if self.side:
                    yield torch.from_numpy(decode(data, self.side))
                else:
                    yield torch.frombuffer(bytearray(data), dtype=torch.uint8)


def build_model(arch: str, device: str) -> torch.nn.Module:
    """``torchvision.models.<arch>`` (random weights: they do not change the speed) with a 37-output head."""
    net = getattr(torchvision.models, arch)(weights=None, num_classes=NUM_OUTPUTS).eval().to(device)
    return net.to(memory_format=torch.channels_last) if device == "cuda" else net


def gpu_decode(raw: list[torch.Tensor], side: int) -> torch.Tensor:
    """JPEG bytes -> uint8 (N, 3, side, side) on the GPU: nvJPEG decode, antialiased bilinear resize."""
    from torchvision.io import ImageReadMode, decode_jpeg

    images = decode_jpeg(raw, mode=ImageReadMode.RGB, device="cuda")
    x = torch.stack(images).float()
    x = torch.nn.functional.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process and of its children that have exited."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run(files: list[str], arch: str, side: int, batch_size: int, workers: int, device: str = "cpu",
        decode_on: str = "cpu") -> dict:
    """Classify every cutout of ``files``; images, seconds, CPU seconds (see the module docstring)."""
    t0, cpu0 = time.perf_counter(), _cpu_s()
    net = build_model(arch, device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    on_gpu = decode_on == "gpu"
    loader = torch.utils.data.DataLoader(
        ShardImages(files, 0 if on_gpu else side), batch_size=batch_size, num_workers=workers,
        collate_fn=list if on_gpu else None, pin_memory=device == "cuda" and not on_gpu)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()
    images = 0
    with torch.inference_mode(), autocast:
        for batch in loader:
            x = gpu_decode(batch, side) if on_gpu else batch.to(device, non_blocking=True)
            if device == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            out = torch.sigmoid(net((x.float() / 255.0 - mean) / std).float()).cpu()
            images += len(out)
    seconds = time.perf_counter() - t0
    del loader  # its worker processes exit and are reaped: their CPU time counts from here
    cpu = _cpu_s() - cpu0
    return dict(images=images, seconds=round(seconds, 3), images_per_s=round(images / seconds, 2) if seconds else 0.0,
                cpu_s=round(cpu, 2), cpu_ms_per_image=round(cpu / images * 1e3, 3) if images else None)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shards", help="folder of Parquet shards with an `image` column of encoded cutouts")
    p.add_argument("--arch", default="resnet18", help="torchvision ResNet (resnet18, resnet50, ...)")
    p.add_argument("--image-size", type=int, default=128, help="model input side, pixels")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DataLoader worker processes")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--decode", default="cpu", choices=("cpu", "gpu"), help="gpu: nvJPEG (needs --device cuda)")
    p.add_argument("--max-rows", type=int, default=None, help="whole shards until at least this many rows")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    files = shards_for(args.shards, args.max_rows)
    if not files:
        print(f"plain_loop: no *.parquet shards in {args.shards}", file=sys.stderr)
        return 2
    if args.decode == "gpu" and args.device != "cuda":
        print("plain_loop: --decode gpu needs --device cuda", file=sys.stderr)
        return 2
    result = run(files, args.arch, args.image_size, args.batch_size, args.workers, args.device, args.decode)
    result.update(arch=args.arch, image_size=args.image_size, batch_size=args.batch_size, workers=args.workers,
                  device=args.device, decode=args.decode, shards=len(files), import_s=round(IMPORT_S, 2),
                  torch_threads=torch.get_num_threads(),
                  galaxy_ray_imported=any(m == "galaxy_ray" or m.startswith("galaxy_ray.") for m in sys.modules))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
