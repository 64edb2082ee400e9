"""The stages of ``jobs/gpu_check.sh``: each writes one JSON object to ``--out``; ``summary`` joins them.

Stages (``jobs/gpu_check.sh`` runs each under its own time limit, so one that hangs or fails
leaves the others' figures):

- ``inputs``: N packed cutouts (424-px JPEGs by default: real ones cycled where ``--jpegs`` is a
  folder, else synthetic galaxies; :func:`bench_common.write_shards`) and a randomly initialised
  galaxy-ray checkpoint (the weights do not change the speed);
- ``model`` (a): galaxy-ray's network alone on pre-made uint8 tensors on the device, as the model
  actors feed it (bf16 autocast and channels_last on CUDA), for each architecture and batch size,
  eager or ``torch.compile``-d;
- ``plain`` (b): ``jobs/plain_loop.py`` (Pillow decode + resize in DataLoader workers, one per core);
- ``infer`` (c): ``python -m galaxy_ray.cli infer`` on the shards, wall time and its own rate
  after start-up, with the GPU's utilisation sampled by ``nvidia-smi`` every 0.5 s where present;
- ``gpudecode`` (d): where ``torchvision.io.decode_jpeg`` decodes on the GPU (probed on one
  JPEG), the plain loop with nvJPEG decoding; otherwise the reason it was skipped;
- ``summary``: images/s, the ratios (c)/(a) and (b)/(a), GPU-hours for GZ DESI's 8.7 million
  galaxies, one JSON line printed and written to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "jobs"))

#: Galaxies in the Galaxy Zoo DESI catalog (Walmsley et al. 2023).
GZ_DESI_GALAXIES = 8.7e6


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def stage_inputs(a: argparse.Namespace) -> dict:
    import bench_common
    import torch

    from galaxy_ray import model as model_mod
    from galaxy_ray.data.transforms import PreprocessConfig

    shards = os.path.join(a.work, "shards")
    shutil.rmtree(shards, ignore_errors=True)
    jpegs = a.jpegs if a.jpegs and Path(a.jpegs).is_dir() else None
    made = bench_common.write_shards(shards, a.n, a.rows_per_shard, seed=1, workers=os.cpu_count() or 1,
                                     source_size=a.source_size, model_size=a.size, jpegs=jpegs, id_prefix="gpucheck")
    torch.manual_seed(0)
    spec = model_mod.ModelSpec.for_gz2(a.arch, PreprocessConfig(a.size, crop_fraction=1.0))
    checkpoint = model_mod.save_checkpoint(os.path.join(a.work, "model.pt"), model_mod.build_model(spec), spec)
    return dict(n=a.n, shards=made["shards"], inputs=made["inputs"], source_size=a.source_size,
                mib=round(made["bytes"] / 2**20, 1), seconds=round(made["seconds"], 1), checkpoint=checkpoint,
                arch=a.arch, image_size=a.size)


def model_rate(arch: str, size: int, batch: int, compiled: bool, iters: int, device: str) -> float:
    """Images/s of galaxy-ray's network on a pre-made uint8 batch already on ``device``."""
    import contextlib

    import torch

    from galaxy_ray import model as model_mod
    from galaxy_ray.data.transforms import PreprocessConfig

    torch.manual_seed(0)
    net = model_mod.build_model(model_mod.ModelSpec.for_gz2(arch, PreprocessConfig(size, 1.0))).eval().to(device)
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    if device == "cuda":
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    run = torch.compile(net.predict) if compiled else net.predict
    cast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.inference_mode(), cast:
        for _ in range(3):  # warm-up (and compilation)
            run(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            run(x)
        sync()
    return batch * iters / (time.perf_counter() - t0)


def stage_model(a: argparse.Namespace) -> dict:
    device = _device()
    out = {"device": device}
    for arch in a.archs.split(","):
        for batch in (int(b) for b in a.batches.split(",")):
            key = f"{arch}_b{batch}_{'compiled' if a.compile else 'eager'}"
            out[key] = round(model_rate(arch, a.size, batch, a.compile, a.iters, device), 1)
            print(f"(a) {arch} at {a.size} px, batch {batch}, {key.rsplit('_', 1)[1]}: {out[key]:.0f} images/s",
                  flush=True)
            _write(a.out, out)  # what is done so far survives a time-out
    return out


def stage_plain(a: argparse.Namespace) -> dict:
    import bench_common

    figures = bench_common.plain_loop(os.path.join(a.work, "shards"), a.arch, a.size, a.batch,
                                      os.cpu_count() or 1, device=_device())
    print(f"(b) plain loop: {figures['images']} images in {figures['seconds']:.1f} s = "
          f"{figures['images_per_s']:.0f} images/s", flush=True)
    return figures


def _gpu_sampler(path: str) -> subprocess.Popen | None:
    if not shutil.which("nvidia-smi"):
        return None
    with open(path, "w") as log:
        return subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                 "--format=csv,noheader,nounits", "-lms", "500"], stdout=log,
                                stderr=subprocess.DEVNULL)


def _utilisation(path: str) -> dict:
    values = []
    for line in Path(path).read_text().splitlines():
        try:
            values.append(float(line.split(",")[0]))
        except ValueError:
            pass
    if not values:
        return dict(gpu_util_samples=0)
    return dict(gpu_util_mean=round(sum(values) / len(values), 1), gpu_util_max=max(values),
                gpu_util_samples=len(values))


def stage_infer(a: argparse.Namespace) -> dict:
    inputs = json.loads(Path(a.work, "inputs.json").read_text())
    out = os.path.join(a.work, "catalog")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "galaxy_ray.cli", "infer", "--checkpoint", inputs["checkpoint"], "--source",
           os.path.join(a.work, "shards"), "--out", out, "--batch-size", str(a.batch)]
    util_log = os.path.join(a.work, "nvidia_smi.csv")
    sampler = _gpu_sampler(util_log)
    log_path = os.path.join(a.work, "infer.log")
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        # its own session, so that a time-out ends the driver and the local Ray it started, all of them
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT), start_new_session=True)
        try:
            rc = proc.wait(timeout=max(5, a.limit - 15))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
        finally:
            if sampler is not None:
                sampler.terminate()
                sampler.wait()
    seconds = time.perf_counter() - t0
    if rc != 0:
        why = f"timed out after {seconds:.0f} s" if rc is None else f"failed (rc {rc})"
        tail = Path(log_path).read_text(errors="replace").strip()[-1500:]
        raise SystemExit(f"galaxy-ray infer {why}; the end of {log_path}:\n{tail}")
    summary = json.loads(Path(out, "_catalog.json").read_text())
    rows = summary.get("rows_this_run", inputs["n"])
    result = dict(images=rows, seconds=round(seconds, 2), images_per_s=round(rows / seconds, 1),
                  images_per_s_after_startup=summary.get("rows_per_second_after_startup"),
                  startup_s=summary.get("startup_seconds"), cpu_cores=os.cpu_count())
    result.update(_utilisation(util_log) if sampler is not None else dict(gpu_util="no nvidia-smi on this machine"))
    print(f"(c) galaxy-ray infer: {rows} images in {seconds:.1f} s = {rows / seconds:.0f} images/s end to end, "
          f"{result['images_per_s_after_startup']} after its {result['startup_s']} s start-up; GPU utilisation "
          f"{result.get('gpu_util_mean', '-')} % mean", flush=True)
    return result


def gpu_decode_probe() -> str | None:
    """None when ``torchvision.io.decode_jpeg`` decodes on this machine's GPU, else the reason it cannot."""
    import io

    import torch

    if not torch.cuda.is_available():
        return "no CUDA device"
    try:
        from PIL import Image
        from torchvision.io import decode_jpeg

        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (200, 100, 50)).save(buf, format="JPEG")
        image = decode_jpeg(torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8), device="cuda")
        assert image.is_cuda and tuple(image.shape) == (3, 16, 16)
    except Exception as exc:  # noqa: BLE001  (any failure means "not here", with its reason)
        return f"torchvision.io.decode_jpeg on cuda failed: {type(exc).__name__}: {str(exc)[:200]}"
    return None


def stage_gpudecode(a: argparse.Namespace) -> dict:
    import bench_common

    reason = gpu_decode_probe()
    if reason:
        print(f"(d) GPU decoding skipped: {reason}", flush=True)
        return dict(skipped=reason)
    figures = bench_common.plain_loop(os.path.join(a.work, "shards"), a.arch, a.size, a.batch,
                                      os.cpu_count() or 1, device="cuda", decode="gpu")
    print(f"(d) plain loop, nvJPEG decoding: {figures['images_per_s']:.0f} images/s", flush=True)
    return figures


def _read(work: str, name: str) -> dict:
    try:
        return json.loads(Path(work, f"{name}.json").read_text())
    except (OSError, ValueError):
        return {"error": f"stage {name} left no figures"}


def _write(path: str, figures: dict) -> None:
    Path(path).write_text(json.dumps(figures) + "\n")


def stage_summary(a: argparse.Namespace) -> dict:
    s = {name: _read(a.work, name) for name in ("inputs", "model", "model_compiled", "plain", "infer", "gpudecode")}
    alone = s["model"].get(f"{a.arch}_b{a.batch}_eager")
    rates = dict(model_alone=alone, plain=s["plain"].get("images_per_s"), infer=s["infer"].get("images_per_s"),
                 infer_after_startup=s["infer"].get("images_per_s_after_startup"),
                 gpu_decode=s["gpudecode"].get("images_per_s"))
    ratio = lambda x: round(x / alone, 3) if x and alone else None  # noqa: E731
    hours = {k: round(GZ_DESI_GALAXIES / v / 3600, 3) for k, v in rates.items() if v}
    result = dict(device=s["model"].get("device"), arch=a.arch, image_size=a.size, batch=a.batch,
                  cpu_cores=os.cpu_count(), n=s["inputs"].get("n"), source_size=s["inputs"].get("source_size"),
                  inputs=s["inputs"].get("inputs"), images_per_s=rates,
                  ratio_infer_over_model=ratio(rates["infer"]),
                  ratio_infer_after_startup_over_model=ratio(rates["infer_after_startup"]),
                  ratio_plain_over_model=ratio(rates["plain"]), ratio_gpu_decode_over_model=ratio(rates["gpu_decode"]),
                  gpu_hours_8_7M=hours, gpu_util_mean=s["infer"].get("gpu_util_mean"),
                  gpu_util_max=s["infer"].get("gpu_util_max"),
                  model_alone={k: v for name in ("model", "model_compiled") for k, v in s[name].items()
                               if isinstance(v, (int, float))},
                  stages={k: v for k, v in s.items()
                          if "error" in v or "skipped" in v})
    print(f"summary: model alone {alone} images/s; plain loop {rates['plain']} ({result['ratio_plain_over_model']} "
          f"of it); galaxy-ray infer {rates['infer']} end to end ({result['ratio_infer_over_model']}), "
          f"{rates['infer_after_startup']} after start-up ({result['ratio_infer_after_startup_over_model']}); GPU "
          f"decoding {rates['gpu_decode'] or s['gpudecode'].get('skipped')}; GPU-hours for 8.7 M galaxies {hours}",
          flush=True)
    return result


STAGES = dict(inputs=stage_inputs, model=stage_model, plain=stage_plain, infer=stage_infer,
              gpudecode=stage_gpudecode, summary=stage_summary)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=sorted(STAGES))
    p.add_argument("--work", required=True, help="the check's work folder (stage JSONs, shards, catalog)")
    p.add_argument("--out", required=True, help="this stage's JSON file")
    p.add_argument("--n", type=int, default=20480)
    p.add_argument("--rows-per-shard", type=int, default=512)
    p.add_argument("--source-size", type=int, default=424)
    p.add_argument("--jpegs", default=None)
    p.add_argument("--arch", default="resnet18", help="the model of (b), (c), (d) and the ratios")
    p.add_argument("--archs", default="resnet18,resnet50", help="the models of (a)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=256, help="batch of (b), (c), (d) and of (a) in the ratios")
    p.add_argument("--batches", default="256,512", help="batches of (a)")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--compile", action="store_true", help="(a) with torch.compile")
    p.add_argument("--limit", type=int, default=600, help="seconds this stage may take (infer stops its run before)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    figures = STAGES[args.stage](args)
    _write(args.out, figures)
    if args.stage == "summary":
        print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
