"""The approximate nearest-neighbour index of ``galaxy-ray similar --build-index`` (FAISS IVF, float16).

Why this index: ``jobs/bench_index.py`` measured FAISS HNSW, IVF-Flat,
IVF with float16 scalar quantisation and usearch HNSW on 1,000,000 clustered
16-d embeddings (``docs/similar.md``); IVF-SQfp16 reached recall@10 >= 0.95
with the fewest bytes per galaxy (about 41: the 32-byte float16 vector, an
8-byte id, list overhead) and the shortest build, so 100 million galaxies
fit in about 4 GB.  hnswlib has no binary wheel here.

The index lives next to the catalog in ``CATALOG/_similar_index/`` (names
starting with ``_`` are not catalog files): ``index.faiss`` (the serialized
index), ``rows.parquet`` (for each index label: ``object_id``, the catalog
file's number and the row in it), ``vectors.npy`` (the stored float16
embeddings in label order: candidates' exact distances without reading the
catalog's embedding column; memory-mapped for a local catalog, so only the
pages of the candidates are read) and ``index.json`` (metric, sizes, FAISS
version and the catalog's file names with their SHA-256 from
``_catalog.json``, or their row counts for catalogs written without
checksums).  A catalog rewritten since the build no longer matches and the
index is refused in one line.  The index only proposes candidates: their
distances are recomputed exactly from the catalog's stored embeddings.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from galaxy_ray.catalog.scan import Catalog
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.similar.embed import EMBEDDING_COLUMN

__all__ = ["INDEX_DIR", "NPROBE", "SimilarIndex", "build_index", "load_index", "read_rows"]

#: The index's folder inside the catalog directory.
INDEX_DIR = "_similar_index"
#: Inverted lists searched per query (of ``4 sqrt(N)``): recall@10 0.998 on the 1M benchmark.
NPROBE = 24
_BATCH = 65536


def _faiss():
    try:
        import faiss
    except ImportError:
        raise GalaxyRayError("the similarity index needs faiss-cpu: pip install 'faiss-cpu>=1.9,<1.16'") from None
    return faiss


def _name(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def catalog_key(cat: Catalog) -> dict:
    """What the index must match: each catalog file's name and SHA-256 (or its row count without checksums)."""
    sums = cat.checksums or {}
    return {_name(f): sums.get(_name(f)) or f"rows:{cat.footer(f).num_rows}" for f in cat.files}


def unit_rows(values: np.ndarray, metric: str) -> np.ndarray:
    """float32 rows as the index stores them: unit length for cosine (zero rows stay zero), as they are otherwise."""
    v = np.ascontiguousarray(values, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        v = v / np.where(norms > 0, norms, 1.0)
    return np.ascontiguousarray(v, dtype=np.float32)


def file_embeddings(cat: Catalog, dims: int):
    """For each catalog file in order: (file number, rows with an embedding (M,), object ids (M,), vectors (M, dims))."""
    from galaxy_ray.similar.vectors import embedding_matrix

    cat.verify()
    for number, uri in enumerate(cat.files):
        fs, path = storage.pyarrow_filesystem(uri)
        with fs.open_input_file(path) as f:
            table = pq.read_table(f, columns=["object_id", EMBEDDING_COLUMN])
        valid, values = embedding_matrix(table[EMBEDDING_COLUMN], dims)
        rows = np.flatnonzero(valid)
        ids = table["object_id"].to_numpy(zero_copy_only=False)[rows]
        yield number, rows, ids, values


@dataclass
class SimilarIndex:
    """A loaded index: the FAISS index, its labels' rows, stored vectors (float16) and ``index.json``."""

    index: object
    object_ids: pa.Array
    file_number: np.ndarray
    row: np.ndarray
    vectors: np.ndarray
    meta: dict

    def label_of(self, object_id: str) -> int:
        """The first label of ``object_id``, -1 when the index has none."""
        return int(pc.index(self.object_ids, pa.scalar(str(object_id), pa.string())).as_py())

    @property
    def metric(self) -> str:
        return self.meta["metric"]

    def search(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """Labels (len(vectors), min(k, rows)) of the approximate nearest rows; -1 where fewer were found."""
        k = min(k, len(self.row))
        out = [self.index.search(unit_rows(vectors[s:s + _BATCH], self.metric), k)[1]
               for s in range(0, len(vectors), _BATCH)]
        return np.concatenate(out) if out else np.zeros((0, k), np.int64)


def _make(faiss, n: int, dims: int, metric: str):
    # 4 sqrt(N) lists, each trained on >= 39 points as FAISS asks; float16 codes hold the catalog's float16 exactly
    nlist = int(max(1, min(4 * np.sqrt(n), n // 39)))
    ip = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    quant = faiss.IndexFlatIP(dims) if metric == "cosine" else faiss.IndexFlatL2(dims)
    index = faiss.IndexIVFScalarQuantizer(quant, dims, nlist, faiss.ScalarQuantizer.QT_fp16, ip)
    index.nprobe = min(NPROBE, nlist)
    return index, nlist


def build_index(cat: Catalog, metric: str = "cosine", log=print) -> dict:
    """Build the index over every row with an embedding and store it in ``CATALOG/_similar_index/``.

    Reads the embeddings once (float32, 64 bytes per galaxy at 16 dimensions:
    6.4 GB per 100 million), trains the coarse quantiser on at most
    ``64 nlist`` of them, adds all and writes the three files.

    Returns
    -------
    dict
        ``index.json``'s content.

    Raises
    ------
    GalaxyRayError
        No embeddings, a catalog that is one file (no folder to keep the index in), too few rows.
    """
    from galaxy_ray.similar.vectors import METRICS, embedding_info

    faiss = _faiss()
    dims = int(embedding_info(cat)["dims"])
    if metric not in METRICS:
        raise GalaxyRayError(f"--metric {metric!r}: one of {', '.join(METRICS)}")
    if not storage.isdir(cat.uri):
        raise GalaxyRayError(f"{cat.uri}: an index is kept in a catalog directory; this is one file")
    parts = list(file_embeddings(cat, dims))
    stored = np.concatenate([p[3] for p in parts]).astype(np.float16)  # exactly the catalog's float16 values
    vectors = unit_rows(stored, metric)
    if len(vectors) < 2:
        raise GalaxyRayError(f"{cat.uri}: {len(vectors)} rows with embeddings; an index needs at least 2")
    index, nlist = _make(faiss, len(vectors), dims, metric)
    sample = np.random.default_rng(0).choice(len(vectors), min(len(vectors), 64 * nlist), replace=False)
    index.train(vectors[np.sort(sample)])
    index.add(vectors)
    rows = pa.table({"object_id": pa.array(np.concatenate([p[2] for p in parts]), pa.string()),
                     "file": pa.array(np.concatenate([np.full(len(p[1]), p[0], np.int32) for p in parts])),
                     "row": pa.array(np.concatenate([p[1] for p in parts]).astype(np.int64))})
    meta = {"library": "faiss-cpu", "faiss_version": faiss.__version__, "kind": "IVF-SQfp16", "metric": metric,
            "dims": dims, "rows": len(vectors), "nlist": nlist, "nprobe": int(index.nprobe),
            "files": catalog_key(cat), "embedding_fit_rows": embedding_info(cat).get("fit_rows")}
    folder = storage.join(cat.uri, INDEX_DIR)
    buf = io.BytesIO()
    pq.write_table(rows, buf, compression="zstd")
    storage.write_bytes_atomic(storage.join(folder, "rows.parquet"), buf.getvalue())
    storage.write_bytes_atomic(storage.join(folder, "index.faiss"), faiss.serialize_index(index).tobytes())
    buf = io.BytesIO()
    np.save(buf, stored)
    storage.write_bytes_atomic(storage.join(folder, "vectors.npy"), buf.getvalue())
    storage.write_bytes_atomic(storage.join(folder, "index.json"), json.dumps(meta, indent=1).encode())
    log(f"indexed {len(vectors)} galaxies ({metric}, {nlist} lists) in {folder}")
    return meta


def load_index(cat: Catalog) -> SimilarIndex | None:
    """The catalog's index, or None when it has none.

    Raises
    ------
    GalaxyRayError
        The index was built for other catalog files (the catalog was rewritten since): one line.
    """
    if not storage.isdir(cat.uri):
        return None
    folder = storage.join(cat.uri, INDEX_DIR)
    meta_uri = storage.join(folder, "index.json")
    if not storage.exists(meta_uri):
        return None
    meta = json.loads(storage.read_bytes(meta_uri))
    now = catalog_key(cat)
    if meta.get("files") != now:
        changed = sorted(set(now) ^ set(meta.get("files") or {})) or [
            n for n in now if now[n] != meta["files"].get(n)]
        raise GalaxyRayError(f"{folder}: stale, built before the catalog changed ({changed[0]}); rebuild it with "
                             f"`galaxy-ray similar {cat.uri} --build-index` (or search without it: --exact)")
    faiss = _faiss()
    index = faiss.deserialize_index(np.frombuffer(storage.read_bytes(storage.join(folder, "index.faiss")), np.uint8))
    index.nprobe = int(meta["nprobe"])
    rows = pq.read_table(io.BytesIO(storage.read_bytes(storage.join(folder, "rows.parquet"))))
    vec_uri = storage.join(folder, "vectors.npy")
    vectors = (np.load(storage.strip_scheme(vec_uri), mmap_mode="r") if not storage.is_remote(vec_uri)
               else np.load(io.BytesIO(storage.read_bytes(vec_uri))))
    return SimilarIndex(index, rows["object_id"].combine_chunks(), rows["file"].to_numpy(), rows["row"].to_numpy(),
                        vectors, meta)


def read_rows(cat: Catalog, idx: SimilarIndex, labels: np.ndarray, columns: list[str]) -> pa.Table:
    """The catalog rows of index ``labels`` (in that order) with ``columns``, typed as the catalog's schema.

    Reads only the row groups that hold them.
    """
    labels = np.asarray(labels, dtype=np.int64)
    schema = pa.schema([cat.schema.field(c) for c in columns])
    pieces, order = [], []
    for number in np.unique(idx.file_number[labels]):
        mine = labels[idx.file_number[labels] == number]
        uri = cat.files[int(number)]
        cat.verify([uri])
        meta = cat.footer(uri)
        starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        wanted = idx.row[mine]
        groups = np.unique(np.searchsorted(starts, wanted, side="right") - 1)
        fs, path = storage.pyarrow_filesystem(uri)
        with fs.open_input_file(path) as f:
            table = pq.ParquetFile(f).read_row_groups([int(g) for g in groups], columns=columns)
        local = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in groups])
        pieces.append(table.take(pa.array(np.searchsorted(local, wanted))).cast(schema))
        order.append(mine)
    if not pieces:
        return schema.empty_table()
    got = pa.concat_tables(pieces)
    position = {int(l): i for i, l in enumerate(np.concatenate(order))}
    return got.take(pa.array([position[int(l)] for l in labels]))
