"""The Ray Data pipeline: read and prepare cutouts on CPUs, classify them in a pool of model actors.

One streaming Ray Dataset::

    read + prepare, one CPU task per shard (or slice of rows): decode and
         preprocess (:mod:`galaxy_ray.infer.prepare`, with
         ``transforms.preprocess_batch``, the code training uses), fused by
         Ray Data into the read task
      -> predict: a pool of model actors (``ActorPoolStrategy``; one GPU each
         when the cluster has GPUs), the model loaded once per actor
      -> catalog rows (no pixels), to the driver's writer

Ray Data's streaming executor runs both stages at once with a bounded queue
of decoded batches between them (:func:`object_store_budget`), so decoding
overlaps the model and memory does not grow with the input.  Reading and
decoding are one task so that encoded cutouts never wait in the object store:
as separate stages the reader's output took the budget's shared pool and
stalled the decoder for tens of seconds at a time.

Everything that depends on how Ray Data schedules and fuses operators (the
resources that keep stages fused or apart, block sizes, the object-store cap,
prefetching) is in this module; packed shards are read row group by row
group by :func:`galaxy_ray.data.sources.shards.read_shards`, so that a
corrupt one becomes error rows naming its shard.  Ray is imported inside the functions that
use it: ``galaxy-ray predict`` imports this module for :class:`CatalogModel`
and never starts Ray.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import torch

from galaxy_ray import raycompat, runtime
from galaxy_ray.data.packed import check_stored_pixels
from galaxy_ray.data.transforms import ok_rows
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.infer.plan import UNIT_COLUMN, Plan, Unit
from galaxy_ray.infer.prepare import CPU_NICENESS, prepare_blocks, read_tagged_rows
from galaxy_ray.infer.rows import catalog_rows
from galaxy_ray.merger.rule import MergerRule
from galaxy_ray.model import Predictor, output_columns, view_spread
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.similar.embed import Embedder
from galaxy_ray.trees.dirichlet import expected_fractions

__all__ = ["object_store_budget", "actor_pool", "default_decode_tasks", "build_pipeline", "stream_catalog_rows",
           "CatalogModel"]


class CatalogModel:
    """The model stage (a Ray Data callable class): prepared batches in, catalog rows out.

    Each actor loads the checkpoint once into a :class:`galaxy_ray.model.Predictor`
    (device placement, bf16 autocast and channels-last on CUDA, TTA).

    Parameters
    ----------
    checkpoint : str
        Checkpoint file, path or ``s3://`` URI (``model.save_checkpoint`` format).
    rule : MergerRule, optional
        How ``p_merger`` becomes ``is_merger``; default the checkpoint's
        stored rule (:meth:`galaxy_ray.merger.rule.MergerRule.from_checkpoint`).
    tta : bool
        Average over the 8 rotations and flips of each cutout.
    device : str
        ``"cuda"`` or ``"cpu"`` (``"cuda"`` without a visible GPU runs on the CPU).
    threads : int or None
        Torch intra-op threads on CPU.
    embedding : dict, optional
        The provenance's ``embedding`` entry: add the ``embedding`` column.
    """

    def __init__(self, checkpoint: str, rule: MergerRule | None = None, tta: bool = False, device: str = "cpu",
                 threads: int | None = None, embedding: dict | None = None) -> None:
        if threads:
            torch.set_num_threads(int(threads))
        self.predictor = Predictor.from_checkpoint(checkpoint, device=device, tta=tta)
        self.spec = self.predictor.spec
        self.columns = list(output_columns(self.spec))
        self.rule = rule or MergerRule.from_checkpoint(self.spec, self.predictor.extra)
        self.side = self.spec.preprocess.image_size
        # embeddings (galaxy_ray.similar.embed): the head's input, recorded during the same forward pass
        self.embedder = Embedder(self.predictor, embedding) if embedding else None

    def check_pixels(self, pixels: np.ndarray) -> None:
        """Refuse model input whose shape is not (N, 3, side, side) uint8 for this model's preprocessing.

        Raises
        ------
        GalaxyRayError
            Pixels of another size, layout or type than the checkpoint's ``preprocess`` makes.
        """
        shape = tuple(getattr(pixels, "shape", ()))
        if len(shape) != 4 or shape[1:] != (3, self.side, self.side) or pixels.dtype != np.uint8:
            raise GalaxyRayError(
                f"model input of shape {shape[1:]} ({getattr(pixels, 'dtype', type(pixels).__name__)}); this "
                f"checkpoint takes (3, {self.side}, {self.side}) uint8, as its preprocess (image_size {self.side}) "
                "makes: prepare cutouts with galaxy_ray.data.transforms.preprocess_batch and the checkpoint's spec")

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        """Catalog rows (with the unit tag when present) for a batch of :func:`prepare_batch`."""
        if self.embedder is None:
            return self._rows(batch)
        self.embedder.tap.clear()
        return self.embedder.add_column(self._rows(batch), ok_rows(batch[C.ERROR]))

    def _rows(self, batch: dict[str, np.ndarray]) -> pa.Table:
        ok = ok_rows(batch[C.ERROR])
        if ok.any():
            self.check_pixels(batch["pixels"])
        probs = np.zeros((len(ok), len(self.columns)), dtype=np.float32)
        if self.spec.task_of.dirichlet:  # views averaged as concentrations, kept for the intervals
            return self._vote_rows(batch, ok, probs)
        if not self.predictor.tta:
            if ok.any():
                probs[ok] = self.predictor(batch["pixels"][ok])
            return catalog_rows(self.spec, self.columns, batch, probs, ok, self.rule)
        spread = {C.P_MERGER_STD: np.full(len(ok), np.nan, np.float32),
                  C.MORPHOLOGY_PROB_STD: np.full(len(ok), np.nan, np.float32)}
        if ok.any():
            probs[ok], views = self.predictor.predict_with_views(batch["pixels"][ok])
            for name, values in view_spread(self.spec, views, probs[ok]).items():
                spread[name][ok] = values
        return catalog_rows(self.spec, self.columns, batch, probs, ok, self.rule, spread)


    def _vote_rows(self, batch: dict[str, np.ndarray], ok: np.ndarray, probs: np.ndarray) -> pa.Table:
        """A votes model's rows: expected fractions (mean over views) and the intervals of the mean concentrations."""
        tree = self.spec.schema_tree
        concentrations = np.ones_like(probs)
        spread = None
        if ok.any():
            views = self.predictor.concentration_views(batch["pixels"][ok])
            fractions = np.stack([expected_fractions(v, tree) for v in views]).astype(np.float32)
            probs[ok], concentrations[ok] = fractions.mean(axis=0), views.mean(axis=0)
            if self.predictor.tta:
                spread = {name: np.full(len(ok), np.nan, np.float32)
                          for name in (C.P_MERGER_STD, C.MORPHOLOGY_PROB_STD)}
                for name, values in view_spread(self.spec, fractions, probs[ok]).items():
                    spread[name][ok] = values
        return catalog_rows(self.spec, self.columns, batch, probs, ok, self.rule, spread, concentrations)


def object_store_budget(batch_bytes: int, actors: int, store_bytes: float | None = None) -> int:
    """Object-store bytes the pipeline may hold: flat in the input size, and never so small that it stalls.

    Decoding outruns the model, so without a cap decoded pixels pile up to
    Ray Data's default budget (half the store, GBs), and memory grows with the
    input.  Too small a cap stalls instead: Ray Data's allocator reserves
    half the budget, split between the operators, and half of each share for
    that operator's outputs; when a decode task's next output does not fit in
    what is left of its share, the executor stops reading it.  With reading
    and decoding as separate operators (a twelfth of the budget each), 128 MiB
    and large batches, runs stalled for tens of seconds (``docs/measurements.md``).
    So the budget is room for 24 decoded batches (two per output share even
    with three operators) plus 4 queued per model actor, at least 256 MiB, and
    at most half the object store.

    Parameters
    ----------
    batch_bytes : int
        Bytes of one decoded batch as it travels to the model actors.
    actors : int
        Most model actors the pool grows to.
    store_bytes : float, optional
        The cluster's object store size; the budget stays within half of it.
    """
    budget = max(256 << 20, (24 + 4 * max(1, actors)) * batch_bytes)
    if store_bytes:
        budget = min(budget, int(store_bytes) // 2)
    return budget


def actor_pool(num_actors: int | Sequence[int] | None, use_gpu: bool, gpus: float, cpus: float) -> tuple[int, int]:
    """(min, max) model actors: one per GPU, or on CPU from one up to one per 4 CPUs, unless given."""
    if num_actors is None:
        if use_gpu:
            return max(1, int(gpus)), max(1, int(gpus))
        return 1, max(1, int(cpus) // 4)
    if isinstance(num_actors, (tuple, list)):
        return int(num_actors[0]), int(num_actors[1])
    return int(num_actors), int(num_actors)


def default_decode_tasks(actors: tuple[int, int], use_gpu: bool) -> int | None:
    """Concurrent decode tasks when not given: one per model actor on CPU clusters, no cap on GPU clusters.

    On a CPU cluster the model actors and the decoders share the cores, and
    decoding (niced) only fills the model's idle moments, so decode tasks
    beyond one per actor add nothing but worker processes, each paying about
    3 s of CPU for its imports and 0.5 GB of memory while it competes with the
    model.  Measured on 2 cores (``docs/measurements.md``): capping them at one
    took a 1,000-cutout job from 0.67 to 0.82 of the bare loop end to end, and
    50,000 16-px cutouts from 1,495 to 1,773 rows/s after start-up.  On a GPU
    cluster decoding is what keeps the GPU fed: Ray Data runs as many as fit.
    """
    return None if use_gpu else max(1, int(actors[1]))


def build_pipeline(checkpoint: str, plan: Plan, pending: Sequence[Unit], spec, *, batch_size: int, tta: bool,
                   rule: MergerRule, actors: tuple[int, int], use_gpu: bool, cpus: float,
                   decode_tasks: int | None, embedding: dict | None = None):
    """The streaming Dataset of catalog rows (tagged with their unit) for the ``pending`` units of ``plan``.

    Raises
    ------
    GalaxyRayError
        The input was packed at a pixel size this model does not take
        (:func:`galaxy_ray.data.packed.check_stored_pixels`).
    """
    import ray.data

    pre = spec.preprocess
    check_stored_pixels(plan.source if plan.kind != "shards" else [s for u in pending for s in u.shards][:1], pre)
    # Ray Data's own bars and INFO lines only with --verbose: the writer's bar is the one to watch.
    runtime.configure_ray_data(runtime.is_verbose())
    # Half a CPU per decode task on CPU clusters: decoding is light next to the model, and
    # resources that differ from the actors' keep Ray Data from fusing decoding into the model
    # actor (which would decode and predict in turn instead of at once).
    decode_cpus = 1 if use_gpu else 0.5
    decode_tasks = decode_tasks or default_decode_tasks(actors, use_gpu)
    compute = ray.data.TaskPoolStrategy(size=decode_tasks) if decode_tasks else None
    if plan.kind == "shards":
        ds = _read_shards(plan, [s for u in pending for s in u.shards], num_cpus=decode_cpus, tasks=decode_tasks)
    else:
        ds = _read_rows(plan, pending, num_cpus=decode_cpus, compute=compute)
    ds = ds.map_batches(
        prepare_blocks,
        batch_size=None,  # whole blocks, so that Ray Data fuses this stage into the read
        batch_format="numpy",
        zero_copy_batch=True,
        fn_kwargs=dict(batch_size=batch_size, preprocess_config=pre, shard_unit=plan.shard_unit,
                       niceness=None if use_gpu else CPU_NICENESS),  # on GPU clusters decoding feeds the model
        compute=compute,
        num_cpus=decode_cpus,
    )
    ds = _predict(ds, checkpoint, batch_size=batch_size, tta=tta, rule=rule,
                  actors=actors, use_gpu=use_gpu, cpus=cpus, embedding=embedding)
    side = pre.image_size
    _limit_memory(ds, batch_size * 3 * side * side, actors[1])  # uint8 pixels
    return ds


def _predict(ds, checkpoint: str, *, batch_size: int, tta: bool, rule: MergerRule,
             actors: tuple[int, int], use_gpu: bool, cpus: float, embedding: dict | None = None):
    """The model stage: a pool of :class:`CatalogModel` actors, one GPU each on GPU clusters."""
    import ray.data

    lo, hi = actors
    if use_gpu:
        resources = dict(num_gpus=1, num_cpus=1)
        ctor = dict(device="cuda")
    else:
        # CPU actors: a CPU slot for scheduling; torch threads share the node's cores
        resources = dict(num_cpus=1)
        ctor = dict(device="cpu", threads=max(1, int(cpus) // max(1, hi)))
    return ds.map_batches(
        CatalogModel,
        batch_size=batch_size,
        batch_format="numpy",
        zero_copy_batch=True,
        fn_constructor_kwargs=dict(checkpoint=checkpoint, rule=rule, tta=tta, embedding=embedding, **ctor),
        compute=ray.data.ActorPoolStrategy(min_size=lo, max_size=hi),
        **resources,
    )


def _limit_memory(ds, batch_bytes: int, actors: int) -> None:
    """Cap the object store the pipeline holds, and cut blocks of about one batch."""
    import ray

    ctx = ds.context
    budget = object_store_budget(batch_bytes, actors, ray.cluster_resources().get("object_store_memory"))
    ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(object_store_memory=budget)
    # Blocks of about one batch (not Ray's default 128 MiB) keep each decode worker from buffering
    # many batches before it hands them on.
    ctx.target_max_block_size = max(8 << 20, 2 * batch_bytes)


def stream_catalog_rows(ds) -> Iterator[pa.Table]:
    """The pipeline's catalog rows on the driver, as they come.

    No prefetching: the driver's writer is cheap, and prefetched batches would
    only sit in the driver's memory.
    """
    yield from ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0)


def _read_rows(plan: Plan, pending: Sequence[Unit], rows_per_block: int = 64, num_cpus: float = 1, compute=None):
    """The cutout rows of the pending units of a row plan, in small blocks."""
    import ray.data

    chunks = []
    for unit in pending:
        first, last = unit.row_range
        meta = plan.metadata.iloc[first : last + 1].copy()
        meta[UNIT_COLUMN] = unit.index
        chunks += [meta.iloc[i : i + rows_per_block] for i in range(0, len(meta), rows_per_block)]
    return ray.data.from_pandas(chunks).map_batches(
        read_tagged_rows, batch_format="pandas", batch_size=None, fn_kwargs=dict(source=plan.source), num_cpus=num_cpus,
        compute=compute,
    )


def _read_shards(plan: Plan, shards: Sequence[str], num_cpus: float = 1, tasks: int | None = None):
    """Read packed shards with only the columns inference needs, tagged with their path.

    One block per shard, read with ``num_cpus`` per task: with the decode
    stage's resources (and its cap of ``tasks`` at once) and whole-block
    batches, Ray Data fuses the two into one task per shard.  A row group that
    cannot be read (corrupt data pages) becomes error rows naming its shard
    (:func:`galaxy_ray.data.sources.shards.read_shard`); the other shards' rows go on.
    """
    from galaxy_ray.data.sources.shards import read_shards

    if C.OBJECT_ID not in plan.columns or C.IMAGE not in plan.columns:
        raise GalaxyRayError(f"{shards[0]}: not a cutout shard (needs object_id and image columns); "
                             "pack the source with `galaxy-ray pack`")
    columns = [c for c in (C.OBJECT_ID, C.RA, C.DEC, C.IMAGE, C.SOURCE) if c in plan.columns]
    return read_shards(shards, columns, num_cpus=num_cpus, **({"concurrency": tasks} if tasks else {}))
