"""Benchmark: the per-cutout CPU costs behind the sizing of ``docs/scale.md`` (section 2).

Two figures per cutout, on one core:

1. **Read + decode + resize.**  ``transforms.preprocess_batch`` (what the
   pipeline's decode tasks run) on the bytes of real cutout JPEGs, read from
   disk each time: the files as they are (``--jpeg-sides 0``) and resampled
   (Lanczos, re-encoded at quality 90) to each other side, stand-ins for
   survey cutouts of that size built from real sky pixels (424 px: Galaxy
   Zoo DECaLS, Walmsley et al. 2022; 256 px: a common training size), to
   each model size of ``--sizes``.
2. **The model.**  Each of ``--archs``' forward pass (``predict_numpy`` on
   uint8 pixels, one torch thread) at each of ``--sizes``.

Both are CPU time of this single-threaded process (``time.process_time``),
not wall time, so that other load on a shared machine inflates them less (it
still does: caches and memory bandwidth are shared); a sizing multiplies them
by the cutouts and divides by the cores.  ``docs/scale.md`` section 2
("Per-cutout costs") quotes them.

The last line of output is one JSON object with all the figures::

    python jobs/bench_sizing.py
    python jobs/bench_sizing.py --reps 1 --archs resnet18
"""

from __future__ import annotations

import argparse
import json
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
            result["decode"][f"{label}_to_{size}px"] = dict(ms=round(s * 1e3, 3), jpeg_kib=kib)
            print(f"{label} JPEGs ({kib} KiB) -> {size} px: read + decode + resize {s * 1e3:.2f} ms CPU per "
                  f"cutout ({1 / s:.0f} cutouts/s/core)", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    for arch in archs:
        for size in image_sizes:
            s = model_cpu_s(arch, PreprocessConfig(size, 1.0), batch_size, pixels[size])
            result["model"][f"{arch}_{size}px"] = round(s * 1e3, 3)
            print(f"{arch} at {size} px: forward {s * 1e3:.2f} ms CPU per cutout ({1 / s:.1f} cutouts/s/core)",
                  flush=True)
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jpegs", default="/work/shared/data/sdss_gz2_sample/images",
                   help="folder of real cutout JPEGs")
    p.add_argument("--sizes", default="224", help="model image sizes, pixels (comma-separated)")
    p.add_argument("--jpeg-sides", default="0,256,424",
                   help="JPEG sides: 0 = the files as they are, else resampled to that side (comma-separated)")
    p.add_argument("--archs", default="resnet18,resnet50", help="models (comma-separated)")
    p.add_argument("--reps", type=int, default=3, help="passes over the JPEGs")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ints = lambda text: [int(x) for x in text.split(",")]  # noqa: E731
    print(json.dumps(sizing(args.jpegs, ints(args.jpeg_sides), ints(args.sizes), args.archs.split(","),
                            BATCH_SIZE, args.reps)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_entry_point(main))
