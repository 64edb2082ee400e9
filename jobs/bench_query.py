"""Benchmark: a 1-degree cone search on three layouts of the same catalog, against a full scan.

Writes a synthetic catalog (catalog rows only, no images) of ``--rows`` rows in
files of ``--rows-per-file`` rows, each covering the whole sky as the output of one
inference shard does, sorted by ``_healpix_29`` and split in row groups of
``--row-group-size`` rows (:func:`galaxy_ray.catalog.write_catalog_file`).  It is
generated a file at a time, so memory stays bounded.  Then, in one process:

* the cone search with HEALPix row-group pruning (:func:`galaxy_ray.catalog.query`)
  against the same query scanning every row group (``prune=False``): the baseline,
  each run once to warm the page cache, then both timed ``--repeats`` times,
  alternately (medians of wall-clock and of CPU time);
* the cone on three layouts of the same rows, each opened afresh per run as a
  ``galaxy-ray query`` command does: plain files without ``_metadata`` (one footer
  read per file), plain files with the ``_metadata`` summary
  (:func:`galaxy_ray.catalog.write_parquet_metadata`), and HATS
  (:func:`galaxy_ray.catalog.to_hats`, partitions of ``--partition-rows`` rows);
  for each, the wall time, the files opened and the bytes read (footers and
  column chunks, from the Parquet metadata);
* with ``--s3``, the same three layouts copied to a moto S3 server, read through
  a counting proxy: the GET (and HEAD, LIST) requests and bytes each cone costs.

A plain file spans the whole sky, so a cone touches about one row group per file:
the pruned cost grows with the number of files.  A HATS partition spans one
HEALPix pixel, so a 1-degree cone opens one to four partitions whatever the size
of the catalog.  Goals: pruned/full <= 0.05; HATS/full <= 0.01 with <= 4 data files.
The last line is one JSON object.

    python jobs/bench_query.py                      # 10 million rows
    python jobs/bench_query.py --rows 1000000 --s3  # smaller, with S3 request counts
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from galaxy_ray import catalog
from galaxy_ray.catalog.convert import DEFAULT_PARTITION_ROWS
from galaxy_ray.cli import run_entry_point
from galaxy_ray.io.layout import CATALOG_SUMMARY, PART_PREFIX, PART_SUFFIX, part_name
from galaxy_ray.schema import GZ2_ANSWER_COLUMNS, GZ2_MERGER_INDEX, gz2_morphology

#: Layouts compared, in order.
LAYOUTS = ("plain", "plain_metadata", "hats")


def synthetic_rows(n: int, rng: np.random.Generator, first_id: int) -> pa.Table:
    """``n`` catalog rows uniform on the sky with GZ2-shaped predictions."""
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))  # uniform on the sphere
    votes = rng.dirichlet(np.ones(3), n)  # Q1 only is tree-consistent; the rest are plausible noise
    probs = rng.random((n, len(GZ2_ANSWER_COLUMNS)), dtype=np.float32) * 0.3
    probs[:, :3] = votes
    cols: dict[str, object] = {
        "object_id": pa.array(np.char.add("syn", np.arange(first_id, first_id + n).astype(str))),
        "ra": ra,
        "dec": dec,
    }
    for i, name in enumerate(GZ2_ANSWER_COLUMNS):
        cols[name] = probs[:, i]
    p_merger = probs[:, GZ2_MERGER_INDEX]
    cols["morphology"] = pa.array(gz2_morphology(probs).astype(str))
    cols["p_merger"] = p_merger
    cols["is_merger"] = p_merger >= 0.25
    cols["error"] = pa.nulls(n, pa.string())
    return pa.table(cols)


def write_catalog(out: Path, rows: int, rows_per_file: int, row_group_size: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    provenance = {"bench": {"rows": rows, "rows_per_file": rows_per_file, "row_group_size": row_group_size,
                            "seed": seed},
                  "task": "gz2", "output_columns": list(GZ2_ANSWER_COLUMNS), "merger": "Class8.6",
                  "merger_threshold": 0.25, "source": "synthetic (jobs/bench_query.py)", "rows": rows,
                  "error_rows": 0}
    files = 0
    for start in range(0, rows, rows_per_file):
        n = min(rows_per_file, rows - start)
        catalog.write_catalog_file(synthetic_rows(n, rng, start), str(out / part_name(files)),
                                   provenance, row_group_size=row_group_size)
        files += 1
    catalog.write_catalog_summary(str(out), provenance)
    return files


def _timed_pair(a, b, repeats: int) -> tuple[dict, dict, object, object]:
    """Median wall-clock and CPU seconds of ``a`` and ``b``, run alternately after a warm-up each.

    Alternating keeps a busy machine's load changes from landing on one side only;
    CPU time (all threads of this process) is far less disturbed by other processes.
    """
    ra, rb = a(), b()  # warm the page cache and imports
    times: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
    for _ in range(repeats):
        for key, fn in (("a", a), ("b", b)):
            w0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            times[key].append((time.perf_counter() - w0, time.process_time() - c0))
            ra, rb = (out, rb) if key == "a" else (ra, out)

    def med(key: str) -> dict:
        return {"wall": statistics.median(t[0] for t in times[key]),
                "cpu": statistics.median(t[1] for t in times[key])}

    return med("a"), med("b"), ra, rb


def cone_on(uri: str, cone: Sequence[float]) -> tuple[pa.Table, dict]:
    """The cone on a freshly opened catalog (as one ``galaxy-ray query`` does), and what it read."""
    cat = catalog.open_catalog(uri)
    table = catalog.query(cat, cone=tuple(cone), output="arrow")
    scan = cat.last_scan
    return table, {"files_opened": cat.opened.files_opened + scan.files_opened,
                   "bytes_read": cat.opened.bytes_read + scan.bytes_read, "files": len(cat.files),
                   "row_groups_read": scan.row_groups_read, "matched_rows": table.num_rows}


def time_layouts(uris: dict[str, str], cone: Sequence[float], repeats: int) -> dict[str, dict]:
    """Median wall seconds of a fresh open + cone on each layout, run in turn ``repeats`` times."""
    results: dict[str, dict] = {}
    times: dict[str, list[float]] = {k: [] for k in uris}
    for name, uri in uris.items():  # warm-up: page cache, imports (hats, for the HATS layout)
        table, info = cone_on(uri, cone)
        results[name] = dict(info, ids=sorted(table["object_id"].to_pylist()))
    for _ in range(repeats):
        for name, uri in uris.items():
            t0 = time.perf_counter()
            cone_on(uri, cone)
            times[name].append(time.perf_counter() - t0)
    for name in uris:
        results[name]["seconds"] = statistics.median(times[name])
    return results


class _CountingProxy(BaseHTTPRequestHandler):
    """Forwards every request to the S3 server, counting requests by kind and bytes sent back."""

    upstream: tuple[str, int] = ("127.0.0.1", 0)
    counts: dict[str, int] = {}
    lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        conn.request(self.command, self.path, body=body, headers=dict(self.headers))
        resp = conn.getresponse()
        data = resp.read()
        kind = self.command
        if kind == "GET" and ("list-type=" in self.path or self.path.rstrip("/").count("/") < 2):
            kind = "LIST"
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.counts["bytes"] = self.counts.get("bytes", 0) + len(data)
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            # a HEAD answer keeps the object's length: that is how a reader learns the file size
            if key.lower() not in ("transfer-encoding", "connection", "content-length") or self.command == "HEAD":
                self.send_header(key, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

    def log_message(self, *args) -> None:  # quiet
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_requests(local: dict[str, Path], cone: Sequence[float]) -> dict[str, dict]:
    """GET/HEAD/LIST requests and bytes of one fresh cone per layout, on a moto S3 server behind a proxy."""
    port, proxy_port = _free_port(), _free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _CountingProxy.upstream = ("127.0.0.1", port)
    server = ThreadingHTTPServer(("127.0.0.1", proxy_port), _CountingProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy_port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        s3 = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                               allow_bucket_creation=True)
        s3.create_dir("bench")
        out = {}
        for name, path in local.items():
            pafs.copy_files(str(path), f"bench/{name}", source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=s3)
            _CountingProxy.counts.clear()
            table, info = cone_on(f"s3://bench/{name}", cone)
            out[name] = dict(dict(_CountingProxy.counts), matched_rows=table.num_rows)
        return out
    finally:
        server.shutdown()
        os.killpg(moto.pid, signal.SIGTERM)
        moto.wait(timeout=30)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--rows-per-file", type=int, default=2_500_000)
    p.add_argument("--row-group-size", type=int, default=10_000)
    p.add_argument("--cone", nargs=3, type=float, default=[150.1, 2.2, 1.0], metavar=("RA", "DEC", "RADIUS"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dir", help="directory to (re)use for the catalogs; a temporary one by default")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reuse", action="store_true",
                   help="with --dir: keep a catalog written earlier by this script with the same settings")
    p.add_argument("--partition-rows", type=int, default=DEFAULT_PARTITION_ROWS,
                   help="HATS: most rows per partition")
    p.add_argument("--hats-workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="HATS conversion: local Dask worker processes")
    p.add_argument("--s3", action="store_true", help="also count S3 requests per layout (moto server, local copy)")
    return p


def prepare(args, root: Path) -> tuple[dict[str, Path], int, float]:
    """The three layouts under ``root`` (written or reused), the number of plain files, HATS seconds."""
    plain, meta, hats = root / "plain", root / "plain_metadata", root / "hats"
    plain.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    settings = {"rows": args.rows, "rows_per_file": args.rows_per_file, "row_group_size": args.row_group_size,
                "seed": args.seed}
    summary = plain / CATALOG_SUMMARY
    reuse = args.reuse and summary.exists() and json.loads(summary.read_text()).get("bench") == settings
    if reuse and (hats / "collection.properties").exists() and (meta / catalog.METADATA_NAME).exists():
        files = len(list(plain.glob(f"{PART_PREFIX}*{PART_SUFFIX}")))
        print(f"reusing {args.rows:,} rows in {files} files and their HATS copy", flush=True)
        return {"plain": plain, "plain_metadata": meta, "hats": hats}, files, float("nan")
    for old in plain.glob(f"{PART_PREFIX}*{PART_SUFFIX}"):
        old.unlink()
    files = write_catalog(plain, args.rows, args.rows_per_file, args.row_group_size, args.seed)
    size = sum(f.stat().st_size for f in plain.glob("*.parquet"))
    print(f"wrote {args.rows:,} rows in {files} files ({size / 2**20:,.0f} MiB, row groups of "
          f"{args.row_group_size:,}) in {time.perf_counter() - t0:.1f} s", flush=True)
    subprocess.run(["rm", "-rf", str(meta), str(hats)], check=True)
    meta.mkdir()
    for f in plain.iterdir():  # the same files, plus the summary
        os.link(f, meta / f.name)
    catalog.write_parquet_metadata(str(meta))
    t0 = time.perf_counter()
    got = catalog.to_hats(str(plain), str(hats), partition_rows=args.partition_rows, workers=args.hats_workers)
    seconds = time.perf_counter() - t0
    print(f"HATS: {got['partitions']} partitions in {seconds:.1f} s ({args.hats_workers} Dask workers)", flush=True)
    return {"plain": plain, "plain_metadata": meta, "hats": hats}, files, seconds


def report(args, files: int, hats_seconds: float, pair: tuple, layouts: dict, s3: dict | None) -> dict:
    """Print the comparison and return the JSON summary."""
    p_t, f_t, pruned_scan, full_scan, same = pair
    ratio, cpu_ratio = p_t["wall"] / f_t["wall"], p_t["cpu"] / f_t["cpu"]
    print(f"cone {tuple(args.cone)} deg: {layouts['plain']['matched_rows']} rows (full scan agrees: {same}); "
          f"medians of {args.repeats} runs")
    print(f"  full scan:      {f_t['wall'] * 1e3:9.1f} ms wall; read {full_scan.row_groups_read} row groups")
    print(f"  HEALPix-pruned: {p_t['wall'] * 1e3:9.1f} ms wall (opened catalog; ratio {ratio:.4f}, goal <= 0.05)")
    for name in LAYOUTS:
        r = layouts[name]
        r["ratio_to_full_scan"] = r["seconds"] / f_t["wall"]
        extra = f"; S3: {s3[name]}" if s3 else ""
        print(f"  {name:<15} {r['seconds'] * 1e3:9.1f} ms wall incl. open (ratio {r['ratio_to_full_scan']:.4f}), "
              f"{r['files_opened']} of {r['files']} files opened, {r['bytes_read'] / 2**20:.2f} MiB read{extra}")
    equal = same and all(layouts[n]["ids"] == layouts["plain"]["ids"] for n in LAYOUTS)
    hats = layouts["hats"]
    goal = hats["ratio_to_full_scan"] <= 0.01 and hats["files_opened"] <= 4
    print(f"  HATS goal (<= 0.01 of the full scan, <= 4 files): {'met' if goal else 'NOT met'}")
    return {
        "rows": args.rows, "files": files, "row_group_size": args.row_group_size, "cone_deg": list(args.cone),
        "matched_rows": layouts["plain"]["matched_rows"], "results_equal": equal,
        "pruned_seconds": round(p_t["wall"], 5), "full_scan_seconds": round(f_t["wall"], 5),
        "ratio": round(ratio, 5), "cpu_ratio": round(cpu_ratio, 5), "goal_ratio": 0.05, "goal_met": ratio <= 0.05,
        "row_groups_read": pruned_scan.row_groups_read, "row_groups_total": pruned_scan.row_groups_total,
        "layouts": {n: {k: (round(v, 5) if isinstance(v, float) else v) for k, v in layouts[n].items() if k != "ids"}
                    for n in LAYOUTS},
        "hats_conversion_seconds": round(hats_seconds, 2), "hats_partition_rows": args.partition_rows,
        "hats_goal_met": goal, "s3_requests": s3, "repeats": args.repeats,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    tmp = None if args.dir else tempfile.TemporaryDirectory(prefix="bench_query_")
    root = Path(args.dir or tmp.name)
    local, files, hats_seconds = prepare(args, root)
    cat = catalog.open_catalog(str(local["plain"]))
    scans: dict[str, catalog.ScanStats] = {}

    def run(prune: bool) -> Callable:
        def go():
            result = catalog.query(cat, cone=tuple(args.cone), output="arrow", prune=prune)
            scans["pruned" if prune else "full"] = cat.last_scan
            return result
        return go

    p_t, f_t, pruned, full = _timed_pair(run(True), run(False), args.repeats)
    same = sorted(pruned["object_id"].to_pylist()) == sorted(full["object_id"].to_pylist())
    layouts = time_layouts({n: str(local[n]) for n in LAYOUTS}, args.cone, args.repeats)
    s3 = s3_requests(local, args.cone) if args.s3 else None
    summary = report(args, files, hats_seconds, (p_t, f_t, scans["pruned"], scans["full"], same), layouts, s3)
    print(json.dumps(summary))
    if tmp is not None:
        tmp.cleanup()
    return 0 if summary["results_equal"] else 1


if __name__ == "__main__":
    sys.exit(run_entry_point(main))
