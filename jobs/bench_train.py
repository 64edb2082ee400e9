"""Benchmark: Ray Train (one worker) against a bare PyTorch loop on the same data and model.

Both sides train the same ResNet on the same synthetic cutouts (PNG bytes in
Parquet shards), with the same preprocessing and augmentation
(:func:`galaxy_ray.train.prepare_training_batch` and
:func:`galaxy_ray.train.augment_batch`), batch size, optimizer and thread budget:

* bare PyTorch: a ``torch.utils.data.DataLoader`` with one worker process
  decoding and augmenting batches, the training loop in the main process;
* Ray Train: ``galaxy-ray train``'s own trainer (Ray Data ``map_batches``
  decoding, ``iter_torch_batches`` augmenting in its prefetch threads and
  feeding one TorchTrainer worker).

Throughput is training samples per second of training-pass time, epochs after
the first (warm-up) only.  The last line of output is one JSON object.

    python jobs/bench_train.py --n 1024 --size 64 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from galaxy_ray import runtime  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1024, help="synthetic galaxies (default 1024)")
    p.add_argument("--size", type=int, default=64, help="cutout and model input side in pixels (default 64)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per side; the first is warm-up (default 3)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--task", default="classes", choices=["classes", "gz2"])
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the training process on both sides (Ray gives its 1-CPU worker 1)")
    runtime.add_gpu_argument(p, "train on a GPU (both sides)")
    p.add_argument("--workdir", help="where shards and the run go (default: a temporary directory)")
    p.add_argument("--shuffle-buffer-batches", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--skip-bare", action="store_true", help=argparse.SUPPRESS)
    return p


def write_shards(out: Path, n: int, size: int) -> str:
    import pyarrow.parquet as pq

    from galaxy_ray.synthetic import synthetic_table

    out.mkdir(parents=True, exist_ok=True)
    per = 256
    for k, start in enumerate(range(0, n, per)):
        pq.write_table(synthetic_table(min(per, n - start), size=size, seed=7, start=start), out / f"part-{k:05d}.parquet")
    return str(out)


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
        import numpy as np
        import torch

        from galaxy_ray.train import augment_batch, prepare_training_batch

        rows = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        part = self.table.take(rows)
        batch = {c: np.array(part.column(c).to_pylist(), dtype=object) for c in part.column_names}
        cfg, preprocess = self.plan.cfg, self.plan.spec.preprocess
        out = prepare_training_batch(batch, split=cfg.split, subset="train", label=cfg.label, task=cfg.task,
                                     class_index=self.plan.class_index, preprocess=preprocess, augment=True)
        pixels = augment_batch(out["pixels"], out["key"], preprocess, cfg.seed, self.epoch + 1)
        return torch.from_numpy(pixels), torch.from_numpy(out["target"])


def bare_loop(plan, source: str, epochs: int, threads: int, use_gpu: bool) -> list[tuple[int, float]]:
    """(samples, seconds) per epoch of a plain PyTorch training loop."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import torch

    from galaxy_ray.model import build_model, loss_function

    cfg, spec = plan.cfg, plan.spec
    table = pads.dataset(source, format="parquet").to_table(columns=["object_id", "image", "source", cfg.label])
    table = table.filter(pc.invert(pc.is_null(table.column(cfg.label))))
    table = table.filter(cfg.split.mask(table.column("object_id").to_pylist(), "train"))
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.seed)
    device = torch.device("cuda" if use_gpu else "cpu")
    model = build_model(spec).to(device)
    if use_gpu:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = loss_function(spec, plan.class_weights, cfg.label_smoothing)
    data = _Batches(table, plan, cfg.batch_size)
    out = []
    for epoch in range(epochs):
        data.shuffle(epoch)
        loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=1,
                                             prefetch_factor=2, persistent_workers=False)
        model.train()
        count, t0 = 0, time.perf_counter()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if use_gpu:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_gpu):
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            count += len(x)
        out.append((count, time.perf_counter() - t0))
        print(f"bare PyTorch epoch {epoch + 1}/{epochs}: {count} samples in {out[-1][1]:.1f} s "
              f"({count / out[-1][1]:.1f} samples/s)", flush=True)
    return out


def shuffle_buffer_loop(batches: int):
    """galaxy-ray's worker function with ``batches`` batches in its local shuffle buffer."""
    from galaxy_ray.train import train_loop_per_worker

    def loop(config):
        train_loop_per_worker(config, shuffle_buffer_batches=batches)

    return loop


def ray_train(plan, shuffle_buffer_batches: int | None = None) -> list[tuple[int, float]]:
    """(samples, seconds) per epoch of galaxy-ray's Ray Train run with one worker."""
    from galaxy_ray.train import make_trainer

    loop = None if shuffle_buffer_batches is None else shuffle_buffer_loop(shuffle_buffer_batches)
    result = make_trainer(plan, train_loop=loop).fit()
    df = result.metrics_dataframe.sort_values("epoch")
    out = [(int(s), float(t)) for s, t in zip(df["samples"], df["train_seconds"])]
    for k, ((count, secs), wait) in enumerate(zip(out, df["data_wait_seconds"])):
        print(f"Ray Train epoch {k + 1}/{len(out)}: {count} samples in {secs:.1f} s ({count / secs:.1f} samples/s; "
              f"{wait:.1f} s waiting for data)", flush=True)
    return out


def _rate(epochs: list[tuple[int, float]]) -> float:
    steady = epochs[1:] or epochs
    return sum(c for c, _ in steady) / sum(t for _, t in steady)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    from galaxy_ray.train import TrainConfig, plan_run, validate

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-train-"))
    t0 = time.perf_counter()
    source = write_shards(work / "shards", args.n, args.size)
    print(f"wrote {args.n} synthetic {args.size}x{args.size} cutouts to {source} in {time.perf_counter() - t0:.1f} s",
          flush=True)
    runtime.ensure_ray(min_cpus=3, dashboard=True)
    cfg = validate(TrainConfig(source=source, task=args.task, arch=args.arch, image_size=args.size,
                               epochs=args.epochs, batch_size=args.batch_size, workers=1, gpu=args.gpu,
                               name=f"bench-{int(time.time())}", storage=str(work / "runs"), patience=10**6,
                               keep_checkpoints=args.epochs))  # Result.metrics_dataframe holds kept checkpoints only
    plan = plan_run(cfg)
    print(f"{plan.summary.n_train} training galaxies, {args.arch}, batch {args.batch_size}, "
          f"{'GPU' if plan.use_gpu else f'CPU, {args.threads} torch thread(s) for training'}", flush=True)
    bare = [(1, 1.0)] if args.skip_bare else bare_loop(plan, source, args.epochs, args.threads, plan.use_gpu)
    ray_epochs = ray_train(plan, args.shuffle_buffer_batches)
    bare_rate, ray_rate = _rate(bare), _rate(ray_epochs)
    ratio = ray_rate / bare_rate
    print(f"bare PyTorch: {bare_rate:.1f} samples/s; Ray Train (1 worker): {ray_rate:.1f} samples/s; "
          f"ratio {ratio:.3f} (goal >= 0.85)", flush=True)
    print(json.dumps({
        "bench": "train", "device": "gpu" if plan.use_gpu else "cpu", "arch": args.arch, "task": args.task,
        "image_size": args.size, "batch_size": args.batch_size, "train_samples": plan.summary.n_train,
        "epochs_timed": max(1, args.epochs - 1), "bare_samples_per_s": round(bare_rate, 2),
        "ray_train_samples_per_s": round(ray_rate, 2), "ratio": round(ratio, 4), "goal": 0.85,
    }))
    return 0


if __name__ == "__main__":
    from galaxy_ray.cli import run_entry_point

    sys.exit(run_entry_point(main))
