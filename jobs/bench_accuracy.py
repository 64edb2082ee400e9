"""Benchmark: does ``galaxy-ray train`` classify at least as well as a plain PyTorch script?

On the same galaxies, resolution and number of epochs:

(a) **bare**: a single-process PyTorch loop of the kind the seed projects use:
    ResNet-18 from scratch, inputs scaled to [0, 1], random 90-degree
    rotations and flips, class-weighted cross-entropy (n / (K n_k)), Adam at
    1e-3, batch 32, a fixed number of epochs, scored at its last epoch;
(b) **ours**: ``galaxy-ray train --task classes --class-weights balanced``
    with its defaults otherwise (plus ``--train-args``), scored with its
    ``model.pt`` (the epoch it selected on its validation split, calibrated).

Both see the pixels ``galaxy_ray.data.transforms.preprocess_batch`` makes
(same decoding, resize and crop) and train on the same galaxies: the ones
galaxy-ray's own split puts in training (galaxy-ray also holds back its
validation split; the bare loop ignores those).  Both are scored on a
held-out test split (a hash of the object id with its own salt), that
neither saw.  Printed: balanced accuracy, accuracy and recall per class
(merger recall above all), and for ours the merger flag at the threshold it
chose on validation, with the raw and the classifier-corrected merger
fraction of the test split beside the true one.  The last line is one JSON
object.

Data (four classes, elliptical, spiral, edge_on, merger):

``synthetic``
    ``galaxy_ray.synthetic`` galaxies, Galaxy10 classes mapped to four
    (Round / In-between / Cigar -> elliptical; Barred / Tight / Loose
    spirals and Disturbed -> spiral; both edge-on -> edge_on; Merging ->
    merger), mergers subsampled to ``--merger-share`` (default 2%).
``gz2`` (``GALAXY_RAY_GZ2_SAMPLE`` or ``--gz2``, e.g. ``../shared/data/sdss_gz2_sample``)
    real SDSS cutouts with GZ2 votes, classes from the votes
    (:func:`gz2_class`): merger when Class8.6 (odd x merger) > 0.4 (Darg
    et al. 2010's cut), else elliptical when smooth >= features, else
    edge_on when "edge-on: yes" wins, else spiral.

``--task gz2`` trains ours on the 37 vote fractions instead (no bare side)
and reports the merger flag only.

    python jobs/bench_accuracy.py --data synthetic --n 2500 --size 64 --epochs 10
    GALAXY_RAY_GZ2_SAMPLE=../shared/data/sdss_gz2_sample python jobs/bench_accuracy.py --data gz2 --size 64 --epochs 12
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

CLASSES = ("edge_on", "elliptical", "merger", "spiral")  # sorted: galaxy-ray's class order
SYNTHETIC_CLASSES = {
    "Round Smooth": "elliptical", "In-between Round Smooth": "elliptical", "Cigar Shaped Smooth": "elliptical",
    "Barred Spiral": "spiral", "Unbarred Tight Spiral": "spiral", "Unbarred Loose Spiral": "spiral",
    "Disturbed": "spiral", "Edge-on without Bulge": "edge_on", "Edge-on with Bulge": "edge_on", "Merging": "merger",
}
TEST_SALT = "bench-accuracy-test"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=["synthetic", "gz2"], default="synthetic")
    p.add_argument("--gz2", default=os.environ.get("GALAXY_RAY_GZ2_SAMPLE"), help="the GZ2 sample folder")
    p.add_argument("--task", choices=["classes", "gz2"], default="classes")
    p.add_argument("--n", type=int, default=2500, help="synthetic galaxies rendered before subsampling mergers")
    p.add_argument("--merger-share", type=float, default=0.02, help="synthetic: share of mergers kept")
    p.add_argument("--source-size", type=int, default=64, help="synthetic: rendered cutout side in pixels")
    p.add_argument("--size", type=int, default=64, help="model input side in pixels (both sides)")
    p.add_argument("--crop-fraction", type=float, default=1.0, help="centre crop kept before resizing (both sides)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the bare loop")
    p.add_argument("--train-args", default="", help="extra `galaxy-ray train` flags for ours, one string")
    p.add_argument("--skip-bare", action="store_true")
    p.add_argument("--skip-ours", action="store_true")
    p.add_argument("--workdir", help="where the shards and the run go (default: a temporary directory)")
    return p


# --------------------------------------------------------------------------- data


def gz2_class(votes: np.ndarray, vote_cut: float = 0.4) -> np.ndarray:
    """Four classes from cumulative GZ2 vote fractions (N, 37) in Kaggle order (see the module docstring)."""
    from galaxy_ray import schema

    col = {name: i for i, name in enumerate(schema.GZ2_KAGGLE_COLUMNS)}
    v = np.asarray(votes, dtype=np.float64)
    smooth = v[:, col["Class1.1"]] >= v[:, col["Class1.2"]]
    edge_on = v[:, col["Class2.1"]] > v[:, col["Class2.2"]]
    label = np.where(smooth, "elliptical", np.where(edge_on, "edge_on", "spiral")).astype(object)
    label[v[:, schema.GZ2_MERGER_INDEX] > vote_cut] = "merger"
    return label


def synthetic_rows(n: int, size: int, seed: int, merger_share: float) -> pa.Table:
    """Synthetic galaxies in four classes, mergers thinned to ``merger_share`` of the rows."""
    from galaxy_ray.synthetic import synthetic_table

    table = synthetic_table(n, size, seed=seed)
    label = np.array([SYNTHETIC_CLASSES[str(v)] for v in table.column("label").to_pylist()], dtype=object)
    others = int((label != "merger").sum())
    keep_mergers = max(2, round(merger_share * others / (1 - merger_share)))
    merger_rows = np.flatnonzero(label == "merger")[:keep_mergers]
    keep = np.sort(np.r_[np.flatnonzero(label != "merger"), merger_rows])
    table = table.take(pa.array(keep))
    return table.set_column(table.schema.get_field_index("label"), "label", pa.array(label[keep], pa.string()))


def gz2_rows(folder: str) -> pa.Table:
    """The GZ2 sample's cutouts with their votes and the four classes of :func:`gz2_class`."""
    from galaxy_ray.data.sources import open_source

    src = open_source(folder)
    table = src.read_rows(src.metadata())
    votes = np.stack([np.asarray(v, dtype=np.float64) for v in table.column("votes").to_pylist()])
    if "label" in table.column_names:  # the reader's own label (e.g. gz2_class) gives way to the four classes
        table = table.drop_columns(["label"])
    return table.append_column("label", pa.array(gz2_class(votes), pa.string()))


def split_test(table: pa.Table, fraction: float) -> tuple[pa.Table, pa.Table]:
    """(rows for training, held-out test rows) by a hash of ``object_id`` with the benchmark's own salt."""
    from galaxy_ray.data.split import Split

    test = Split(fraction, TEST_SALT).mask(table.column("object_id").to_pylist(), "val")
    return table.filter(pa.array(~test)), table.filter(pa.array(test))


def write_shards(table: pa.Table, out: Path, rows: int = 500) -> str:
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    keep = [c for c in ("object_id", "ra", "dec", "image", "source", "votes", "label") if c in table.column_names]
    for k, start in enumerate(range(0, table.num_rows, rows)):
        pq.write_table(table.select(keep).slice(start, rows), out / f"part-{k:05d}.parquet")
    return str(out)


def model_input(table: pa.Table, size: int, crop: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 pixels (N, 3, S, S) of the rows that decode, their class indices, and the GZ2 merger truth.

    The truth is Class8.6 > 0.4 where the rows carry votes (what a gz2 run is
    calibrated to), else the merger class.
    """
    from galaxy_ray import schema
    from galaxy_ray.data.transforms import PreprocessConfig, ok_rows, preprocess_batch

    batch = {k: np.asarray(table.column(k).to_pylist(), dtype=object) for k in ("object_id", "image", "source")}
    out = preprocess_batch(batch, PreprocessConfig(size, crop))
    ok = ok_rows(out["error"])
    labels = np.array([CLASSES.index(v) for v in table.column("label").to_pylist()])
    if "votes" in table.column_names:
        votes = np.stack([np.asarray(v, dtype=np.float64) for v in table.column("votes").to_pylist()])
        vote_merger = votes[:, schema.GZ2_MERGER_INDEX] > 0.4
    else:
        vote_merger = labels == CLASSES.index("merger")
    return out["pixels"][ok], labels[ok], vote_merger[ok]


# --------------------------------------------------------------------------- the two sides


def bare_loop(pixels: np.ndarray, labels: np.ndarray, epochs: int, seed: int, threads: int,
              batch_size: int = 32):
    """(a): the plain script. Returns the model at its last epoch, in eval mode."""
    import torch

    from galaxy_ray.tv import torchvision

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    net = torchvision.models.resnet18(weights=None, num_classes=len(CLASSES))
    counts = np.bincount(labels, minlength=len(CLASSES)).astype(np.float64)
    weight = torch.tensor(np.where(counts > 0, counts.sum() / (len(CLASSES) * np.maximum(counts, 1)), 0.0),
                          dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x_all, y_all = torch.from_numpy(pixels), torch.from_numpy(labels).long()
    for _ in range(epochs):
        net.train()
        for idx in np.array_split(rng.permutation(len(x_all)), max(1, len(x_all) // batch_size)):
            x = x_all[idx].float() / 255.0
            x = torch.stack([img.rot90(int(k), dims=(1, 2)) for img, k in zip(x, rng.integers(0, 4, len(x)))])
            flip = torch.from_numpy(rng.random(len(x)) < 0.5)
            x[flip] = x[flip].flip(-1)
            opt.zero_grad()
            loss_fn(net(x), y_all[idx]).backward()
            opt.step()
    return net.eval()


def bare_predict(net, pixels: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.softmax(net(torch.from_numpy(pixels).float() / 255.0), dim=1).numpy()


def run_ours(source: str, workdir: Path, args) -> str:
    """(b): ``galaxy-ray train`` in this process (a local Ray); returns its ``model.pt``."""
    from galaxy_ray.train import config_from_args, run_training

    argv = ["--source", source, "--task", args.task, "--image-size", str(args.size), "--crop-fraction",
            str(args.crop_fraction), "--epochs", str(args.epochs), "--seed", str(args.seed), "--name", "ours",
            "--storage", str(workdir / "runs")]
    if args.task == "classes":
        argv += ["--class-weights", "balanced", "--merger", "merger"]
    print("$ galaxy-ray train " + shlex.join(argv + shlex.split(args.train_args)), flush=True)
    return run_training(config_from_args(argv + shlex.split(args.train_args)))["model"]


# --------------------------------------------------------------------------- scores


def class_scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    pred = probs.argmax(axis=1)
    recall = {name: (float((pred[labels == i] == i).mean()) if (labels == i).any() else None)
              for i, name in enumerate(CLASSES)}
    m = CLASSES.index("merger")
    flagged = pred == m
    present = [r for r in recall.values() if r is not None]
    return {"balanced_accuracy": float(np.mean(present)), "accuracy": float((pred == labels).mean()),
            "recall": recall, "support": {n: int((labels == i).sum()) for i, n in enumerate(CLASSES)},
            "merger_precision": float((labels[flagged] == m).mean()) if flagged.any() else None}


def merger_flag(model_uri: str, probs: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Ours: the merger flag at its stored threshold on the test split, and the merger fraction it implies."""
    from galaxy_ray.merger.fractions import corrected_from_provenance
    from galaxy_ray.catalog.stats import wilson_interval
    from galaxy_ray.model import Predictor, merger_probability, stored_operating_point

    predictor = Predictor.from_checkpoint(model_uri, device="cpu")
    threshold, validation, how = stored_operating_point(predictor.extra)
    flagged = merger_probability(predictor.spec, probs) >= threshold
    tp = int((flagged & truth).sum())
    corrected = corrected_from_provenance(int(flagged.sum()), len(flagged), {"merger_validation": validation})
    return {"threshold": threshold, "threshold_source": how, "validation": {
                k: validation[k] for k in ("precision", "recall", "precision_interval", "recall_interval",
                                           "positives", "negatives", "true_positives", "false_positives")}
            if validation else None,
            "test_precision": tp / int(flagged.sum()) if flagged.any() else None,
            "test_recall": tp / int(truth.sum()) if truth.any() else None,
            "true_fraction": float(truth.mean()), "raw_fraction": float(flagged.mean()),
            "raw_fraction_95": list(wilson_interval(int(flagged.sum()), len(flagged))),
            "corrected_fraction": corrected["corrected_fraction"],
            "corrected_fraction_95": corrected["corrected_fraction_95"]}


def _show(name: str, s: dict[str, Any]) -> None:
    recall = ", ".join(f"{k} {'n/a' if v is None else f'{v:.2f}'} ({s['support'][k]})" for k, v in s["recall"].items())
    mp = "n/a" if s["merger_precision"] is None else f"{s['merger_precision']:.2f}"
    print(f"{name}: balanced accuracy {s['balanced_accuracy']:.3f}, accuracy {s['accuracy']:.3f}, "
          f"{s['seconds']:.0f} s; recall {recall}; merger precision (argmax) {mp}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    from galaxy_ray.model import Predictor

    args = build_parser().parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-accuracy-"))
    if args.data == "gz2" and not args.gz2:
        raise SystemExit("--data gz2 needs --gz2 or GALAXY_RAY_GZ2_SAMPLE")
    table = gz2_rows(args.gz2) if args.data == "gz2" else synthetic_rows(args.n, args.source_size, args.seed,
                                                                          args.merger_share)
    train_rows, test_rows = split_test(table, args.test_fraction)
    source = write_shards(train_rows, work / "data")
    x_test, y_test, votes_merger = model_input(test_rows, args.size, args.crop_fraction)
    counts = {n: int((np.array(table.column("label").to_pylist()) == n).sum()) for n in CLASSES}
    print(f"{args.data}: {table.num_rows} galaxies {counts}; {train_rows.num_rows} for training, "
          f"{len(y_test)} held out; {args.size} px, crop {args.crop_fraction}, {args.epochs} epochs", flush=True)
    result: dict[str, Any] = {"bench": "accuracy", "data": args.data, "task": args.task, "galaxies": table.num_rows,
                              "classes": counts, "test_rows": int(len(y_test)), "size": args.size,
                              "crop_fraction": args.crop_fraction, "epochs": args.epochs,
                              "train_args": args.train_args}
    if args.task == "classes" and not args.skip_bare:
        from galaxy_ray.data.split import Split

        fit_rows = train_rows.filter(pa.array(Split(0.2).mask(train_rows.column("object_id").to_pylist(), "train")))
        x_fit, y_fit, _ = model_input(fit_rows, args.size, args.crop_fraction)
        t0 = time.perf_counter()
        net = bare_loop(x_fit, y_fit, args.epochs, args.seed, args.threads)
        result["bare"] = dict(class_scores(bare_predict(net, x_test), y_test), seconds=time.perf_counter() - t0)
        _show("bare", result["bare"])
    if not args.skip_ours:
        t0 = time.perf_counter()
        model_uri = run_ours(source, work, args)
        probs = Predictor.from_checkpoint(model_uri, device="cpu")(x_test)
        seconds = time.perf_counter() - t0
        if args.task == "classes":
            result["ours"] = dict(class_scores(probs, y_test), seconds=seconds)
            _show("ours", result["ours"])
        truth = votes_merger if args.task == "gz2" else y_test == CLASSES.index("merger")
        result["ours_merger_flag"] = merger_flag(model_uri, probs, truth)
        print(f"ours, merger flag on the test split: {json.dumps(result['ours_merger_flag'])}", flush=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
