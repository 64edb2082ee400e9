"""Benchmark: does training on vote *counts* (``--task votes``) beat regressing vote *fractions*?

``--data synthetic`` (default): a synthetic GZ DECaLS DR8 / GZ DESI survey
(``galaxy_ray.synthetic``: the same galaxies, pixels and true vote
probabilities ``synth --tree decals-dr8`` writes), each galaxy classified by
a varying number of volunteers (by default half 3-8, half 30-40, as in GZ
DECaLS; ``--volunteers LOW HIGH`` draws uniformly instead).  On the same
galaxies, network (ResNet-18 from scratch), resolution, epochs, optimiser
(AdamW 1e-3, weight decay 0.05, cosine), batch, augmentation (the 8 dihedral
views) and seed:

(a) **fractions**: a single-process loop regressing the volunteers' observed
    conditional fractions with a squared error, through one softmax per
    question (so each question's fractions sum to 1); answers of a question
    nobody reached are left out of the loss.  There is no fraction task for the
    DECaLS tree in galaxy-ray: this is the baseline a person would write;
(b) **votes**: the same loop with the Dirichlet-multinomial loss on the counts
    (``galaxy_ray.model.losses.vote_count_loss``, the network's Dirichlet head);
(c) **votes (Ray Train)**: ``galaxy-ray train --task votes --schema decals-dr8``
    itself, scored with its ``model.pt`` (the epoch it chose on its validation split).

(a) and (b) train on the galaxies galaxy-ray's own split puts in training, so
all three see the same training galaxies; all are scored on a held-out test
split (a hash of the object id with this benchmark's salt) against the
galaxies' TRUE vote probabilities, which the simulation knows.  Each
question's RMSE is weighted per galaxy by the question's true proportion asked
(the share of volunteers who would reach it), so a bar error counts as much as
volunteers would have been asked about a bar; ``overall`` weights every
answer the same way.  Beside them: the volunteers' own fractions against the
truth (where anyone reached the question: the label noise) and a constant
prediction of the training mean.

``--data gz2`` (``GALAXY_RAY_GZ2_SAMPLE`` or ``--gz2``): the real SDSS sample
with Hart et al. (2016) counts.  ``galaxy-ray train --task votes --schema gz2``
against ``--task gz2`` (Kaggle's cumulative fractions, squared error; its
outputs turned into conditional fractions by
:func:`galaxy_ray.trees.fractions.to_conditional`), scored on a held-out split
against the volunteers' observed conditional fractions (the truth is unknown),
each question weighted by its observed proportion asked.  The floor is the
volunteers' own sampling noise: a fraction from N votes scatters around the
vote probability by :math:`\\sqrt{p(1-p)/N}` (binomial), estimated unbiased
per galaxy as :math:`\\hat p(1-\\hat p)/(N-1)`; a perfect model's RMSE
against observed fractions is this, not 0.  MAE is printed beside RMSE for
comparison with Zoobot's "within 5-10 per cent for every answer to every GZ
question" (Walmsley et al. 2023, MNRAS 526, 4768, abstract).

    python jobs/bench_votes.py                       # synthetic, ~10 min on 2 cores
    python jobs/bench_votes.py --n 6000 --size 64 --epochs 12
    GALAXY_RAY_GZ2_SAMPLE=../shared/data/sdss_gz2_sample python jobs/bench_votes.py --data gz2

The last line of output is one JSON object.
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
from typing import Any, Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

TEST_SALT = "bench-votes-test"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=["synthetic", "gz2", "both"], default="synthetic")
    p.add_argument("--gz2", default=os.environ.get("GALAXY_RAY_GZ2_SAMPLE"), help="the GZ2 sample folder")
    p.add_argument("--n", type=int, default=2000, help="synthetic galaxies (default 2000)")
    p.add_argument("--size", type=int, default=40, help="synthetic: cutout and model side in pixels (default 40)")
    p.add_argument("--epochs", type=int, default=6, help="synthetic epochs, every side (default 6)")
    p.add_argument("--volunteers", type=int, nargs=2, metavar=("LOW", "HIGH"),
                   help="synthetic: volunteers per galaxy uniform in [LOW, HIGH] (default: half 3-8, half 30-40)")
    p.add_argument("--batch-size", type=int, default=32, help="synthetic: batch of the loops and of each worker")
    p.add_argument("--gz2-size", type=int, default=64, help="gz2: model side in pixels (default 64)")
    p.add_argument("--gz2-crop", type=float, default=0.6, help="gz2: centre crop kept (default 0.6)")
    p.add_argument("--gz2-epochs", type=int, default=12, help="gz2 epochs (default 12)")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the single-process loops")
    p.add_argument("--skip-ray", action="store_true", help="synthetic: leave out (c)")
    p.add_argument("--train-args", default="", help="extra `galaxy-ray train` flags for every Ray Train run")
    p.add_argument("--workdir", help="where shards and runs go (default: a temporary directory)")
    return p


# --------------------------------------------------------------------------- scores


def weighted_rmse(pred: np.ndarray, truth: np.ndarray, weight: np.ndarray, tree) -> dict[str, Any]:
    """RMSE per question and overall, each galaxy's squared errors weighted by ``weight`` (N, Q).

    A question's RMSE is ``sqrt(sum_i w_iq mean_k e_ik^2 / sum_i w_iq)``; ``overall`` pools every
    answer with its question's weight, ``sqrt(sum w_iq e_ik^2 / sum w_iq |q|)``.  MAE likewise.
    """
    err = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    out: dict[str, Any] = {"per_question": {}, "per_question_mae": {}}
    num = den = num_abs = 0.0
    for qi, q in enumerate(tree.questions):
        w = weight[:, qi]
        sq, ab = (err[:, q.start:q.stop] ** 2).sum(axis=1), np.abs(err[:, q.start:q.stop]).sum(axis=1)
        wsum = float(w.sum()) * len(q.answers)
        out["per_question"][q.key] = round(float(np.sqrt((w * sq).sum() / wsum)), 4) if wsum > 0 else None
        out["per_question_mae"][q.key] = round(float((w * ab).sum() / wsum), 4) if wsum > 0 else None
        num, den, num_abs = num + float((w * sq).sum()), den + wsum, num_abs + float((w * ab).sum())
    out["overall"], out["overall_mae"] = round(float(np.sqrt(num / den)), 4), round(num_abs / den, 4)
    return out


def binomial_floor(counts: np.ndarray, weight: np.ndarray, tree) -> dict[str, Any]:
    """The volunteers' sampling noise as :func:`weighted_rmse` would see it: per question and overall.

    Each observed fraction from a question's N votes scatters around its vote probability with
    variance p(1-p)/N; estimated per galaxy and answer as p^(1-p^)/(N-1) (unbiased, N >= 2; a
    question with N < 2 votes is left out).  MAE: sqrt(2/pi) x that standard deviation (normal).
    """
    from galaxy_ray.trees.fractions import observed_fractions

    p = observed_fractions(counts, tree)
    out: dict[str, Any] = {"per_question": {}, "per_question_mae": {}}
    num = den = num_abs = 0.0
    for qi, q in enumerate(tree.questions):
        n = counts[:, q.start:q.stop].sum(axis=1)
        w = np.where(n >= 2, weight[:, qi], 0.0)
        pq = p[:, q.start:q.stop]
        var = pq * (1 - pq) / np.maximum(n - 1, 1)[:, None]
        wsum = float(w.sum()) * len(q.answers)
        v, a = float((w * var.sum(axis=1)).sum()), float((w * np.sqrt(2 / np.pi * var).sum(axis=1)).sum())
        out["per_question"][q.key] = round(float(np.sqrt(v / wsum)), 4) if wsum > 0 else None
        out["per_question_mae"][q.key] = round(a / wsum, 4) if wsum > 0 else None
        num, den, num_abs = num + v, den + wsum, num_abs + a
    out["overall"], out["overall_mae"] = round(float(np.sqrt(num / den)), 4), round(num_abs / den, 4)
    return out


def training_mean(fractions: np.ndarray, counts: np.ndarray, tree) -> np.ndarray:
    """Each answer's mean observed fraction over the training galaxies that reached its question, (K,)."""
    out = np.zeros(len(tree.answers))
    for q in tree.questions:
        asked = counts[:, q.start:q.stop].sum(axis=1) > 0
        out[q.start:q.stop] = fractions[asked, q.start:q.stop].mean(axis=0) if asked.any() else 1 / len(q.answers)
    return out


# --------------------------------------------------------------------------- the single-process loops


def question_softmax(logits, slices):
    import torch

    return torch.cat([torch.softmax(logits[:, a:b], dim=1) for a, b in slices], dim=1)


def fraction_loss(slices) -> Callable:
    """(a)'s loss: squared error of per-question softmax fractions against observed ones, unasked answers out."""
    import torch

    def loss(logits, target):
        counts, observed = target[:, 0], target[:, 1]
        pred = question_softmax(logits, slices)
        asked = torch.cat([(counts[:, a:b].sum(dim=1, keepdim=True) > 0).expand(-1, b - a) for a, b in slices], 1)
        return ((pred - observed) ** 2 * asked).sum() / asked.sum().clamp(min=1)

    return loss


def dihedral(x, rng: np.random.Generator):
    """Each image rotated by a random multiple of 90 degrees and flipped with probability 1/2 (``--augment dihedral``)."""
    import torch

    x = torch.stack([img.rot90(int(k), dims=(1, 2)) for img, k in zip(x, rng.integers(0, 4, len(x)))])
    flip = torch.from_numpy(rng.random(len(x)) < 0.5)
    x[flip] = x[flip].flip(-1)
    return x


def train_loop(kind: str, pixels: np.ndarray, counts: np.ndarray, tree, args) -> Callable[[np.ndarray], np.ndarray]:
    """Train (a) ``kind="fractions"`` or (b) ``"votes"`` in this process; returns ``predict(pixels) -> (N, K)``.

    Both: :class:`galaxy_ray.model.nets.GalaxyNet` of a decals-dr8 votes spec (the same backbone and
    linear head), AdamW (lr 1e-3, weight decay 0.05), cosine per epoch to lr/100 as ``galaxy-ray
    train``, BatchNorm statistics re-estimated on un-augmented cutouts at the end (as before each of
    its validations).  (a) reads the head's logits through per-question softmaxes, (b) through the
    Dirichlet head.
    """
    import torch
    from torch.optim.swa_utils import update_bn

    from galaxy_ray.data.transforms import PreprocessConfig
    from galaxy_ray.model import ModelSpec, build_model
    from galaxy_ray.model.losses import vote_count_loss
    from galaxy_ray.trees.fractions import observed_fractions

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    net = build_model(ModelSpec.for_votes("resnet18", tree.name, PreprocessConfig(pixels.shape[-1])))
    slices = tree.slices

    def forward(x):
        if kind == "votes":
            return net(x)
        return net.head(net.backbone(net.normalise(x)))

    loss_fn = vote_count_loss(slices) if kind == "votes" else fraction_loss(slices)
    target = torch.from_numpy(counts.astype(np.float32))
    if kind == "fractions":
        target = torch.stack([target, torch.from_numpy(observed_fractions(counts, tree).astype(np.float32))], 1)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, args.epochs), eta_min=1e-5)
    x_all = torch.from_numpy(pixels)
    for epoch in range(args.epochs):
        net.train()
        t0, total = time.perf_counter(), 0.0
        for idx in np.array_split(rng.permutation(len(x_all)), max(1, len(x_all) // args.batch_size)):
            opt.zero_grad()
            loss = loss_fn(forward(dihedral(x_all[idx], rng)), target[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        print(f"  {kind} loop epoch {epoch + 1}/{args.epochs}: train loss {total / len(x_all):.4f}, "
              f"{len(x_all) / (time.perf_counter() - t0):.1f} samples/s", flush=True)
    with torch.no_grad():
        update_bn((x_all[i:i + 64] for i in range(0, min(len(x_all), 1024), 64)), net)
    net.eval()

    def predict(px: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.from_numpy(px)
            out = net.predict(x) if kind == "votes" else question_softmax(forward(x), slices)
            return out.numpy().astype(np.float64)

    return predict


# --------------------------------------------------------------------------- data


def split_test(table: pa.Table, fraction: float) -> tuple[pa.Table, pa.Table]:
    """(rows for training, held-out test rows) by a hash of ``object_id`` with this benchmark's salt."""
    from galaxy_ray.data.split import Split

    test = Split(fraction, TEST_SALT).mask(table.column("object_id").to_pylist(), "val")
    return table.filter(pa.array(~test)), table.filter(pa.array(test))


def write_shards(table: pa.Table, out: Path, extra: Sequence[str], rows: int = 500) -> str:
    """Shards of the cutout columns and ``extra`` (the tree's count columns) for ``galaxy-ray train``."""
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    keep = [c for c in ("object_id", "ra", "dec", "image", "source", "votes") if c in table.column_names]
    for k, start in enumerate(range(0, table.num_rows, rows)):
        pq.write_table(table.select(keep + list(extra)).slice(start, rows), out / f"part-{k:05d}.parquet")
    return str(out)


def pixels_of(table: pa.Table, size: int, crop: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 model input (N, 3, S, S) of the rows that decode, and their row mask."""
    from galaxy_ray.data.transforms import PreprocessConfig, ok_rows, preprocess_batch

    batch = {k: np.asarray(table.column(k).to_pylist(), dtype=object) for k in ("object_id", "image", "source")}
    out = preprocess_batch(batch, PreprocessConfig(size, crop))
    ok = ok_rows(out["error"])
    return out["pixels"][ok], ok


def count_matrix(table: pa.Table, columns: Sequence[str]) -> np.ndarray:
    return np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in columns], axis=1).astype(np.float64)


def fit_rows(table: pa.Table) -> pa.Table:
    """The rows galaxy-ray's default split (validation 0.2) puts in training."""
    from galaxy_ray.data.split import Split

    return table.filter(pa.array(Split(0.2).mask(table.column("object_id").to_pylist(), "train")))


def run_ray(source: str, work: Path, name: str, argv: list[str], args) -> str:
    """``galaxy-ray train`` in this process (a local Ray); returns its ``model.pt``."""
    from galaxy_ray.train import config_from_args, run_training

    argv = ["--source", source, *argv, "--seed", str(args.seed), "--name", name, "--storage", str(work / "runs"),
            *shlex.split(args.train_args)]
    print("$ galaxy-ray train " + shlex.join(argv), flush=True)
    return run_training(config_from_args(argv))["model"]


# --------------------------------------------------------------------------- the two benchmarks


def _show(rows: dict[str, dict[str, Any]], questions: Sequence[str], base: str) -> None:
    """A per-question table of RMSEs, one column per side, and each side's overall ratio to ``base``."""
    names = list(rows)
    print(f"{'question':<20}" + "".join(f"{n[:16]:>17}" for n in names))
    for q in questions:
        cells = [rows[n]["per_question"][q] for n in names]
        print(f"{q:<20}" + "".join(f"{'n/a' if c is None else f'{c:.4f}':>17}" for c in cells))
    print(f"{'overall':<20}" + "".join(f"{rows[n]['overall']:>17.4f}" for n in names))
    print(f"{'overall MAE':<20}" + "".join(f"{rows[n]['overall_mae']:>17.4f}" for n in names))
    print(f"{'ratio to ' + base[:10]:<20}" + "".join(f"{rows[n]['overall'] / rows[base]['overall']:>17.3f}"
                                                     for n in names), flush=True)


def synthetic(args, work: Path) -> dict[str, Any]:
    """Part 1: (a) fractions, (b) votes, (c) votes through Ray Train, scored against the true probabilities."""
    import pyarrow.parquet as pq

    from galaxy_ray.model import Predictor
    from galaxy_ray.synthetic import synthesize
    from galaxy_ray.synthetic.votes import decals_vote_table, true_probabilities
    from galaxy_ray.trees import DECALS_DR8
    from galaxy_ray.trees.fractions import observed_fractions, proportion_asked

    tree, t0 = DECALS_DR8, time.perf_counter()
    names = list(tree.count_forms["galaxy-datasets"])
    synthesize(str(work / "render"), args.n, args.size, "shards", args.seed, workers=2)
    votes = decals_vote_table(args.seed, args.n, tree, volunteers=tuple(args.volunteers) if args.volunteers else None)
    table = pq.read_table(work / "render").sort_by("object_id")
    votes = votes.set_index("object_id").loc[table.column("object_id").to_pylist()]
    for name in names:
        table = table.append_column(name, pa.array(votes[name].to_numpy(np.float64)))
    truth_all = true_probabilities(votes.reset_index(), tree)
    table = table.append_column("_row", pa.array(np.arange(table.num_rows)))
    train_rows, test_rows = split_test(table, args.test_fraction)
    fit = fit_rows(train_rows)
    x_fit, ok = pixels_of(fit, args.size)
    c_fit = count_matrix(fit, names)[ok]
    x_test, ok_t = pixels_of(test_rows, args.size)
    truth = truth_all[np.asarray(test_rows.column("_row"))[ok_t]]
    c_test = count_matrix(test_rows, names)[ok_t]
    weight = proportion_asked(truth, tree)
    volunteers = c_fit[:, tree.question("smooth-or-featured").start:tree.question("smooth-or-featured").stop].sum(1)
    print(f"synthetic {tree.title}: {table.num_rows} galaxies at {args.size} px, {len(x_fit)} fitted by the loops "
          f"({train_rows.num_rows} given to galaxy-ray train), {len(x_test)} held out; volunteers per galaxy "
          f"{int(volunteers.min())}-{int(volunteers.max())} (median {np.median(volunteers):.0f}); {args.epochs} epochs; "
          f"data {time.perf_counter() - t0:.0f} s", flush=True)
    rows: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    for kind in ("fractions", "votes"):
        t1 = time.perf_counter()
        predict = train_loop(kind, x_fit, c_fit, tree, args)
        rows[f"{kind} loop"] = weighted_rmse(predict(x_test), truth, weight, tree)
        seconds[f"{kind} loop"] = round(time.perf_counter() - t1, 1)
        print(f"{kind} loop: overall RMSE {rows[f'{kind} loop']['overall']:.4f} ({seconds[f'{kind} loop']:.0f} s)",
              flush=True)
    if not args.skip_ray:
        t1 = time.perf_counter()
        source = write_shards(train_rows, work / "train", names)
        model = run_ray(source, work, "votes", ["--task", "votes", "--schema", tree.name, "--image-size",
                                                str(args.size), "--epochs", str(args.epochs), "--batch-size",
                                                str(args.batch_size), "--patience", str(args.epochs)], args)
        rows["votes Ray Train"] = weighted_rmse(Predictor.from_checkpoint(model, device="cpu")(x_test), truth,
                                                weight, tree)
        seconds["votes Ray Train"] = round(time.perf_counter() - t1, 1)
    observed = observed_fractions(c_test, tree)
    asked = np.stack([c_test[:, q.start:q.stop].sum(axis=1) > 0 for q in tree.questions], axis=1)
    rows["volunteers"] = weighted_rmse(observed, truth, weight * asked, tree)
    mean = training_mean(observed_fractions(c_fit, tree), c_fit, tree)
    rows["training mean"] = weighted_rmse(np.broadcast_to(mean, truth.shape), truth, weight, tree)
    _show(rows, [q.key for q in tree.questions], "fractions loop")
    return {"tree": tree.name, "galaxies": table.num_rows, "fitted": int(len(x_fit)), "test": int(len(x_test)),
            "size": args.size, "epochs": args.epochs, "volunteers": args.volunteers or "3-8 or 30-40",
            "weighting": "per galaxy by the question's true proportion asked; volunteers: only where asked",
            "rmse": {k: v["overall"] for k, v in rows.items()}, "mae": {k: v["overall_mae"] for k, v in rows.items()},
            "ratio_votes_loop_to_fractions": round(rows["votes loop"]["overall"] / rows["fractions loop"]["overall"], 3),
            "ratio_votes_ray_to_fractions": (round(rows["votes Ray Train"]["overall"] / rows["fractions loop"]["overall"], 3)
                                             if "votes Ray Train" in rows else None),
            "per_question": {k: v["per_question"] for k, v in rows.items()}, "seconds": seconds}


def gz2(args, work: Path) -> dict[str, Any]:
    """Part 2: ``--task votes --schema gz2`` against ``--task gz2`` on the real sample, beside the volunteers' noise."""
    from galaxy_ray.data.sources import open_source
    from galaxy_ray.model import Predictor
    from galaxy_ray.trees import GZ2, vote_columns
    from galaxy_ray.trees.fractions import observed_fractions, proportion_asked, to_conditional

    if not args.gz2:
        raise SystemExit("--data gz2 needs --gz2 or GALAXY_RAY_GZ2_SAMPLE")
    src = open_source(args.gz2)
    table = src.read_rows(src.metadata())
    names = list(vote_columns(table.column_names, GZ2, args.gz2, kind="counts").columns)
    train_rows, test_rows = split_test(table, args.test_fraction)
    source = write_shards(train_rows, work / "gz2_train", names)
    x_test, ok = pixels_of(test_rows, args.gz2_size, args.gz2_crop)
    counts = count_matrix(test_rows, names)[ok]
    observed = observed_fractions(counts, GZ2)
    weight = proportion_asked(observed, GZ2)
    print(f"GZ2 sample {args.gz2}: {table.num_rows} galaxies, {train_rows.num_rows} for training, {len(x_test)} held "
          f"out; {args.gz2_size} px, crop {args.gz2_crop}, {args.gz2_epochs} epochs; median "
          f"{np.median(counts[:, :3].sum(axis=1)):.0f} volunteers per galaxy", flush=True)
    common = ["--image-size", str(args.gz2_size), "--crop-fraction", str(args.gz2_crop), "--epochs",
              str(args.gz2_epochs), "--batch-size", "16", "--patience", str(args.gz2_epochs)]
    rows: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    for name, task in (("gz2 task", ["--task", "gz2"]), ("votes task", ["--task", "votes", "--schema", "gz2"])):
        t1 = time.perf_counter()
        probs = Predictor.from_checkpoint(run_ray(source, work, name.split()[0], task + common, args), device="cpu")(x_test)
        conditional = to_conditional(probs, GZ2) if task[1] == "gz2" else probs
        rows[name] = weighted_rmse(conditional, observed, weight, GZ2)
        seconds[name] = round(time.perf_counter() - t1, 1)
    fit_counts = count_matrix(train_rows, names)
    mean = training_mean(observed_fractions(fit_counts, GZ2), fit_counts, GZ2)
    rows["training mean"] = weighted_rmse(np.broadcast_to(mean, observed.shape), observed, weight, GZ2)
    rows["volunteer noise"] = binomial_floor(counts, weight, GZ2)
    _show(rows, [q.key for q in GZ2.questions], "gz2 task")
    return {"galaxies": table.num_rows, "test": int(len(x_test)), "size": args.gz2_size, "crop": args.gz2_crop,
            "epochs": args.gz2_epochs, "scored_against": "observed conditional fractions (counts), per galaxy "
            "weighted by the question's observed proportion asked",
            "rmse": {k: v["overall"] for k, v in rows.items()}, "mae": {k: v["overall_mae"] for k, v in rows.items()},
            "ratio_votes_to_gz2": round(rows["votes task"]["overall"] / rows["gz2 task"]["overall"], 3),
            "per_question": {k: v["per_question"] for k, v in rows.items()},
            "per_question_mae": {k: v["per_question_mae"] for k, v in rows.items()}, "seconds": seconds,
            "zoobot_reference": "GZ DESI (Walmsley et al. 2023): within 5-10 per cent of volunteer fractions"}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-votes-"))
    t0 = time.perf_counter()
    result: dict[str, Any] = {"bench": "votes", "data": args.data, "seed": args.seed}
    if args.data in ("synthetic", "both"):
        result["synthetic"] = synthetic(args, work)
    if args.data in ("gz2", "both"):
        result["gz2"] = gz2(args, work)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
