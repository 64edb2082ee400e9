"""Benchmark: survey scale.  ``galaxy-ray infer`` on N real-size cutouts into a tiny model, then HATS and a cone search.

The cutouts are real-size (424-px JPEGs by default, ``--source-size``: the 2,000 real Kaggle
Galaxy Zoo cutouts cycled, or synthetic galaxies where they are absent) and the model is small
(16 px by default, the smallest image size a model takes), so that the network's cost is not
what is measured: reading shards, decoding and resizing, the hand-off to the model actors, the
catalog writer, resuming, memory and the object store are.  ``--source-size 0`` is the older
mode: model-sized PNGs that skip the resize.  In one run:

1. **Inputs.**  N cutouts packed into shards (the shard contract of ``docs/contracts.md``: the
   cutout table plus ``error``, zstd Parquet) by a pool of processes; no image files.  The N/10
   input is the first tenth of those shards (hard links).  A randomly initialised ResNet-18
   checkpoint at the model's size (the weights do not change the speed).
2. **Plain loop.**  ``jobs/plain_loop.py`` in a subprocess, none of galaxy-ray's code: pyarrow,
   Pillow decode + resize, the same torchvision ResNet, a ``DataLoader`` with one worker process
   per core, over whole shards of the N input until ``--bare-rows`` rows; run before and after
   the timed pipeline runs, and the mean is the baseline.
3. **Pipeline.**  ``galaxy-ray infer`` as a subprocess (it starts its own local
   Ray, so the driver, the GCS, the raylet and every worker and actor are its
   descendants) on the N/10 input and then on the N input.  A thread polls
   the process tree once a second: peak RSS of the driver, of the Ray
   workers and actors (summed, and the largest one), of Ray's own processes,
   and the Pss of the whole tree (shared object-store pages counted once);
   the first published ``part-*.parquet`` (time to the first catalog part);
   and the bytes in the session's spill directory.  After the run the
   raylet's log gives Ray's own count of spilled bytes.
4. **Kill and resume.**  The N run again into a new catalog (``--kill-run
   separate``, the default; ``main`` kills and resumes the timed N run
   itself, so that N is processed once: its time and peaks then span both
   processes), killed with SIGKILL to its process group (its own pgid: it is
   started in a new session) once ``--kill-after`` of its files are
   published, then rerun with the same command; the catalog must hold exactly
   N rows with N unique ``object_id``.
5. **HATS and a cone search.**  ``galaxy-ray hats`` of the N catalog, then
   ``galaxy-ray query --cone`` on the HATS collection and on the plain catalog
   (subprocess wall time, imports included) and ``galaxy_ray.api.cone``
   in-process; each answer's count is checked against a brute-force count over
   the generated positions.

The last line of output is one JSON object with all the figures::

    python jobs/bench_scale.py --n 20000
    python jobs/bench_scale.py --n 20000 --source-size 0       # model-sized PNGs (no resize), as before issue 31
    nice -n 10 python jobs/bench_scale.py --kill-run main      # N = 1,000,000

The per-cutout CPU costs behind ``docs/scale.md`` section 2 (real JPEG decode and the
models' forward pass on one core) are ``jobs/bench_sizing.py``'s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "jobs"))

import numpy as np  # noqa: E402
import psutil  # noqa: E402

import bench_common  # noqa: E402
from galaxy_ray.cli import run_entry_point  # noqa: E402

MIB = 1 << 20
#: Cone of the search, ICRS degrees.
CONE = (180.0, 30.0, 2.0)


# --------------------------------------------------------------------------- inputs


def make_inputs(workdir: Path, n: int, size: int, rows_per_shard: int, seed: int, workers: int,
                source_size: int = 424, jpegs: str | None = None) -> dict:
    """The N input (:func:`bench_common.write_shards` in ``workers`` processes) and its first tenth (hard links).

    ``source_size`` > 0: ``source_size``-px JPEGs (the files of ``jpegs``, cycled; synthetic without
    it); 0: synthetic PNGs at the model's ``size``, stored as ``pack --image-size`` stores them.
    """
    big, small = workdir / "shards_n", workdir / "shards_n10"
    for d in (big, small):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    made = bench_common.write_shards(str(big), n, rows_per_shard, seed=seed, workers=workers,
                                     source_size=source_size, model_size=size, jpegs=jpegs, id_prefix="scale")
    tenth = max(1, made["shards"] // 10)
    for k in range(tenth):
        name = f"part-{k:05d}.parquet"
        os.link(big / name, small / name)
    return dict(big=str(big), small=str(small), shards=made["shards"], shards_n10=tenth,
                rows_n10=sum(made["rows"][:tenth]), seconds=made["seconds"], ra=made["ra"], dec=made["dec"],
                bytes=made["bytes"], what=made["inputs"])


def make_checkpoint(workdir: Path, arch: str, image_size: int) -> str:
    """A randomly initialised GZ2 model (weights do not change the speed), as bench_infer builds one."""
    import torch

    from galaxy_ray import model as model_mod
    from galaxy_ray.data.transforms import PreprocessConfig

    torch.manual_seed(0)
    spec = model_mod.ModelSpec.for_gz2(arch, PreprocessConfig(image_size, crop_fraction=1.0))
    return model_mod.save_checkpoint(str(workdir / "model.pt"), model_mod.build_model(spec), spec)


# --------------------------------------------------------------------------- bare loop


def bare_loop(shards: str, arch: str, image_size: int, batch_size: int, max_rows: int,
              workers: int) -> tuple[int, float, float]:
    """``jobs/plain_loop.py`` over whole shards of ``shards`` until ``max_rows`` rows.

    Returns (rows, wall seconds, CPU seconds of the script and its DataLoader workers).
    """
    figures = bench_common.plain_loop(shards, arch, image_size, batch_size, workers, max_rows=max_rows)
    return figures["images"], figures["seconds"], figures["cpu_s"]


# --------------------------------------------------------------------------- watching a run


process_tree, RunWatcher = bench_common.process_tree, bench_common.RunWatcher
_alive, _name = bench_common.alive, bench_common.name_of


def raylet_spilled_mib(session_dir: str | None) -> float | None:
    """Ray's own count of spilled MiB from the raylet's log (``Spilled N MiB, ...`` lines; 0 when none)."""
    if not session_dir:
        return None
    try:
        text = Path(session_dir, "logs", "raylet.out").read_text(errors="replace")
    except OSError:
        return None
    spilled = 0.0
    for line in text.splitlines():
        if "Spilled " in line and " MiB" in line:
            try:
                spilled = max(spilled, float(line.split("Spilled ", 1)[1].split(" MiB", 1)[0]))
            except ValueError:
                pass
    return spilled


def infer_command(checkpoint: str, shards: str, out: str, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, "-m", "galaxy_ray.cli", "infer", "--checkpoint", checkpoint, "--source", shards,
           "--out", out, "--batch-size", str(args.batch_size), "--rows-per-file", str(args.rows_per_file),
           "--gpu", "no"]
    if args.num_actors:
        cmd += ["--num-actors", str(args.num_actors)]
    return cmd


def run_infer(checkpoint: str, shards: str, out: str, args: argparse.Namespace, log_path: Path,
              kill_after_parts: int | None = None) -> dict:
    """One ``galaxy-ray infer`` subprocess, watched; killed (its process group) once ``kill_after_parts`` are out."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)  # its own local Ray: every process of the run is its descendant
    with open(log_path, "ab") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(infer_command(checkpoint, shards, out, args), stdout=log, stderr=subprocess.STDOUT,
                                cwd=str(ROOT), env=env, start_new_session=True)
        watcher = RunWatcher(proc, out).start()
        killed = survivors = survivor_names = None
        try:
            if kill_after_parts is None:
                rc = proc.wait()
            else:
                while proc.poll() is None and watcher.parts < kill_after_parts:
                    time.sleep(0.5)
                rc = proc.poll()
                if rc is None:
                    tree = process_tree(proc.pid)
                    os.killpg(proc.pid, signal.SIGKILL)  # its own process group: the driver and what it started
                    rc = proc.wait()
                    killed = watcher.parts
                    time.sleep(2.0)
                    left = [p for p in tree[1:] if _alive(p)]
                    survivors = len(left)
                    survivor_names = sorted({_name(p) for p in left})  # what left the group
                    for p in left:  # anything of this run that left the group: by its own pid
                        with contextlib.suppress(psutil.NoSuchProcess):
                            p.kill()
        finally:
            watcher.stop()
        seconds = time.perf_counter() - t0
    result = dict(rc=rc, seconds=seconds, first_part_s=watcher.first_part_s, parts=watcher.parts,
                  cpu_s=sum(watcher.cpu_s.values()),
                  session_dir=watcher.session_dir, raylet_spilled_mib=raylet_spilled_mib(watcher.session_dir),
                  **{f"peak_{k}": v for k, v in watcher.peak.items()})
    if killed is not None:
        result.update(killed_at_parts=killed, survivors_after_killpg=survivors, survivor_names=survivor_names)
    summary = Path(out) / "_catalog.json"
    if kill_after_parts is None and summary.exists():
        result["catalog_json"] = json.loads(summary.read_text())
    return result


def _seconds(s: float | None) -> str:
    return "-" if s is None else f"{s:.1f} s"


def catalog_rows(out: str) -> dict:
    """Rows, unique object_ids and files of a catalog."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    parts = sorted(Path(out).glob("part-*.parquet"))
    ids = [pq.read_table(p, columns=["object_id"])["object_id"] for p in parts]
    rows = sum(len(i) for i in ids)
    unique = len(pc.unique(pa_concat(ids))) if ids else 0
    return dict(rows=rows, unique_ids=unique, part_files=len(parts),
                files=sum(1 for p in Path(out).rglob("*") if p.is_file()),
                bytes=sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file()))


def pa_concat(arrays):
    import pyarrow as pa

    return pa.chunked_array([c for a in arrays for c in a.chunks], type=pa.string())


def timed(cmd: Sequence[str], log_path: Path) -> tuple[float, int]:
    with open(log_path, "ab") as log:
        log.write(("\n$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        t0 = time.perf_counter()
        rc = subprocess.run(list(cmd), stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT)).returncode
        return time.perf_counter() - t0, rc


def cone_truth(ra: np.ndarray, dec: np.ndarray, cone: tuple[float, float, float]) -> int:
    """Brute-force count of generated positions within the cone."""
    r0, d0, radius = (math.radians(x) for x in cone)
    ra_r, dec_r = np.radians(ra), np.radians(dec)
    cos_sep = np.sin(dec_r) * math.sin(d0) + np.cos(dec_r) * math.cos(d0) * np.cos(ra_r - r0)
    return int((cos_sep >= math.cos(radius)).sum())


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="cutouts in the survey (N; the memory baseline is N/10)")
    p.add_argument("--image-size", type=int, default=16, help="model side, pixels (16 is the smallest)")
    p.add_argument("--source-size", type=int, default=424,
                   help="side of the packed cutout JPEGs, pixels (default 424, the size of SDSS/GZ cutouts); "
                        "0: synthetic PNGs at the model's size (no resize)")
    p.add_argument("--jpegs", default=bench_common.default_jpegs(),
                   help="folder of real cutout JPEGs to pack, cycled (default: the Kaggle Galaxy Zoo sample where "
                        "present); 'synthetic' for synthetic galaxies")
    p.add_argument("--plain-workers", type=int, default=None,
                   help="DataLoader worker processes of the plain loop (default: every core, as the pipeline)")
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (pipeline and bare loop)")
    p.add_argument("--rows-per-shard", type=int, default=None, help="rows per input shard (default N/100, 100..10000)")
    p.add_argument("--rows-per-file", type=int, default=None, help="rows per catalog file (default N/20)")
    p.add_argument("--num-actors", default=None, help="model actors (default: infer's own choice)")
    p.add_argument("--bare-rows", type=int, default=20_000, help="rows of each bare-loop run (a sample of the input)")
    p.add_argument("--kill-run", choices=("separate", "main", "none"), default="separate",
                   help="separate (default): a second run of N, killed and resumed; main: the timed N run itself "
                        "is killed and resumed (one pass over N: its time and peaks span both processes); none")
    p.add_argument("--kill-after", type=float, default=None,
                   help="kill once this fraction of the catalog files is published (default 0.3; 0.1 with "
                        "--kill-run main)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workdir", default=None, help="inputs, catalogs and logs (default: a temp dir, kept)")
    return p


class ScaleBench:
    """One benchmark run: its flags, work directory, inputs and checkpoint, and the figures gathered so far.

    The methods are the steps of the module docstring, called in order by :func:`main`; each
    prints its line(s) and keeps its figures on ``self`` for :func:`result_dict`.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        n = self.n = args.n
        args.rows_per_shard = args.rows_per_shard or max(100, min(10_000, n // 100))
        args.rows_per_file = args.rows_per_file or max(1, n // 20)
        self.args = args
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_scale_"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "runs.log"
        self.files = math.ceil(n / args.rows_per_file)
        kill_after = args.kill_after if args.kill_after is not None else (0.1 if args.kill_run == "main" else 0.3)
        self.kill_parts = max(1, int(self.files * kill_after))
        self.cat_n = str(self.workdir / "catalog_n")
        self.hats_dir = str(self.workdir / "catalog_n_hats")
        self.bare_rates: list[float] = []
        self.bare_cpu: list[float] = []
        self.runs: dict = {}
        self.resume: dict = {}
        self.inputs: dict = {}
        self.checkpoint = ""
        self.counted: dict = {}
        self.hats: dict = {}
        self.truth = 0
        self.cones: dict = {}

    @staticmethod
    def say(line: str) -> None:
        print(line, flush=True)

    def prepare(self) -> None:
        """The header line, the N and N/10 inputs and the checkpoint."""
        args, n = self.args, self.n
        side = f"{args.source_size}-px JPEG cutouts" if args.source_size else "model-sized PNG cutouts"
        self.say(f"bench_scale: N = {n}, {side} into {args.arch} at {args.image_size} px, batch {args.batch_size}, "
                 f"{args.rows_per_shard} rows per shard, {args.rows_per_file} rows per catalog file, "
                 f"{os.cpu_count()} CPU cores (load average {os.getloadavg()[0]:.1f}); work in {self.workdir} "
                 f"(subprocess logs: {self.log_path})")
        jpegs = None if args.jpegs in (None, "", "synthetic") else args.jpegs
        inputs = self.inputs = make_inputs(self.workdir, n, args.image_size, args.rows_per_shard, args.seed,
                                           workers=os.cpu_count() or 1, source_size=args.source_size, jpegs=jpegs)
        self.say(f"inputs: {n} cutouts ({inputs['what']}) in {inputs['shards']} shards ({inputs['bytes'] / MIB:.0f} MiB) written in "
                 f"{inputs['seconds']:.1f} s = {n / inputs['seconds']:.0f} cutouts/s; N/10 input: "
                 f"{inputs['rows_n10']} rows in {inputs['shards_n10']} shards")
        self.checkpoint = make_checkpoint(self.workdir, args.arch, args.image_size)

    def bare(self) -> float:
        """One bare-loop run over ``--bare-rows`` rows of the N input; its rows/s."""
        rows, s, cpu = bare_loop(self.inputs["big"], self.args.arch, self.args.image_size, self.args.batch_size,
                                 self.args.bare_rows, self.args.plain_workers or os.cpu_count() or 1)
        self.bare_rates.append(rows / s)
        self.bare_cpu.append(cpu / rows)
        self.say(f"plain loop (jobs/plain_loop.py): {rows} rows in {s:.1f} s = {rows / s:.0f} rows/s "
                 f"({cpu / rows * 1e3:.2f} ms CPU per row; load average {os.getloadavg()[0]:.1f})")
        return rows / s

    def infer(self, shards: str, out: str, kill_after_parts: int | None = None) -> dict:
        return run_infer(self.checkpoint, shards, out, self.args, self.log_path, kill_after_parts=kill_after_parts)

    def report(self, label: str, run: dict, rows: int) -> None:
        """Print one infer run's figures; stop the benchmark if it failed without being killed."""
        self.say(f"infer {label}: rc {run['rc']}, {rows} rows in {run['seconds']:.1f} s = "
                 f"{rows / run['seconds']:.0f} rows/s end to end; first part after {_seconds(run['first_part_s'])}; "
                 f"peak RSS driver {run['peak_driver_rss'] / MIB:.0f} MiB, workers "
                 f"{run['peak_workers_rss'] / MIB:.0f} MiB (largest {run['peak_worker_rss_max'] / MIB:.0f}), tree "
                 f"Pss {run['peak_tree_pss'] / MIB:.0f} MiB; spilled {run['raylet_spilled_mib']} MiB (raylet), "
                 f"spill dir peak {run['peak_spill_dir_bytes'] / MIB:.1f} MiB; {run['cpu_s']:.0f} CPU s in the "
                 "process tree")
        if run["rc"] != 0 and "killed_at_parts" not in run:
            raise SystemExit(f"bench_scale: infer failed (rc {run['rc']}); see {self.log_path}")

    def kill_and_resume(self, out: str) -> tuple[dict, dict]:
        """Kill a run of the N input once ``kill_parts`` files are out, rerun it; (the two runs merged, figures)."""
        n, files = self.n, self.files
        first = self.infer(self.inputs["big"], out, kill_after_parts=self.kill_parts)
        published = len(list(Path(out).glob("part-*.parquet")))
        self.report("N, killed", first, n)
        second = self.infer(self.inputs["big"], out)
        self.report("N, rerun", second, n)
        counted = catalog_rows(out)
        cj = second.get("catalog_json", {})
        figures = dict(killed_after_s=round(first["seconds"], 1), killed_at_parts=first.get("killed_at_parts"),
                       parts_after_kill=published, files=files,
                       survivors_after_killpg=first.get("survivors_after_killpg"),
                       survivor_names=first.get("survivor_names"),
                       rerun_rc=second["rc"], rerun_s=round(second["seconds"], 1),
                       rerun_rows_this_run=cj.get("rows_this_run"), rerun_files_skipped=cj.get("files_skipped"),
                       rows=counted["rows"], unique_ids=counted["unique_ids"],
                       ok=counted["rows"] == counted["unique_ids"] == n)
        self.say(f"kill and resume: killed after {first['seconds']:.1f} s with {published} of {files} files "
                 f"published ({first.get('survivors_after_killpg')} process(es) outlived the group kill: "
                 f"{', '.join(first.get('survivor_names') or []) or 'none'}); rerun rc {second['rc']} "
                 f"in {second['seconds']:.1f} s writing {cj.get('rows_this_run')} rows; catalog {counted['rows']} "
                 f"rows, {counted['unique_ids']} unique ids ({'OK' if figures['ok'] else 'WRONG'})")
        return merge_runs(first, second), figures

    def infer_runs(self) -> None:
        """The N/10 and N runs, the second bare loop, the N catalog's count and the separate kill-and-resume run."""
        out_n10 = str(self.workdir / "catalog_n10")
        shutil.rmtree(out_n10, ignore_errors=True)
        self.runs["n10"] = self.infer(self.inputs["small"], out_n10)
        self.report("N/10", self.runs["n10"], self.inputs["rows_n10"])
        shutil.rmtree(self.cat_n, ignore_errors=True)
        if self.args.kill_run == "main":  # the N run is the one killed and resumed: one pass over N, not two
            self.runs["n"], self.resume = self.kill_and_resume(self.cat_n)
        else:
            self.runs["n"] = self.infer(self.inputs["big"], self.cat_n)
            self.report("N", self.runs["n"], self.n)
        self.bare()
        counted = self.counted = catalog_rows(self.cat_n)
        self.say(f"catalog: {counted['rows']} rows, {counted['unique_ids']} unique ids, {counted['part_files']} "
                 f"part files ({counted['files']} files, {counted['bytes'] / MIB:.0f} MiB)")
        if self.args.kill_run == "separate":
            out = str(self.workdir / "catalog_resume")
            shutil.rmtree(out, ignore_errors=True)
            _, self.resume = self.kill_and_resume(out)

    def run_hats(self) -> None:
        """``galaxy-ray hats`` of the N catalog."""
        shutil.rmtree(self.hats_dir, ignore_errors=True)
        s, rc = timed([sys.executable, "-m", "galaxy_ray.cli", "hats", self.cat_n, self.hats_dir,
                       "--workers", str(min(4, os.cpu_count() or 1))], self.log_path)
        files = sum(1 for p in Path(self.hats_dir).rglob("*") if p.is_file())
        self.hats = dict(seconds=s, rc=rc, files=files)
        self.say(f"hats: rc {rc} in {s:.1f} s, {files} files")

    def run_cones(self) -> None:
        """The cone by the CLI (wall time, imports included) and by ``api.cone`` in-process, on HATS and Parquet."""
        import pyarrow.parquet as pq

        from galaxy_ray import api

        self.truth = cone_truth(self.inputs["ra"], self.inputs["dec"], CONE)
        for label, target in (("hats", self.hats_dir), ("parquet", self.cat_n)):
            dest = self.workdir / f"cone_{label}.parquet"
            s, rc = timed([sys.executable, "-m", "galaxy_ray.cli", "query", target, "--cone", *map(str, CONE),
                           "--columns", "object_id,ra,dec", "--out", str(dest)], self.log_path)
            got = pq.read_metadata(dest).num_rows if rc == 0 and dest.exists() else None
            api.cone(target, *CONE, columns=["object_id"])  # warm: opening and imports
            t0 = time.perf_counter()
            rows_api = len(api.cone(target, *CONE, columns=["object_id"]))
            self.cones[label] = dict(cli_s=round(s, 2), rc=rc, rows=got, api_s=round(time.perf_counter() - t0, 3),
                                     api_rows=rows_api)
            self.say(f"cone {CONE} on {label}: {got} rows (truth {self.truth}) in {s:.2f} s by the CLI, "
                     f"{self.cones[label]['api_s']:.3f} s in-process")


def merge_runs(first: dict, second: dict) -> dict:
    """A killed run and its rerun as one: times, CPU and spilled MiB added, peaks the larger of the two."""
    merged = dict(second)
    merged.update(seconds=first["seconds"] + second["seconds"], first_part_s=first["first_part_s"],
                  cpu_s=first["cpu_s"] + second["cpu_s"],
                  raylet_spilled_mib=(first["raylet_spilled_mib"] or 0) + (second["raylet_spilled_mib"] or 0))
    for k in first:
        if k.startswith("peak_"):
            merged[k] = max(first[k], second[k])
    return merged


def result_dict(bench: ScaleBench) -> dict:
    """The final JSON line's figures (ratios are N over the bare-loop baseline, or N over N/10)."""
    args, n, inputs, counted, cones = bench.args, bench.n, bench.inputs, bench.counted, bench.cones
    rn, rn10 = bench.runs["n"], bench.runs["n10"]
    bare_rate = float(np.mean(bench.bare_rates))
    rate = n / rn["seconds"]
    cj = rn.get("catalog_json", {})
    ratio = lambda a, b: round(a / b, 3) if b else None  # noqa: E731
    peak_mib = lambda k: {f"peak_{k}_mib": round(rn[f"peak_{k}"] / MIB),  # noqa: E731
                          f"peak_{k}_mib_n10": round(rn10[f"peak_{k}"] / MIB)}
    return {
        "n": n, "image_size": args.image_size, "source_size": args.source_size, "inputs": inputs["what"],
        "plain_workers": args.plain_workers or os.cpu_count(), "arch": args.arch, "batch_size": args.batch_size,
        "cpu_cores": os.cpu_count(), "shards": inputs["shards"], "rows_per_shard": args.rows_per_shard,
        "rows_per_file": args.rows_per_file,
        "input_write_s": round(inputs["seconds"], 1), "input_mib": round(inputs["bytes"] / MIB, 1),
        "bare_rows_per_s": round(bare_rate, 1), "bare_runs_rows_per_s": [round(r, 1) for r in bench.bare_rates],
        "bare_rows": args.bare_rows,
        "bare_cpu_ms_per_row": round(float(np.mean(bench.bare_cpu)) * 1e3, 3),
        "pipeline_cpu_ms_per_row": round(rn["cpu_s"] / n * 1e3, 3),
        "pipeline_cpu_ms_per_row_n10": round(rn10["cpu_s"] / inputs["rows_n10"] * 1e3, 3),
        "infer_s": round(rn["seconds"], 1), "rows_per_s_end_to_end": round(rate, 1),
        "ratio_end_to_end": ratio(rate, bare_rate),
        "rows_per_s_after_startup": cj.get("rows_per_second_after_startup"),
        "ratio_after_startup": ratio(cj.get("rows_per_second_after_startup") or 0, bare_rate),
        "startup_s": cj.get("startup_seconds"),
        "time_to_first_part_s": round(rn["first_part_s"], 1) if rn["first_part_s"] else None,
        "n10": inputs["rows_n10"], "infer_s_n10": round(rn10["seconds"], 1),
        **peak_mib("driver_rss"), "driver_rss_ratio": ratio(rn["peak_driver_rss"], rn10["peak_driver_rss"]),
        **peak_mib("workers_rss"), "workers_rss_ratio": ratio(rn["peak_workers_rss"], rn10["peak_workers_rss"]),
        **peak_mib("worker_rss_max"), **peak_mib("ray_system_rss"),
        **peak_mib("tree_pss"), "tree_pss_ratio": ratio(rn["peak_tree_pss"], rn10["peak_tree_pss"]),
        "peak_processes": rn["peak_workers"],
        "spilled_mib_raylet": rn["raylet_spilled_mib"], "spilled_mib_raylet_n10": rn10["raylet_spilled_mib"],
        "spill_dir_peak_mib": round(rn["peak_spill_dir_bytes"] / MIB, 1),
        "catalog_rows": counted["rows"], "catalog_unique_ids": counted["unique_ids"],
        "catalog_rows_ok": counted["rows"] == counted["unique_ids"] == n,
        "catalog_part_files": counted["part_files"], "catalog_files": counted["files"],
        "catalog_mib": round(counted["bytes"] / MIB, 1),
        "kill_run": args.kill_run, "resume": bench.resume,
        "hats_s": round(bench.hats["seconds"], 1), "hats_rc": bench.hats["rc"], "hats_files": bench.hats["files"],
        "cone": list(CONE), "cone_truth_rows": bench.truth, "cone_hats": cones["hats"],
        "cone_parquet": cones["parquet"],
        "cone_ok": all(c["rows"] == c["api_rows"] == bench.truth for c in cones.values()),
        "workdir": str(bench.workdir),
    }


def main(argv: Sequence[str] | None = None) -> int:
    bench = ScaleBench(build_parser().parse_args(argv))
    bench.prepare()
    bench.bare()
    bench.infer_runs()
    bench.run_hats()
    bench.run_cones()
    print(json.dumps(result_dict(bench)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_entry_point(main))
