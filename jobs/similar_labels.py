"""Label modes of ``jobs/bench_similar.py``: do the 10 nearest galaxies share the query's class?

``--synthetic`` trains on one synthetic survey and searches another (every
galaxy a query); ``--kaggle DIR`` trains on the real Kaggle spirals folder and
queries its held-out galaxies.  For each query: the fraction of its 10 nearest
other galaxies (cosine) with the query's label, and nDCG@10 with that
agreement as relevance, for galaxy-ray's embeddings, 16x16 pixels + PCA and
random ranking (exact expectation: the label's share of the other galaxies;
nDCG's expectation is the same share, as every rank's expected relevance is).
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as pads

from galaxy_ray import api, catalog
from galaxy_ray.data.split import split_of
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.similar import search
from galaxy_ray.similar.pca import fit_pca, project


def label_scores(vectors: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int = 10) -> dict:
    """Mean fraction of the ``k`` nearest others sharing the label, and mean nDCG@k (binary relevance)."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    share, ndcg = [], []
    for q in np.flatnonzero(queries):
        d = search.distances(vectors, vectors[q], "cosine")
        d[q] = np.inf  # the query is not its own neighbour
        near = np.argsort(d, kind="stable")[:k]
        rel = (labels[near] == labels[q]).astype(float)
        ideal = np.sort((labels == labels[q]).astype(float))[::-1][1:k + 1]  # the query itself left out
        share.append(rel.mean())
        ndcg.append(float((rel * disc).sum() / (ideal * disc).sum()))
    return {"share_of_10": round(float(np.mean(share)), 4), "ndcg10": round(float(np.mean(ndcg)), 4)}


def random_scores(labels: np.ndarray, queries: np.ndarray) -> dict:
    """The exact expectation of both figures under a random ranking."""
    counts = pd.Series(labels).value_counts()
    share = np.array([(counts[labels[q]] - 1) / (len(labels) - 1) for q in np.flatnonzero(queries)])
    return {"share_of_10": round(float(share.mean()), 4), "ndcg10": round(float(share.mean()), 4)}


def pixels_of(images: list[bytes], side: int = 16) -> np.ndarray:
    """Encoded cutouts resized to ``side`` x ``side`` RGB with Pillow, flattened, in [0, 1]."""
    from PIL import Image

    out = np.empty((len(images), side * side * 3), dtype=np.float32)
    for i, data in enumerate(images):
        with Image.open(io.BytesIO(data)) as im:
            out[i] = np.asarray(im.convert("RGB").resize((side, side), Image.BILINEAR), np.float32).ravel() / 255
    return out


def _synthetic_source(work: Path, args) -> tuple[str, str, pd.DataFrame]:
    """(training source, searched source, searched galaxies: object_id, label, image bytes)."""
    from galaxy_ray.synthetic import survey

    survey.synthesize(str(work / "train"), args.train_size, size=64, seed=1, workers=2)
    survey.synthesize(str(work / "survey"), args.survey_size, size=64, seed=2, workers=2)
    table = pads.dataset(str(work / "survey"), format="parquet").to_table(columns=[C.OBJECT_ID, C.LABEL, C.IMAGE])
    return str(work / "train"), str(work / "survey"), table.to_pandas()


def _kaggle_source(root: Path) -> tuple[str, str, pd.DataFrame]:
    manifest = pd.read_csv(root / "manifest.csv", dtype={"object_id": str})
    manifest[C.IMAGE] = [(root / p).read_bytes() for p in manifest["path"]]
    return str(root), str(root), manifest[[C.OBJECT_ID, C.LABEL, C.IMAGE]]


def run_labels(args) -> dict:
    """Train, embed, score; the JSON line's dict."""
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_similar_labels_"))
    t0 = time.perf_counter()
    kind = "synthetic" if args.synthetic else "kaggle_gz_spirals"
    train_src, search_src, galaxies = (_synthetic_source(work, args) if args.synthetic
                                       else _kaggle_source(Path(args.kaggle)))
    checkpoint = args.checkpoint
    if checkpoint is None:
        api.train(train_src, task="classes", arch="resnet18", image_size=args.image_size, epochs=args.epochs,
                  batch_size=32, name="labels", storage=str(work / "runs"), workers=1, seed=0)
        checkpoint = str(work / "runs" / "labels" / "model.pt")
    t_train = time.perf_counter() - t0
    out = str(work / "catalog")
    api.infer(checkpoint, search_src, out, embeddings=args.dims, overwrite=True, progress=False)
    cat = catalog.query(out, columns=[C.OBJECT_ID, "embedding"], where="error IS NULL", output="pandas")
    galaxies = galaxies.set_index(C.OBJECT_ID).loc[cat[C.OBJECT_ID]]
    labels = galaxies[C.LABEL].to_numpy().astype(str)
    val_fraction = args.val_fraction or 0.2
    queries = (np.ones(len(labels), bool) if args.synthetic
               else np.array([split_of(i, val_fraction) == "val" for i in cat[C.OBJECT_ID]]))
    emb = np.stack(cat["embedding"].to_numpy()).astype(np.float32)
    pixels = pixels_of(galaxies[C.IMAGE].tolist())
    pix = project(pixels, fit_pca(pixels, args.dims))
    figures = {"embeddings": label_scores(emb, labels, queries), "pixels_pca": label_scores(pix, labels, queries),
               "random": random_scores(labels, queries)}
    for name, fig in figures.items():
        print(f"{kind} {name}: share of the 10 nearest with the query's label {fig['share_of_10']:.3f}, "
              f"nDCG@10 {fig['ndcg10']:.3f}")
    return {"bench": "similar_labels", "data": kind, "galaxies": int(len(labels)), "queries": int(queries.sum()),
            "classes": pd.Series(labels).value_counts().to_dict(), "dims": args.dims, "image_size": args.image_size,
            "epochs": None if args.checkpoint else args.epochs, **figures,
            "ratio_vs_pixels": {m: round(figures["embeddings"][m] / figures["pixels_pca"][m], 3)
                                for m in ("share_of_10", "ndcg10")},
            "ratio_vs_random": {m: round(figures["embeddings"][m] / figures["random"][m], 3)
                                for m in ("share_of_10", "ndcg10")},
            "train_seconds": round(t_train, 1), "total_seconds": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    import argparse

    # a module of bench_similar.py, not a benchmark of its own: --help says how to run it
    argparse.ArgumentParser(
        description=(__doc__ or "") + "\nRun it through jobs/bench_similar.py: `python jobs/bench_similar.py "
                    "--synthetic` or `python jobs/bench_similar.py --kaggle DIR`.",
        formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
