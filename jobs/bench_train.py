"""Benchmark: Ray Train (one worker) against a bare PyTorch loop on the same data and model.

``--case png``: synthetic cutouts at the model's side (``--size``) as PNG bytes
in Parquet shards.  Bare: a ``torch.utils.data.DataLoader`` with one worker
process decoding and augmenting each batch every epoch, training in the main
process.  Ray Train: ``galaxy-ray train``'s own trainer (Ray Data
``map_batches`` decoding, ``iter_torch_batches`` augmenting in its prefetch
threads, one TorchTrainer worker).  ``ratio`` = Ray Train / bare (goal 0.85).

``--case jpeg``: ``--jpeg-n`` synthetic 423 x 423 (``--jpeg-size``) JPEG cutouts
listed in a manifest CSV, as SDSS cutouts come, trained at ``--size``:

* bare: a plain single-process PyTorch script that decodes the JPEGs once into
  memory (uint8, resized for the model), then each epoch only augments and
  trains.  It is the denominator of both ratios: the loop a user writes by hand
  and the one to beat.  Its decoding is timed apart (``bare_jpeg_decode_s``);
* raw: Ray Train on the manifest;
* packed: Ray Train on ``galaxy-ray pack --image-size <size>`` shards (lossless
  model-sized PNG), the packing timed apart (``pack_s``).

With ``--cache auto`` (the default, as ``galaxy-ray train``'s) both Ray sides
decode once, before the first epoch, into Ray's object store, timed apart
(``raw_jpeg_cache_s``, ``packed_jpeg_cache_s``); ``--cache no`` decodes every epoch.

``ratio_raw_jpeg`` = raw / bare, ``ratio_packed_jpeg`` = packed / bare (goal 0.9).

Both cases run by default (``--case both``).  Every side uses the same ResNet,
preprocessing and augmentation (:func:`galaxy_ray.train.prepare_training_batch`
and :func:`galaxy_ray.train.augment_batch` in the run's augmentation mode),
batch size, optimizer, training split and torch threads (``--threads``; Ray
gives its 1-CPU worker one).  Throughput is training samples per second of
training-pass time (validation excluded), epochs after the first (warm-up)
only.  The last line of output is one JSON object.

    python jobs/bench_train.py                     # both cases, about 10 minutes on 2 cores
    python jobs/bench_train.py --case jpeg --jpeg-n 128 --epochs 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from galaxy_ray import runtime  # noqa: E402

#: Quality of the JPEG cutouts (the SDSS and Kaggle GZ2 cutouts are JPEGs of about this quality).
JPEG_QUALITY = 92


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=["png", "jpeg", "both"], default="both", help="which case to run (default both)")
    p.add_argument("--n", type=int, default=1024, help="synthetic galaxies of the png case (default 1024)")
    p.add_argument("--size", type=int, default=64, help="model input side, and the png cutouts' (default 64)")
    p.add_argument("--jpeg-n", type=int, default=512, help="JPEG cutouts of the jpeg case (default 512)")
    p.add_argument("--jpeg-size", type=int, default=423, help="side of the JPEG cutouts in pixels (default 423)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per side; the first is warm-up (default 3)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--task", default="classes", choices=["classes", "gz2"])
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the training process on both sides (Ray gives its 1-CPU worker 1)")
    runtime.add_gpu_argument(p, "train on a GPU (both sides)")
    p.add_argument("--workdir", help="where sources, shards and runs go (default: a temporary directory)")
    p.add_argument("--cache", default="auto", choices=["auto", "yes", "no"],
                   help="galaxy-ray train's --cache on the Ray side (default auto, what a user gets)")
    p.add_argument("--shuffle-buffer-batches", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--skip-bare", action="store_true", help=argparse.SUPPRESS)
    return p


def write_shards(out: Path, n: int, size: int) -> str:
    import pyarrow.parquet as pq

    from galaxy_ray.synthetic import synthetic_table

    out.mkdir(parents=True, exist_ok=True)
    per = 256
    for k, start in enumerate(range(0, n, per)):
        table = synthetic_table(min(per, n - start), size=size, seed=7, start=start)
        pq.write_table(table, out / f"part-{k:05d}.parquet")
    return str(out)


def write_jpeg_manifest(out: Path, n: int, size: int, quality: int = JPEG_QUALITY, workers: int | None = None) -> str:
    """``out``, now a manifest source of ``n`` synthetic ``size``-px JPEG cutouts (``manifest.csv`` + ``images/``).

    The synthetic survey's manifest layout (galaxies 0 .. n - 1 of seed 7 with
    labels, positions and GZ2 votes), each PNG re-encoded as a JPEG of
    ``quality`` and the ``path`` column pointing at it; ``workers`` processes
    render (default: one per core).
    """
    import numpy as np
    import pandas as pd
    from PIL import Image

    from galaxy_ray.data.sources.manifest import MANIFEST_CSV, PATH_COLUMN
    from galaxy_ray.synthetic import synthesize
    from galaxy_ray.synthetic.encode import encode_jpeg

    synthesize(str(out), n, size=size, fmt="manifest", seed=7, workers=workers)
    table = pd.read_csv(out / MANIFEST_CSV, dtype={PATH_COLUMN: str})
    paths = []
    for rel in table[PATH_COLUMN]:
        png = out / rel
        jpeg = png.with_suffix(".jpg")
        with Image.open(png) as image:
            jpeg.write_bytes(encode_jpeg(np.asarray(image.convert("RGB")), quality))
        png.unlink()
        paths.append(jpeg.relative_to(out).as_posix())
    table[PATH_COLUMN] = paths
    table.to_csv(out / MANIFEST_CSV, index=False)
    return str(out)


def numpy_batch(table) -> dict[str, Any]:
    """A pyarrow table as a Ray-Data-like numpy batch: one 1-D object array per column."""
    import numpy as np

    out = {}
    for name in table.column_names:
        values = table.column(name).to_pylist()
        out[name] = np.empty(len(values), dtype=object)
        out[name][:] = values
    return out


class _Batches:
    """Map-style dataset of whole training batches, decoded in the DataLoader's worker."""

    def __init__(self, table, plan, batch_size: int) -> None:
        self.table, self.plan, self.batch_size = table, plan, batch_size
        self.order = None
        self.epoch = 0

    def shuffle(self, epoch: int) -> None:
        import numpy as np

        self.epoch = epoch
        self.order = np.random.default_rng(epoch).permutation(len(self.table))

    def __len__(self) -> int:
        return -(-len(self.table) // self.batch_size)

    def __getitem__(self, i: int):
        import torch

        from galaxy_ray.train import augment_batch, prepare_training_batch

        rows = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        batch = numpy_batch(self.table.take(rows))
        cfg, preprocess = self.plan.cfg, self.plan.spec.preprocess
        out = prepare_training_batch(batch, split=cfg.split, subset="train", label=cfg.label, task=cfg.task,
                                     class_index=self.plan.class_index, preprocess=preprocess, augment=True)
        pixels = augment_batch(out["pixels"], out["key"], preprocess, cfg.seed, self.epoch + 1,
                               self.plan.worker.augment)
        return torch.from_numpy(pixels), torch.from_numpy(out["target"])


class BareTrainer:
    """The model, optimizer and loss of a bare PyTorch loop, built as galaxy-ray's worker builds them."""

    def __init__(self, plan, threads: int, use_gpu: bool) -> None:
        import torch

        from galaxy_ray.model import build_model, loss_function

        cfg, spec = plan.cfg, plan.spec
        torch.set_num_threads(threads)
        torch.manual_seed(cfg.seed)
        self.cuda = use_gpu
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.model = build_model(spec).to(self.device)
        if use_gpu:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.loss_fn = loss_function(spec, plan.class_weights, cfg.label_smoothing)

    def step(self, x, y) -> int:
        """One optimizer step on a batch; returns its size."""
        import torch

        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
            loss = self.loss_fn(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return len(x)


def _say_epoch(side: str, epoch: int, epochs: int, count: int, seconds: float) -> None:
    print(f"{side} epoch {epoch + 1}/{epochs}: {count} samples in {seconds:.1f} s ({count / seconds:.1f} samples/s)",
          flush=True)


def bare_loop(plan, source: str, epochs: int, threads: int, use_gpu: bool) -> list[tuple[int, float]]:
    """(samples, seconds) per epoch of a plain PyTorch loop decoding shards in a DataLoader worker each epoch."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import torch

    cfg = plan.cfg
    table = pads.dataset(source, format="parquet").to_table(columns=["object_id", "image", "source", cfg.label])
    table = table.filter(pc.invert(pc.is_null(table.column(cfg.label))))
    table = table.filter(cfg.split.mask(table.column("object_id").to_pylist(), "train"))
    trainer = BareTrainer(plan, threads, use_gpu)
    data = _Batches(table, plan, cfg.batch_size)
    out = []
    for epoch in range(epochs):
        data.shuffle(epoch)
        loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=1,
                                             prefetch_factor=2, persistent_workers=False)
        trainer.model.train()
        count, t0 = 0, time.perf_counter()
        for x, y in loader:
            count += trainer.step(x, y)
        out.append((count, time.perf_counter() - t0))
        _say_epoch("bare PyTorch", epoch, epochs, count, out[-1][1])
    return out


def decode_once(plan, source: str) -> tuple[Any, Any, Any]:
    """The training split of ``source`` decoded into memory, in this process, as galaxy-ray's stage decodes it.

    Returns ``(pixels, keys, targets)``: uint8 (N, 3, R, R) resized for the model
    but not augmented (R: the preprocessing's ``resize_to``), int64 (N,)
    augmentation keys, and the targets.
    """
    import numpy as np

    from galaxy_ray.data.sources import open_source
    from galaxy_ray.train import prepare_training_batch

    cfg = plan.cfg
    src = open_source(source)
    meta = src.metadata()
    meta = meta[cfg.split.mask(meta["object_id"], "train")].reset_index(drop=True)
    parts = []
    for start in range(0, len(meta), 64):
        batch = numpy_batch(src.read_rows(meta.iloc[start:start + 64]))
        parts.append(prepare_training_batch(batch, split=cfg.split, subset="train", label=cfg.label, task=cfg.task,
                                            class_index=plan.class_index, preprocess=plan.spec.preprocess,
                                            augment=True))
    return tuple(np.concatenate([p[k] for p in parts]) for k in ("pixels", "key", "target"))


def bare_loop_in_memory(plan, decoded, epochs: int, threads: int, use_gpu: bool) -> list[tuple[int, float]]:
    """(samples, seconds) per epoch of a single-process PyTorch loop on cutouts decoded once (:func:`decode_once`).

    Each batch is augmented in the loop itself, then trained on; a last batch of
    one sample is skipped, as the Ray Train worker skips it (BatchNorm needs two).
    """
    import numpy as np
    import torch

    from galaxy_ray.train import augment_batch

    cfg, (pixels, keys, targets) = plan.cfg, decoded
    trainer = BareTrainer(plan, threads, use_gpu)
    mode, preprocess, bs = plan.worker.augment, plan.spec.preprocess, cfg.batch_size
    out = []
    for epoch in range(epochs):
        order = np.random.default_rng(epoch).permutation(len(pixels))
        trainer.model.train()
        count, t0 = 0, time.perf_counter()
        for start in range(0, len(order), bs):
            rows = order[start:start + bs]
            if len(rows) < 2:
                continue
            x = augment_batch(pixels[rows], keys[rows], preprocess, cfg.seed, epoch + 1, mode)
            count += trainer.step(torch.from_numpy(x), torch.from_numpy(targets[rows]))
        out.append((count, time.perf_counter() - t0))
        _say_epoch("bare PyTorch (decoded once)", epoch, epochs, count, out[-1][1])
    return out


def recording_loop(threads_file: str, shuffle_buffer_batches: int | None = None):
    """galaxy-ray's worker function, writing the worker's torch thread count to ``threads_file`` each epoch.

    ``shuffle_buffer_batches`` replaces the batches held in its local shuffle buffer.
    """
    from galaxy_ray.train import train_loop_per_worker

    def record(epoch: int) -> None:
        import torch

        Path(threads_file).write_text(str(torch.get_num_threads()))

    def loop(config):
        extra = {} if shuffle_buffer_batches is None else {"shuffle_buffer_batches": shuffle_buffer_batches}
        train_loop_per_worker(config, on_epoch_start=record, **extra)

    return loop


def ray_train(plan, shuffle_buffer_batches: int | None = None, side: str = "Ray Train") -> tuple[list[tuple], int, float]:
    """(samples, seconds, data-wait seconds) per epoch of galaxy-ray's one-worker run, the worker's torch threads,
    and the seconds of the one decoding pass before the first epoch (``--cache``; 0 without it).

    The thread count is 0 where the worker's file is not visible here (a remote cluster).
    """
    from galaxy_ray.train import make_trainer

    threads_file = Path(plan.cfg.storage, f"{plan.cfg.name}.threads")
    plan.worker = dataclasses.replace(plan.worker, progress="off")  # this benchmark prints its own lines
    t0 = time.perf_counter()
    trainer = make_trainer(plan, train_loop=recording_loop(str(threads_file), shuffle_buffer_batches))
    cache_seconds = time.perf_counter() - t0 if plan.cache.enabled else 0.0
    result = trainer.fit()
    df = result.metrics_dataframe.sort_values("epoch")
    out = [(int(s), float(t), float(w))
           for s, t, w in zip(df["samples"], df["train_seconds"], df["data_wait_seconds"])]
    for k, (count, secs, wait) in enumerate(out):
        print(f"{side} epoch {k + 1}/{len(out)}: {count} samples in {secs:.1f} s ({count / secs:.1f} samples/s; "
              f"{wait:.1f} s waiting for data)", flush=True)
    return out, int(threads_file.read_text()) if threads_file.exists() else 0, cache_seconds


def _rate(epochs: Sequence[tuple]) -> float:
    steady = epochs[1:] or epochs
    return sum(e[0] for e in steady) / sum(e[1] for e in steady)


def _wait_share(epochs: Sequence[tuple]) -> float:
    """Fraction of the steady epochs' training time spent waiting for data."""
    steady = epochs[1:] or epochs
    return sum(e[2] for e in steady) / sum(e[1] for e in steady)


def plan_for(args, source: str, work: Path, tag: str):
    """galaxy-ray's run plan on ``source``: one worker, every epoch kept (the metrics come from checkpoints)."""
    from galaxy_ray.train import TrainConfig, plan_run, validate

    cfg = validate(TrainConfig(source=source, task=args.task, arch=args.arch, image_size=args.size,
                               epochs=args.epochs, batch_size=args.batch_size, workers=1, gpu=args.gpu,
                               name=f"bench-{tag}-{int(time.time())}", storage=str(work / "runs"), patience=10**6,
                               keep_checkpoints=args.epochs, cache=args.cache))  # Result.metrics_dataframe holds kept checkpoints only
    return plan_run(cfg)


def png_case(args, work: Path) -> dict[str, Any]:
    """Ray Train against the per-epoch-decoding bare loop on model-sized PNG shards; the JSON fields."""
    t0 = time.perf_counter()
    source = write_shards(work / "shards", args.n, args.size)
    print(f"wrote {args.n} synthetic {args.size}x{args.size} cutouts to {source} in {time.perf_counter() - t0:.1f} s",
          flush=True)
    plan = plan_for(args, source, work, "png")
    print(f"png case: {plan.summary.n_train} training galaxies, {args.arch}, batch {args.batch_size}, "
          f"{'GPU' if plan.use_gpu else f'CPU, {args.threads} torch thread(s) for training'}", flush=True)
    bare = [(1, 1.0)] if args.skip_bare else bare_loop(plan, source, args.epochs, args.threads, plan.use_gpu)
    ray_epochs, threads, _ = ray_train(plan, args.shuffle_buffer_batches)
    bare_rate, ray_rate = _rate(bare), _rate(ray_epochs)
    print(f"png case: bare PyTorch {bare_rate:.1f} samples/s; Ray Train (1 worker) {ray_rate:.1f} samples/s; "
          f"ratio {ray_rate / bare_rate:.3f} (goal >= 0.85)", flush=True)
    return {"train_samples": plan.summary.n_train, "bare_samples_per_s": round(bare_rate, 2),
            "ray_train_samples_per_s": round(ray_rate, 2), "ratio": round(ray_rate / bare_rate, 4), "goal": 0.85,
            "device": "gpu" if plan.use_gpu else "cpu", "ray_worker_threads": threads}


def jpeg_case(args, work: Path) -> dict[str, Any]:
    """Bare loop (decoded once), Ray Train on the raw JPEG manifest and on model-sized shards; the JSON fields."""
    from galaxy_ray.data.sources.pack import pack

    t0 = time.perf_counter()
    raw = write_jpeg_manifest(work / "jpeg", args.jpeg_n, args.jpeg_size)
    print(f"wrote {args.jpeg_n} synthetic {args.jpeg_size}x{args.jpeg_size} JPEG cutouts and their manifest to {raw} "
          f"in {time.perf_counter() - t0:.1f} s", flush=True)
    packed = str(work / "jpeg-packed")
    shutil.rmtree(packed, ignore_errors=True)  # pack resumes into a matching OUT and refuses another packing
    pack_seconds = pack(raw, packed, image_size=args.size, verbose=False)["seconds"]
    print(f"galaxy-ray pack --image-size {args.size}: {packed} in {pack_seconds:.1f} s", flush=True)
    raw_plan = plan_for(args, raw, work, "jpeg-raw")
    packed_plan = plan_for(args, packed, work, "jpeg-packed")
    print(f"jpeg case: {raw_plan.summary.n_train} training galaxies, {args.jpeg_size}-px JPEGs at {args.size} px, "
          f"{args.arch}, batch {args.batch_size}", flush=True)
    t0 = time.perf_counter()
    decoded = decode_once(raw_plan, raw)
    decode_seconds = time.perf_counter() - t0
    print(f"bare PyTorch: decoded {len(decoded[0])} JPEGs into memory in {decode_seconds:.1f} s", flush=True)
    bare = bare_loop_in_memory(raw_plan, decoded, args.epochs, args.threads, raw_plan.use_gpu)
    del decoded
    raw_epochs, threads, raw_cache_s = ray_train(raw_plan, args.shuffle_buffer_batches, "Ray Train, raw JPEG")
    packed_epochs, _, packed_cache_s = ray_train(packed_plan, args.shuffle_buffer_batches, "Ray Train, packed")
    bare_rate, raw_rate, packed_rate = _rate(bare), _rate(raw_epochs), _rate(packed_epochs)
    print(f"jpeg case: bare PyTorch (decoded once) {bare_rate:.1f} samples/s; Ray Train on raw JPEGs {raw_rate:.1f} "
          f"({raw_rate / bare_rate:.3f}); on packed {args.size}-px shards {packed_rate:.1f} "
          f"({packed_rate / bare_rate:.3f}, goal >= 0.9)", flush=True)
    return {"jpeg_size": args.jpeg_size, "jpeg_train_samples": raw_plan.summary.n_train,
            "bare_jpeg_decode_s": round(decode_seconds, 2), "pack_s": pack_seconds,
            "bare_jpeg_samples_per_s": round(bare_rate, 2), "raw_jpeg_samples_per_s": round(raw_rate, 2),
            "packed_jpeg_samples_per_s": round(packed_rate, 2),
            "raw_jpeg_data_wait_share": round(_wait_share(raw_epochs), 3),
            "packed_jpeg_data_wait_share": round(_wait_share(packed_epochs), 3),
            "raw_jpeg_cache_s": round(raw_cache_s, 2), "packed_jpeg_cache_s": round(packed_cache_s, 2),
            "ratio_raw_jpeg": round(raw_rate / bare_rate, 4), "ratio_packed_jpeg": round(packed_rate / bare_rate, 4),
            "goal_packed_jpeg": 0.9, "device": "gpu" if raw_plan.use_gpu else "cpu", "ray_worker_threads": threads}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-train-"))
    runtime.ensure_ray(min_cpus=3, dashboard=True)
    t0 = time.perf_counter()
    line: dict[str, Any] = {"bench": "train", "arch": args.arch, "task": args.task, "image_size": args.size,
                            "batch_size": args.batch_size, "epochs_timed": max(1, args.epochs - 1),
                            "threads": args.threads, "cache": args.cache}
    if args.case in ("png", "both"):
        line.update(png_case(args, work))
    if args.case in ("jpeg", "both"):
        line.update(jpeg_case(args, work))
    line["wall_s"] = round(time.perf_counter() - t0, 1)
    if line.get("ray_worker_threads", args.threads) not in (0, args.threads):
        print(f"note: the Ray Train worker trained with {line['ray_worker_threads']} torch threads, the bare loop with "
              f"{args.threads}; --threads {line['ray_worker_threads']} compares like with like", flush=True)
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    from galaxy_ray.cli import run_entry_point

    sys.exit(run_entry_point(main))
