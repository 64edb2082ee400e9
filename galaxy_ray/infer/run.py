"""``run_inference``: a source, a checkpoint and an output directory in; a resumable catalog out.

The steps, each a function below: check the options and the checkpoint, open
the source once (it lists its files and tells its format), connect to Ray,
look at what the output already holds, plan the units, stream the unfinished
ones through the pipeline into the writer, and write the catalog summary.

A cutout that cannot be decoded becomes a row with its ``object_id``, the
reason in ``error`` and null predictions; the count of such rows is printed
and recorded in the provenance (Parquet key-value metadata and
``_catalog.json``).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from galaxy_ray import catalog
from galaxy_ray import model as model_mod
from galaxy_ray import runtime
from galaxy_ray.catalog import galaxy_zoo
from galaxy_ray.catalog.checksums import CHECKSUMS_KEY, catalog_checksums
from galaxy_ray.catalog.metadata import portable_uri
from galaxy_ray.data import sources
from galaxy_ray.data.sources import identity
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.infer import options, pipeline, run_key
from galaxy_ray.merger.calibration import describe
from galaxy_ray.merger.operating import format_threshold
from galaxy_ray.merger.rule import MergerRule
from galaxy_ray.merger.truth import truth_rule
from galaxy_ray.infer.plan import DEFAULT_ROWS_PER_FILE, Plan, make_plan
from galaxy_ray.infer.writer import UnitWriter, catalog_totals
from galaxy_ray.io import layout, resume, storage
from galaxy_ray.io.lock import OutputLock
from galaxy_ray.similar.embed import plan_embedding
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["run_inference", "base_provenance", "merger_rule"]


def base_provenance(checkpoint: str, spec, source: str, fmt: str, threshold: float, tta: bool,
                    rule: MergerRule | None = None) -> dict:
    """Provenance shared by every file of a run: the model, its options, the input and the software.

    ``tree_columns`` names the GZ2 conditional-fraction and proportion-asked columns that follow
    the outputs; ``column_descriptions`` says what each probability column is
    (:func:`galaxy_ray.catalog.galaxy_zoo.column_descriptions`), with the merger truth of ``rule``
    (the checkpoint's, or :func:`galaxy_ray.merger.truth.truth_rule` of its vote cut).
    """
    prov = {
        "task": spec.task,
        "arch": spec.arch,
        "output_columns": list(model_mod.output_columns(spec)),
        "output_names": list(spec.output_names),
        "merger": spec.merger,
        "merger_threshold": float(threshold),
        "tta": bool(tta),
        "preprocess": spec.preprocess.to_dict(),
        "checkpoint": checkpoint,
        "checkpoint_sha256": storage.file_sha256(checkpoint),
        "source": source,
        "source_format": fmt,
        "versions": runtime.package_versions(),
    }
    calibration = spec.calibration or {}
    task = spec.task_of
    prov.update(task.provenance(spec), column_meaning=task.column_meaning(spec))
    prov["calibration"] = {"probabilities": calibration.get("probabilities"),
                           "p_merger": f"{describe(calibration['merger'])}, fitted on the training run's validation "
                           "split" if calibration.get("merger") else None}
    prov["tree_columns"] = task.tree_column_names(spec)
    truth = rule.truth if rule is not None and rule.truth else (
        truth_rule(spec, rule.vote_cut) if rule is not None and spec.merger is not None else None)
    prov["column_descriptions"] = galaxy_zoo.column_descriptions(
        spec.task, spec.output_names, spec.merger, calibration=calibration, truth=truth,
        threshold=float(threshold), threshold_text=format_threshold(float(threshold)), tree=spec.tree)
    return prov


def _check_options(batch_size: int, num_actors, decode_tasks) -> tuple:
    """The sizing options, checked in one line each (the CLI and ``api.infer`` check them too; this covers
    a direct call); returns ``num_actors`` and ``decode_tasks`` as the pipeline takes them."""
    if batch_size < 1:
        raise GalaxyRayError(f"--batch-size {batch_size}: must be at least 1")
    return options.check_num_actors(num_actors), options.check_decode_tasks(decode_tasks)


def merger_rule(spec, extra: dict, merger_threshold: float | str, merger_precision: float | None,
                log: Callable[[str], None]) -> MergerRule:
    """The rule that sets ``is_merger``, said in one line: the checkpoint's, or the user's override.

    ``auto`` takes the threshold the checkpoint's training chose on its
    validation split (or, with ``merger_precision``, the lowest meeting it on
    the stored validation table); a number overrides.  The validation rates at
    the threshold go into the provenance as ``merger_validation``, which
    :mod:`galaxy_ray.merger.fractions` turns into corrected merger fractions.
    """
    rule = MergerRule.from_checkpoint(spec, extra, merger_threshold, merger_precision)
    log(f"is_merger = p_merger >= {format_threshold(rule.threshold)} ({rule.threshold_source})")
    return rule


def _pending_units(out: str, plan: Plan, key: dict, overwrite: bool, log: Callable[[str], None]) -> list:
    """The units of ``plan`` whose file ``out`` does not hold yet; removes a killed run's temp files.

    Raises
    ------
    GalaxyRayError
        ``out`` holds catalog files made by another run key
        (:func:`galaxy_ray.infer.run_key.check_run_key`), of a different plan, or not made by galaxy-ray.
    """
    storage.makedirs(out)
    state = resume.scan_output(out)
    published = run_key.check_run_key(out, key, state.published, overwrite, log, files=[u.name for u in plan.units])
    stale = resume.remove_temps(resume.scan_output(out) if overwrite else state)
    if stale:
        log(f"removed {stale} temp file(s) left by an interrupted run")
    return [u for u in plan.units if u.name not in published]


def _stream(ds, writer: UnitWriter, out: str) -> float:
    """Feed the pipeline's rows to the writer; returns when the last row arrived (``perf_counter``).

    Raises
    ------
    GalaxyRayError
        The stream ended before every unit got all its rows.
    """
    for table in pipeline.stream_catalog_rows(ds):
        writer.add(table)
    streamed_until = time.perf_counter()
    missing = writer.unfinished()
    if missing:
        raise GalaxyRayError(
            f"{out}: {len(missing)} file(s) got fewer rows than their input holds "
            f"(e.g. {missing[0]}); rerun the same command to finish them"
        )
    return streamed_until


def _identity(plan: Plan, log: Callable[[str], None]) -> dict[str, int]:
    """Warn about object ids on several rows (each still gets its catalog row) and count them.

    Row plans hold the source's ids already; packed shards were checked when packed.
    """
    if plan.metadata is None or C.OBJECT_ID not in plan.metadata:
        return {}
    report = identity.find_identity(plan.metadata[C.OBJECT_ID].tolist())
    if report.duplicate_ids:
        log(f"warning: {report.summary()}; each row gets its own catalog row, so these ids are not unique there")
    return {"duplicate_id_rows": report.duplicate_rows}


def _throughput(t0: float, writer: UnitWriter, streaming_from: float | None,
                streamed_until: float | None) -> dict[str, float]:
    """Start-up time (until the first catalog rows reach the driver), its planning share, and the rate after it.

    Start-up is paid once per job; the rate after it is what a survey of
    millions of cutouts runs at.  ``planning_seconds`` is the driver's share
    (checking the checkpoint, listing and planning the input, building the
    dataset) until the pipeline starts; the rest of ``startup_seconds`` is the
    pipeline's (placing the model actors, loading the model in each, the
    first batch).  All are ``time.perf_counter`` differences from ``t0``.
    """
    if streaming_from is None or streamed_until is None or writer.first_rows_at is None:
        return {}
    timing = {"startup_seconds": round(writer.first_rows_at - t0, 3),
              "planning_seconds": round(streaming_from - t0, 3)}
    after = streamed_until - writer.first_rows_at
    later_rows = sum(writer.seen.values()) - writer.first_rows
    if later_rows > 0 and after > 0:
        timing["rows_per_second_after_startup"] = round(later_rows / after, 2)
    return timing


def _summarise(out: str, plan: Plan, writer: UnitWriter, provenance: dict, timing: dict, t0: float,
               log: Callable[[str], None]) -> dict[str, Any]:
    """Write ``_catalog.json`` (the provenance plus the whole catalog's counts) and return it."""
    names = sorted(u.name for u in plan.units)
    totals = catalog_totals(out, names)
    rows, error_rows, by_reason = totals["rows"], totals["error_rows"], totals["errors_by_reason"]
    summary = dict(
        provenance,
        **totals,
        files=len(names),
        rows_this_run=writer.rows,
        error_rows_this_run=writer.error_rows,
        files_this_run=writer.done,
        files_skipped=len(plan.units) - len(writer.units),
        seconds=round(time.perf_counter() - t0, 3),
        **timing,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    # one footer for a query to read instead of one per file; then every file's checksum, which readers verify
    footers = catalog.write_parquet_metadata(out)
    summary[CHECKSUMS_KEY] = dict(catalog_checksums(out, names, writer.sha256),
                                  **{layout.CATALOG_METADATA: storage.file_sha256(footers)})
    catalog.write_catalog_summary(out, summary)
    pace = (f"; first rows after {timing['startup_seconds']:.1f} s, then {timing['rows_per_second_after_startup']:.1f} "
            "rows/s" if timing.get("rows_per_second_after_startup") else "")
    log(f"catalog {out}: {rows} rows in {len(names)} file(s), {error_rows} row(s) with errors "
        f"({writer.rows} rows written this run in {summary['seconds']:.1f} s{pace})")
    for reason, count in by_reason.items():
        log(f"  {count} row(s): {reason}")
    if totals["rows_without_position"]:
        log(f"warning: {totals['rows_without_position']} classified row(s) have no RA/Dec: cone searches and HATS "
            "cannot place them; give ra/dec in a manifest, or cutouts with a celestial WCS")
    return summary


def run_inference(
    checkpoint: str,
    source: str,
    out: str,
    *,
    format: str | None = None,
    batch_size: int = 64,
    rows_per_file: int = DEFAULT_ROWS_PER_FILE,
    tta: bool = False,
    merger_threshold: float | str = "auto",
    merger_precision: float | None = None,
    num_actors: int | tuple[int, int] | None = None,
    use_gpu: bool | str = "auto",
    decode_tasks: int | None = None,
    source_options: dict | None = None,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    embeddings: int | None = None,
    embedding_sample: int = 512,
) -> dict[str, Any]:
    """Stream ``source`` through the model in ``checkpoint`` into a catalog under ``out``.

    Parameters
    ----------
    checkpoint : str
        Model checkpoint (``model.save_checkpoint`` format) or its run directory, path or ``s3://``.
    source : str
        Input, any format ``galaxy_ray.data.sources`` reads; packed shards are the fast path.
    out : str
        Catalog directory, path or ``s3://`` prefix.
    format : str, optional
        Source format; detected when omitted.
    batch_size : int
        Images per forward pass.
    rows_per_file : int
        Target rows per output file (a unit of resumable work).
    tta : bool
        Average predictions over the 8 rotations and flips of each cutout.
    merger_threshold : "auto" or float
        ``is_merger = p_merger >= merger_threshold``; ``auto`` is the threshold
        the checkpoint's training chose on its validation split.
    merger_precision : float, optional
        With ``auto``: the lowest threshold whose validation precision reaches this.
    num_actors : int or (int, int), optional
        Size of the model actor pool (fixed, or min and max); default one per
        GPU, or one per 4 CPUs on CPU clusters.
    use_gpu : "auto", "yes", "no" or bool
        One GPU per actor; "auto" uses GPUs when the cluster has them.
    decode_tasks : int, optional
        Cap on concurrent decode/preprocess tasks; default one per model actor
        on CPU clusters, no cap on GPU clusters
        (:func:`galaxy_ray.infer.pipeline.default_decode_tasks`).
    source_options : dict, optional
        Keywords of ``sources.open_source`` (``filename_mapping``, ``galaxy10``).
    overwrite : bool
        Replace the catalog ``out`` holds when it was made by another run key
        (another model, input, preprocessing or merger rule) instead of refusing;
        only the files its ``_run_key.json`` lists are removed
        (:func:`galaxy_ray.infer.run_key.owned_files`).
    progress : bool
        Show a progress bar (a plain line per 5% when stderr is not a terminal).
    log : callable
        Receives progress lines.
    embeddings : int, optional
        Also write an ``embedding`` column of this many float16 PCA dimensions of the
        pooled features, the PCA fitted on ``embedding_sample`` cutouts
        (:func:`galaxy_ray.similar.embed.plan_embedding`).

    Returns
    -------
    dict
        The run's provenance: rows and error rows in the catalog, rows and
        files written by this run, units skipped, seconds.

    Raises
    ------
    GalaxyRayError
        Bad options, a missing checkpoint or source, an output holding files
        of another run key or plan (without ``overwrite``), an ``out`` that is, holds or
        lies inside the source, an ``out`` another run is writing (``_infer.lock``,
        :class:`galaxy_ray.io.lock.OutputLock`), or a stream that ended early.
    """
    t0 = time.perf_counter()
    num_actors, decode_tasks = _check_options(batch_size, num_actors, decode_tasks)
    checkpoint = layout.checkpoint_file(checkpoint)
    spec, extra = model_mod.checkpoint_spec(checkpoint)  # fail early on a bad checkpoint; actors load it
    rule = merger_rule(spec, extra, merger_threshold, merger_precision, log)
    run_key.check_out_apart(source, out)  # before anything is read or written
    src = sources.open_source(source, format, **(source_options or {}))  # lists and sniffs the source once
    provenance = base_provenance(checkpoint, spec, source, src.format, rule.threshold, tta, rule=rule)
    # as given, and in a form that still means the same file once the catalog is moved or shared
    provenance.update(checkpoint_portable=portable_uri(checkpoint, out), source_portable=portable_uri(source, out))
    provenance.update(rule.provenance())

    ray = runtime.ensure_ray()
    resources = ray.cluster_resources()
    gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    use_gpu = runtime.resolve_gpu(use_gpu, gpus)
    plan = make_plan(src, rows_per_file)
    provenance.update(_identity(plan, log))
    provenance.update(source_fingerprint=plan.fingerprint, input_files=plan.input_files)
    run_key.check_out_apart(source, out, plan.inputs)
    storage.makedirs(out)
    with OutputLock(out, log=log):  # one writer per --out: a second run is refused until this one ends
        embedding = plan_embedding(checkpoint, plan, spec, out, provenance, dims=embeddings, sample=embedding_sample,
                                   tta=tta, overwrite=overwrite, log=log)
        provenance.update({"embedding": embedding} if embedding else {})
        pending = _pending_units(out, plan, run_key.run_key(provenance), overwrite, log)
        log(f"{source} ({src.format}): {plan.rows} rows in {len(plan.units)} output file(s); "
            f"{len(plan.units) - len(pending)} already written, {len(pending)} to do")
        writer = UnitWriter(out, pending, provenance, log=log, progress=progress)
        streaming_from = streamed_until = None
        if pending:
            ds = pipeline.build_pipeline(
                checkpoint, plan, pending, spec, batch_size=batch_size, tta=tta, rule=rule,
                actors=pipeline.actor_pool(num_actors, use_gpu, gpus, cpus), use_gpu=use_gpu, cpus=cpus,
                decode_tasks=decode_tasks, embedding=embedding,
            )
            streaming_from = time.perf_counter()
            streamed_until = _stream(ds, writer, out)
        timing = _throughput(t0, writer, streaming_from, streamed_until)
        return _summarise(out, plan, writer, provenance, timing, t0, log)
