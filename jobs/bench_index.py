"""Benchmark: which approximate nearest-neighbour index for ``galaxy-ray similar`` at scale?

On ``--n`` (default 1,000,000) random-but-clustered ``--dims`` (16) embeddings,
rounded to float16 as ``infer --embeddings`` stores them (``--clusters``
Gaussian clusters of log-normal sizes and widths, plus 2% scattered
"odd" points), each candidate index is built in its own subprocess and
measured there:

* **build**: wall seconds (2 threads) and peak memory above the loaded
  vectors (``VmHWM`` after resetting it through ``/proc/self/clear_refs``),
  and the index's serialized bytes per vector;
* **queries**: ``--queries`` (1000) catalog galaxies as queries (the
  ``--like OBJECT_ID`` case: the galaxy itself is in the index), one at a
  time on one thread: median and 99th-percentile latency, and recall@10
  against exact cosine search (the fraction of the exact 10 nearest found).

The baseline, run in the same way: exact search with numpy, as
``galaxy_ray.similar.search`` does it (one matrix-vector product over all
vectors, ``argpartition``).  Candidates: FAISS (``faiss-cpu``) HNSW-Flat,
IVF-Flat and IVF with float16 scalar quantisation, and usearch HNSW (f16);
hnswlib has no binary wheel for this platform (source build only) and is
not measured.  Ends with one JSON line, including the projection of each
index to 100 million vectors (:func:`project`: 100 shards of 1M, memory and
build time linear)::

    python jobs/bench_index.py --only faiss-ivf-sq16,faiss-ivf,faiss-hnsw   # 1,000,000 vectors, ~35 min
    python jobs/bench_index.py --n 100000 --queries 300                       # all four, quicker
    python jobs/bench_index.py --catalog                                      # end to end on a catalog

``--catalog`` writes a real galaxy-ray catalog of ``--n`` rows around the same
embeddings, times ``galaxy-ray similar --build-index`` and compares
``api.similar`` with and without the index (time per query including
opening the catalog and loading the index, recall@10), plain and with a
``--where`` filter.

(usearch's HNSW build is the slowest: 1,000,000 vectors take over half an
hour on one loaded core, so the first command leaves it out.)  The chosen
index is the one reaching recall@10 >= 0.95 with the smallest product of
bytes per vector and median latency.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: Threads a build uses (``--threads``; queries use one).
THREADS = int(os.environ.get("BENCH_INDEX_THREADS", "1"))
#: name -> (library, description) of each candidate.
CANDIDATES = {
    "faiss-hnsw": "faiss IndexHNSWFlat M=32 efConstruction=64 efSearch=64, inner product on unit vectors",
    "faiss-ivf": "faiss IndexIVFFlat nlist=4*sqrt(N) nprobe=24, inner product on unit vectors",
    "faiss-ivf-sq16": "faiss IndexIVFScalarQuantizer fp16 nlist=4*sqrt(N) nprobe=24, inner product on unit vectors",
    "usearch-hnsw": "usearch Index cos f16 connectivity=16 expansion_add=128 expansion_search=64",
}


def clustered(n: int, dims: int, clusters: int, seed: int = 0) -> np.ndarray:
    """``n`` float16-rounded vectors (n, dims) float32 in Gaussian clusters, 2% scattered."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (clusters, dims))
    sizes = rng.lognormal(0.0, 1.0, clusters)
    widths = rng.uniform(0.05, 0.4, clusters)
    which = rng.choice(clusters, n, p=sizes / sizes.sum())
    out = centres[which] + rng.normal(0.0, 1.0, (n, dims)) * widths[which, None]
    odd = rng.random(n) < 0.02
    out[odd] = rng.normal(0.0, 1.5, (int(odd.sum()), dims))
    return out.astype(np.float16).astype(np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine distance = 1 - inner product)."""
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def exact_top(xu: np.ndarray, qu: np.ndarray, k: int, step: int = 50) -> np.ndarray:
    """Exact top-``k`` row numbers (len(qu), k) by inner product of unit vectors, nearest first."""
    out = np.empty((len(qu), k), dtype=np.int64)
    for s in range(0, len(qu), step):
        sims = qu[s:s + step] @ xu.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, 1), axis=1, kind="stable")
        out[s:s + step] = np.take_along_axis(part, order, 1)
    return out


def _status(field: str) -> int:
    """A ``/proc/self/status`` memory field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _build(name: str, xu: np.ndarray):
    """(index, search(q, k) -> row numbers, serialized bytes) of candidate ``name``."""
    n, dims = xu.shape
    if name.startswith("faiss"):
        import faiss

        faiss.omp_set_num_threads(THREADS)
        nlist = int(4 * np.sqrt(n))
        if name == "faiss-hnsw":
            index = faiss.IndexHNSWFlat(dims, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 64
        else:
            quant = faiss.IndexFlatIP(dims)
            index = (faiss.IndexIVFFlat(quant, dims, nlist, faiss.METRIC_INNER_PRODUCT) if name == "faiss-ivf" else
                     faiss.IndexIVFScalarQuantizer(quant, dims, nlist, faiss.ScalarQuantizer.QT_fp16,
                                                   faiss.METRIC_INNER_PRODUCT))
            index.train(xu[np.random.default_rng(1).choice(n, min(n, 64 * nlist), replace=False)])
        index.add(xu)
        if name == "faiss-hnsw":
            index.hnsw.efSearch = 64
        else:
            index.nprobe = 24
        size = faiss.serialize_index(index).nbytes

        def search(q, k):
            faiss.omp_set_num_threads(1)
            return index.search(q[None, :], k)[1][0]
        return index, search, size
    from usearch.index import Index

    index = Index(ndim=dims, metric="cos", dtype="f16", connectivity=16, expansion_add=128, expansion_search=64)
    index.add(np.arange(n), xu, threads=THREADS)
    size = len(index.save())

    def search(q, k):
        return np.asarray(index.search(q, k, threads=1).keys)
    return index, search, size


def run_candidate(name: str, data: str, k: int) -> dict:
    """Build and query candidate ``name`` on the saved vectors; its figures (run in a subprocess)."""
    saved = np.load(data)
    xu, queries, truth = saved["xu"], saved["queries"], saved["truth"]
    if name == "exact-numpy":  # one BLAS thread: OMP_NUM_THREADS=1 in the child's environment
        def search(q, k):
            sims = xu @ q
            part = np.argpartition(-sims, k)[:k]
            return part[np.argsort(-sims[part], kind="stable")]
        return _queries(name, search, xu, queries, truth, k, build_s=0.0, extra=0, size=xu.nbytes)
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    t0 = time.perf_counter()
    index, search, size = _build(name, xu)
    build_s = time.perf_counter() - t0
    extra = _status("VmHWM") - before
    return _queries(name, search, xu, queries, truth, k, build_s=build_s, extra=extra, size=size)


def _queries(name, search, xu, queries, truth, k, *, build_s, extra, size) -> dict:
    lat, hits = [], 0
    for i, row in enumerate(queries):
        t0 = time.perf_counter()
        got = search(xu[row], k)
        lat.append(time.perf_counter() - t0)
        hits += len(set(int(g) for g in got[:k]) & set(truth[i].tolist()))
    lat_ms = np.array(lat) * 1e3
    return {"name": name, "build_s": round(build_s, 2), "build_peak_extra_mb": round(extra / 2**20, 1),
            "index_bytes_per_vector": round(size / len(xu), 1), "recall_at_10": round(hits / (k * len(queries)), 4),
            "query_ms_median": round(float(np.median(lat_ms)), 3), "query_ms_p99": round(float(np.percentile(lat_ms, 99)), 3)}


def project(fig: dict, n: int, target: int = 100_000_000) -> dict:
    """Memory and build time of one candidate at ``target`` vectors, as ``target / n`` shards of ``n`` vectors.

    One index per group of HEALPix partitions holding about ``n`` rows, each
    built as measured here, so memory and build time scale linearly (the
    shards build independently, one per core or Ray task); a query without
    ``--cone`` searches every shard and merges the top ``k``.
    """
    shards = int(np.ceil(target / n))
    return {"name": fig["name"], "vectors": target, "shards": shards,
            "index_gb": round(fig["index_bytes_per_vector"] * target / 1e9, 1),
            "build_core_hours": round(fig["build_s"] * THREADS_USED[0] * shards / 3600, 1),
            "query_ms_median_all_shards": round(fig["query_ms_median"] * shards, 1)}


THREADS_USED = [1]


def write_clustered_catalog(out: str, n: int, dims: int, clusters: int, files: int = 10) -> list[str]:
    """A galaxy-ray catalog of ``n`` rows around :func:`clustered` embeddings (galaxy-ray's writer); its ids."""
    import pyarrow as pa

    from galaxy_ray.catalog.checksums import CHECKSUMS_KEY
    from galaxy_ray.catalog.write import write_catalog_file, write_catalog_summary
    from galaxy_ray.similar.embed import embedding_array

    rng = np.random.default_rng(3)
    vec = clustered(n, dims, clusters)
    ids = np.array([f"g{i:08d}" for i in range(n)], dtype=object)
    prov = {"output_columns": ["p_spiral"], "embedding": {"dims": dims, "fit_rows": 0}}
    sums = {}
    for f, part in enumerate(np.array_split(np.arange(n), files)):
        p = rng.random(len(part)).astype(np.float32)
        table = pa.table({"object_id": ids[part], "ra": rng.uniform(0, 360, len(part)),
                          "dec": np.degrees(np.arcsin(rng.uniform(-1, 1, len(part)))), "p_spiral": p,
                          "morphology": np.where(p > 0.5, "spiral", "smooth"), "p_merger": rng.random(len(part)),
                          "is_merger": rng.random(len(part)) > 0.9, "error": pa.nulls(len(part), pa.string()),
                          "embedding": embedding_array(vec[part])})
        name = f"part-{f:05d}.parquet"
        sums[name] = write_catalog_file(table, os.path.join(out, name), prov)
    write_catalog_summary(out, {**prov, CHECKSUMS_KEY: sums})
    return list(ids)


def end_to_end(args) -> dict:
    """``--catalog``: build the index of a real catalog, then ``api.similar`` with and without it."""
    from galaxy_ray import api

    with tempfile.TemporaryDirectory() as out:
        ids = write_clustered_catalog(out, args.n, args.dims, args.clusters)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "galaxy_ray.cli", "similar", out, "--build-index"],
                              capture_output=True, text=True)
        build_s = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(proc.stderr)
        queries = [ids[i] for i in np.random.default_rng(4).choice(len(ids), 10, replace=False)]
        fig = {"bench": "index_catalog", "n": args.n, "build_index_seconds": round(build_s, 1),
               "index_bytes_on_disk_per_galaxy": round(sum(
                   os.path.getsize(os.path.join(out, "_similar_index", f))
                   for f in os.listdir(os.path.join(out, "_similar_index"))) / args.n, 1)}
        for name, kw in (("exact", {"use_index": False}), ("indexed", {}),
                         ("indexed_where", {"where": "p_spiral > 0.5"}), ("exact_where", {"where": "p_spiral > 0.5",
                                                                                           "use_index": False})):
            lat, got = [], []
            for q in queries:
                t0 = time.perf_counter()
                got.append(set(api.similar(out, q, k=10, **kw)["object_id"]))
                lat.append(time.perf_counter() - t0)
            fig[f"{name}_seconds_median"] = round(float(np.median(lat)), 3)
            fig[f"_{name}_ids"] = got
        for pair in (("indexed", "exact"), ("indexed_where", "exact_where")):
            a, b = fig.pop(f"_{pair[0]}_ids"), fig.pop(f"_{pair[1]}_ids")
            fig[f"recall_at_10_{pair[0]}"] = sum(len(x & y) for x, y in zip(a, b)) / (10 * len(a))
        fig["speedup"] = round(fig["exact_seconds_median"] / fig["indexed_seconds_median"], 1)
        return fig


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="vectors (default 1,000,000)")
    p.add_argument("--dims", type=int, default=16)
    p.add_argument("--clusters", type=int, default=2000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1, help="threads per build (default 1: the machine is shared)")
    p.add_argument("--only", help="comma-separated candidates (default all)")
    p.add_argument("--catalog", action="store_true",
                   help="end to end: write a catalog of --n rows, `similar --build-index`, api.similar with and "
                        "without the index (10 queries, plain and with --where)")
    p.add_argument("--child", nargs=2, metavar=("NAME", "DATA"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(run_candidate(args.child[0], args.child[1], 10)))
        return
    if args.catalog:
        print(json.dumps(end_to_end(args)))
        return
    THREADS_USED[0] = args.threads
    t0 = time.perf_counter()
    x = clustered(args.n, args.dims, args.clusters)
    xu = unit(x)
    queries = np.random.default_rng(2).choice(args.n, args.queries, replace=False)
    truth = exact_top(xu, xu[queries], 10)
    print(f"{args.n} vectors, {args.dims} dims; exact truth for {args.queries} queries in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    names = ["exact-numpy", *(args.only.split(",") if args.only else CANDIDATES)]
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "vectors.npz")
        np.savez(data, xu=xu, queries=queries, truth=truth)
        del x, xu
        for name in names:
            proc = subprocess.run([sys.executable, __file__, "--child", name, data], capture_output=True, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "1",
                                       "BENCH_INDEX_THREADS": str(args.threads)})
            if proc.returncode:
                print(f"{name}: failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            fig = json.loads(proc.stdout.strip().splitlines()[-1])
            figures.append(fig)
            print(json.dumps(fig), flush=True)
    base = figures[0]["query_ms_median"]
    for fig in figures:
        fig["speedup_vs_exact"] = round(base / fig["query_ms_median"], 1)
    ok = [f for f in figures[1:] if f["recall_at_10"] >= 0.95]
    chosen = min(ok, key=lambda f: f["index_bytes_per_vector"] * max(f["query_ms_median"], 0.05)) if ok else None
    print(json.dumps({"bench": "index", "n": args.n, "dims": args.dims, "clusters": args.clusters,
                      "queries": args.queries, "candidates": figures,
                      "chosen": chosen and chosen["name"],
                      "projection_100m": [project(f, args.n) for f in figures[1:]]}))


if __name__ == "__main__":
    main()
