"""Benchmark: do galaxy-ray's embeddings retrieve galaxies the volunteers saw alike?  nDCG@10 on real GZ2.

On the real SDSS sample with Galaxy Zoo 2 votes (Hart et al. 2016;
``GALAXY_RAY_GZ2_SAMPLE`` or ``--gz2``), as AION-Search scores retrieval:

1. train a small model on the sample with galaxy-ray's own train API (``task
   gz2``, ResNet-18, ``--image-size`` px, ``--epochs``; its hash split holds
   20% of the galaxies out of training);
2. ``infer --embeddings`` the whole sample (``--dims`` float16 PCA
   dimensions of the pooled features; the real Ray Data path);
3. for each held-out galaxy whose smooth (or featured) vote fraction exceeds
   0.9, retrieve its 10 nearest other galaxies (``galaxy_ray.similar.search``,
   cosine) from the whole sample and score nDCG@10 with the retrieved
   galaxies' smooth (featured) fraction as relevance:
   DCG = sum_i rel_i / log2(i + 1), divided by the DCG of the 10 most relevant
   galaxies of the pool (the ideal ranking).

Against the baselines run here, in the same process, on the same queries and
pool: **random** ranking (mean over 200 random orders) and **raw pixels**
(the cutouts resized with Pillow to 16x16 RGB, reduced by the same PCA code to
the same dimensions, the same cosine search).  Prints a few lines and ends
with one JSON line::

    python jobs/bench_similar.py --gz2 /work/shared/data/sdss_gz2_sample

Two label modes (``jobs/similar_labels.py``) score retrieval by a class label
instead: the fraction of each query's 10 nearest other galaxies that share its
label, and nDCG@10 with that agreement (0 or 1) as relevance, for the same
three rankings (random: the exact expectation, the label's share of the
pool).  ``--synthetic``: a ResNet-18 trained (``task classes``) on a synthetic
survey (``galaxy-ray synth``, seed 1) embeds another one (seed 2, every galaxy
a held-out query) with its Galaxy10 classes; ``--kaggle DIR``: the 2,000 real
Kaggle Galaxy Zoo cutouts labelled spiral / non_spiral, held-out queries from
the training run's own split::

    python jobs/bench_similar.py --synthetic
    python jobs/bench_similar.py --kaggle /work/shared/data/kaggle_gz_spirals
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from galaxy_ray import api, catalog  # noqa: E402
from galaxy_ray.data.split import split_of  # noqa: E402
from galaxy_ray.schema import CatalogColumns as C  # noqa: E402
from galaxy_ray.similar import search  # noqa: E402
from galaxy_ray.similar.pca import fit_pca, project  # noqa: E402

#: query property -> Hart et al. (2016) fraction column (conditional; question 1 is asked of every galaxy)
PROPERTIES = {"smooth": "t01_smooth_or_features_a01_smooth_fraction",
              "featured": "t01_smooth_or_features_a02_features_or_disk_fraction"}


def ndcg_at(relevance_ranked: np.ndarray, pool_relevance: np.ndarray, k: int = 10) -> float:
    """nDCG@k of a ranking's relevances against the ideal ranking of the pool's."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((np.asarray(relevance_ranked[:k]) * disc[:len(relevance_ranked[:k])]).sum())
    ideal = np.sort(pool_relevance)[::-1][:k]
    idcg = float((ideal * disc[:len(ideal)]).sum())
    return dcg / idcg if idcg > 0 else 0.0


def pixel_vectors(root: Path, images: list[str], side: int = 16) -> np.ndarray:
    """The cutouts resized to ``side`` x ``side`` RGB with Pillow, flattened, in [0, 1]."""
    from PIL import Image

    out = np.empty((len(images), side * side * 3), dtype=np.float32)
    for i, name in enumerate(images):
        with Image.open(root / name) as im:
            out[i] = np.asarray(im.convert("RGB").resize((side, side), Image.BILINEAR), np.float32).ravel() / 255
    return out


def score(rank, ids: np.ndarray, queries: dict[str, list[str]], rel: dict[str, pd.Series]) -> dict[str, float]:
    """Mean nDCG@10 per property; ``rank(query_id) -> ids of the pool, nearest first``, query excluded."""
    out = {}
    for prop, qids in queries.items():
        vals = []
        for q in qids:
            ranked = rank(q)
            pool = rel[prop].drop(q)
            vals.append(ndcg_at(rel[prop].loc[ranked[:10]].to_numpy(), pool.to_numpy()))
        out[prop] = float(np.mean(vals)) if vals else float("nan")
    return out


def _val_fraction(checkpoint: str) -> float:
    """The held-out fraction of the run that wrote ``checkpoint`` (its ``config.json``), else 0.2."""
    config = Path(checkpoint).parent / "config.json"
    if config.exists():
        return float(json.loads(config.read_text())["config"].get("val_fraction", 0.2))
    return 0.2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gz2", default=os.environ.get("GALAXY_RAY_GZ2_SAMPLE"), help="the GZ2 sample folder")
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--dims", type=int, default=16)
    p.add_argument("--checkpoint", help="skip training: embed with this checkpoint (trained on the sample)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="the training run's held-out fraction (default: its config.json beside the checkpoint, "
                        "else 0.2, galaxy-ray's default)")
    p.add_argument("--work", help="directory for the run and catalog (default: a temporary one)")
    p.add_argument("--synthetic", action="store_true", help="label mode on a synthetic survey (no --gz2 needed)")
    p.add_argument("--kaggle", metavar="DIR", help="label mode on the Kaggle spirals folder (manifest.csv, images/)")
    p.add_argument("--train-size", type=int, default=1000, help="--synthetic: training galaxies")
    p.add_argument("--survey-size", type=int, default=600, help="--synthetic: galaxies searched")
    args = p.parse_args(argv)
    if args.synthetic or args.kaggle:
        from similar_labels import run_labels

        print(json.dumps(run_labels(args)))
        return 0
    if not args.gz2 or not Path(args.gz2, "catalog.csv").exists():
        print("bench_similar: give --gz2 or GALAXY_RAY_GZ2_SAMPLE (the folder with catalog.csv and images/)")
        return 2
    root = Path(args.gz2)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_similar_"))
    t0 = time.perf_counter()
    checkpoint = args.checkpoint
    if checkpoint is None:
        api.train(str(root), task="gz2", arch="resnet18", image_size=args.image_size, epochs=args.epochs,
                  batch_size=32, name="similar", storage=str(work / "runs"), workers=1, seed=0)
        checkpoint = str(work / "runs" / "similar" / "model.pt")
    t_train = time.perf_counter() - t0
    out = str(work / "catalog")
    api.infer(checkpoint, str(root), out, format="gz2-catalog", embeddings=args.dims, overwrite=True,
              progress=False)
    t_infer = time.perf_counter() - t0 - t_train

    votes = pd.read_csv(root / "catalog.csv", dtype={"dr7objid": str})
    cat = catalog.query(out, columns=[C.OBJECT_ID, "embedding"], where="error IS NULL", output="pandas")
    votes = votes.set_index("dr7objid").loc[cat[C.OBJECT_ID]]
    ids = cat[C.OBJECT_ID].to_numpy()
    rel = {prop: pd.Series(votes[col].to_numpy(float), index=ids) for prop, col in PROPERTIES.items()}
    val_fraction = args.val_fraction or _val_fraction(checkpoint)
    held_out = np.array([split_of(i, val_fraction) == "val" for i in ids])
    queries = {prop: [i for i, h, r in zip(ids, held_out, rel[prop].to_numpy()) if h and r > 0.9]
               for prop in PROPERTIES}

    def by_search(q: str) -> np.ndarray:
        got = search.similar(out, q, k=11)
        return np.array([i for i in got[C.OBJECT_ID].to_pylist() if i != q])

    emb = score(by_search, ids, queries, rel)
    pixels = pixel_vectors(root, votes["image"].tolist())
    pix = project(pixels, fit_pca(pixels, args.dims))
    index = {i: n for n, i in enumerate(ids)}

    def by_pixels(q: str) -> np.ndarray:
        d = search.distances(pix, pix[index[q]], "cosine")
        order = [ids[n] for n in np.argsort(d, kind="stable") if ids[n] != q]
        return np.array(order)

    pixel = score(by_pixels, ids, queries, rel)
    rng = np.random.default_rng(0)
    rand = {prop: float(np.mean([score(lambda q: rng.permutation(ids[ids != q]), ids, {prop: qs}, rel)[prop]
                                 for _ in range(200)])) for prop, qs in queries.items()}
    result = {"bench": "similar", "data": "sdss_gz2_sample", "galaxies": int(len(ids)),
              "queries": {p: len(q) for p, q in queries.items()}, "val_fraction": val_fraction, "dims": args.dims,
              "bytes_per_galaxy": 2 * args.dims,
              "image_size": catalog.read_provenance(out)["preprocess"].get("image_size"),
              "epochs": None if args.checkpoint else args.epochs,
              "ndcg10_embeddings": emb, "ndcg10_pixels_pca": pixel, "ndcg10_random": rand,
              "ratio_vs_pixels": {p: round(emb[p] / pixel[p], 3) for p in emb},
              "ratio_vs_random": {p: round(emb[p] / rand[p], 3) for p in emb},
              "train_seconds": round(t_train, 1), "infer_seconds": round(t_infer, 1)}
    for prop in PROPERTIES:
        print(f"{prop} (fraction > 0.9, {len(queries[prop])} held-out queries): nDCG@10 embeddings "
              f"{emb[prop]:.3f}, pixels+PCA {pixel[prop]:.3f}, random {rand[prop]:.3f}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
