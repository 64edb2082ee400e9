"""What checking a catalog's files against their SHA-256 in ``_catalog.json`` costs, on a 1M-row catalog.

Writes a catalog of ``--rows`` rows (Galaxy10-like: 10 class columns) with the
project's writer (:func:`galaxy_ray.catalog.write_catalog_file`, ``--rows-per-file``
rows a file, a ``_metadata`` summary and ``_catalog.json`` with ``files_sha256``),
then times, each in a freshly opened catalog, with the check and without it
(the same catalog, its ``checksums`` cleared):

* a whole-catalog ``query`` (a ``--where`` count over every row, as ``stats`` reads),
* ``merger_stats`` (what ``galaxy-ray stats`` prints),
* a 1-degree cone search (the check covers only the files the cone opens),
* the check alone (:meth:`Catalog.verify` over every file).

Run: ``python jobs/bench_checksums.py --rows 1000000 --dir /tmp/bench_checksums``.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time

import numpy as np
import pyarrow as pa

from galaxy_ray import schema
from galaxy_ray.catalog import merger_stats, open_catalog, query, write_catalog_file, write_parquet_metadata
from galaxy_ray.catalog.checksums import CHECKSUMS_KEY
from galaxy_ray.catalog.write import write_catalog_summary
from galaxy_ray.io import layout
from galaxy_ray.schema import CatalogColumns as C


def _rows(n: int, start: int, rng: np.random.Generator) -> pa.Table:
    classes = [schema.class_column(c) for c in schema.GALAXY10_CLASSES]
    probs = rng.dirichlet(np.ones(len(classes)), size=n).astype(np.float32)
    cols = {C.OBJECT_ID: pa.array([f"J{start + i:012d}" for i in range(n)]),
            C.RA: rng.uniform(0, 360, n), C.DEC: np.degrees(np.arcsin(rng.uniform(-1, 1, n)))}
    cols.update({name: probs[:, k] for k, name in enumerate(classes)})
    names = np.array(schema.GALAXY10_CLASSES, dtype=object)
    cols[C.MORPHOLOGY] = pa.array(names[probs.argmax(1)].tolist())
    cols[C.P_MERGER] = probs[:, 1]
    cols[C.IS_MERGER] = probs[:, 1] >= 0.5
    cols[C.ERROR] = pa.nulls(n, pa.string())
    return pa.table(cols), classes


def write_catalog(out: str, rows: int, rows_per_file: int) -> dict:
    """The catalog, as infer lays it out; returns its provenance."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    sums = {}
    prov = {"task": "classes", "merger_threshold": 0.5, "rows": rows}
    for k, first in enumerate(range(0, rows, rows_per_file)):
        table, classes = _rows(min(rows_per_file, rows - first), first, rng)
        prov["output_columns"] = classes
        name = layout.part_name(k)
        sums[name] = write_catalog_file(table, os.path.join(out, name), dict(prov, file=name))
    footers = write_parquet_metadata(out)
    sums[layout.CATALOG_METADATA] = hashlib.sha256(open(footers, "rb").read()).hexdigest()
    prov[CHECKSUMS_KEY] = sums
    write_catalog_summary(out, prov)
    return prov


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _opened(out: str, checked: bool):
    cat = open_catalog(out)
    if not checked:
        cat.checksums = None
    return cat


def measure(out: str, repeats: int) -> dict:
    """Best of ``repeats`` seconds for each reader, with and without the check."""
    tasks = {
        "query_all_rows": lambda cat: query(cat, where="p_merger >= 0.5", columns=[C.OBJECT_ID], output="arrow"),
        "merger_stats": lambda cat: merger_stats(cat),
        "cone_1deg": lambda cat: query(cat, cone=(180.0, 0.0, 1.0), output="arrow"),
        "verify_only": lambda cat: cat.verify(),
    }
    result = {}
    for task in tasks.values():  # warm up: imports, DuckDB, the page cache (both runs read the same bytes)
        task(_opened(out, True))
    for name, task in tasks.items():
        for checked in (False, True):
            if name == "verify_only" and not checked:
                continue
            best = min(_timed(lambda: task(_opened(out, checked))) for _ in range(repeats))
            result[f"{name}_{'checked' if checked else 'unchecked'}_s"] = round(best, 3)
        if name != "verify_only":
            result[f"{name}_ratio"] = round(result[f"{name}_checked_s"] / result[f"{name}_unchecked_s"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rows-per-file", type=int, default=100_000)
    parser.add_argument("--dir", default="/tmp/bench_checksums")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    write_catalog(args.dir, args.rows, args.rows_per_file)
    written = time.perf_counter() - start
    size = sum(os.path.getsize(os.path.join(args.dir, f)) for f in os.listdir(args.dir))
    result = {"rows": args.rows, "files": -(-args.rows // args.rows_per_file), "catalog_mb": round(size / 2**20, 1),
              "write_s": round(written, 1), **measure(args.dir, args.repeats)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
