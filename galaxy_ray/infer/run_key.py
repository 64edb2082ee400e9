"""What made a catalog's rows, stored beside them, so that a rerun only ever adds rows of the same kind.

A rerun into an existing ``--out`` skips the files already written
(:mod:`galaxy_ray.io.resume`).  That is right only when the rerun would write
the same rows: the same model, the same input, the same preprocessing and the
same merger rule.  The **run key** names those things; the first run writes it
to ``_run_key.json`` before any catalog file, and every later run into that
directory compares its own key with it.  A different key is refused, naming
what changed, with the two ways out: a new ``--out``, or ``--overwrite`` to
replace the catalog.  The key is also part of the provenance of every file and
of ``_catalog.json``, so what describes the catalog always describes its rows.

The key's fields (``docs/contracts.md`` lists them too):

``checkpoint_sha256``
    SHA-256 of the checkpoint file's bytes (not its path: a retrained
    ``model.pt`` at the same path is another model).
``source`` and ``source_format``
    The source as given and its format.
``source_fingerprint``
    SHA-256 of what the plan knows of the input before reading pixels: for
    packed shards, each shard's name, row count and ``object_id`` range (from
    the Parquet footers); for any other format, every row of the source's
    metadata table (ids, positions, file locations).  A survey of the same size
    with other galaxies has another fingerprint.
``preprocess``, ``tta``, ``merger_threshold``
    What the model sees and how ``is_merger`` is set.
``catalog_columns``
    The model's output columns and the Galaxy Zoo tree columns after them:
    the files' layout, so a galaxy-ray that writes other columns never adds
    its files to a catalog of another layout.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Callable

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import layout, resume, storage
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["RUN_KEY_FIELDS", "run_key", "check_run_key", "remove_catalog"]

#: The fields of a run key, in the order a refusal lists what changed.
RUN_KEY_FIELDS = ("checkpoint_sha256", "source", "source_format", "source_fingerprint", "preprocess", "tta",
                  "merger_threshold", "catalog_columns")


def run_key(provenance: dict) -> dict:
    """The run key of a run whose provenance is ``provenance`` (see the module docstring).

    Parameters
    ----------
    provenance : dict
        :func:`galaxy_ray.infer.run.base_provenance` with the merger rule's entries and
        ``source_fingerprint`` (:attr:`galaxy_ray.infer.plan.Plan.fingerprint`).
    """
    key = {name: provenance[name] for name in RUN_KEY_FIELDS if name != "catalog_columns"}
    # the files' layout: a galaxy-ray that writes other columns must not add its files to these
    key["catalog_columns"] = list(provenance["output_columns"]) + list(provenance.get("tree_columns") or [])
    return {name: key[name] for name in RUN_KEY_FIELDS}


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _changes(stored: dict, key: dict) -> list[str]:
    """``field: stored -> new`` for every field that differs (long values shortened)."""

    def short(value) -> str:
        text = _canonical(value)
        return text if len(text) <= 24 else text[:12] + "..." + text[-8:]

    return [f"{name} {short(stored.get(name))} -> {short(key[name])}"
            for name in RUN_KEY_FIELDS if _canonical(stored.get(name)) != _canonical(key[name])]


def _read_stored_key(out: str) -> dict | None:
    uri = storage.join(out, layout.RUN_KEY)
    if not storage.exists(uri):
        return None
    try:
        return json.loads(storage.read_bytes(uri))
    except (OSError, ValueError) as exc:
        raise GalaxyRayError(f"{uri}: unreadable run key ({exc}); pass --overwrite to replace the catalog") from None


def check_run_key(out: str, key: dict, published: set[str], overwrite: bool, log: Callable[[str], None]) -> None:
    """Refuse a rerun into ``out`` that would write other rows than those there; record ``key``.

    Parameters
    ----------
    out : str
        Catalog directory (created already).
    key : dict
        This run's :func:`run_key`.
    published : set of str
        Catalog file names ``out`` holds (:func:`galaxy_ray.io.resume.scan_output`).
    overwrite : bool
        Replace whatever catalog ``out`` holds instead of refusing.
    log : callable
        Receives a line when a catalog is replaced.

    Raises
    ------
    GalaxyRayError
        ``out`` holds catalog files made by another key, or catalog files with
        no key (written by an older galaxy-ray), and ``overwrite`` is off.
    """
    stored = _read_stored_key(out)
    if published and not overwrite:
        if stored is None:
            raise GalaxyRayError(
                f"{out}: holds {len(published)} catalog file(s) but no {layout.RUN_KEY} saying what made them; "
                "write to a new --out, or pass --overwrite to replace them")
        changed = _changes(stored, key)
        if changed:
            raise GalaxyRayError(
                f"{out}: holds {len(published)} catalog file(s) made by another run ({'; '.join(changed)}); "
                "write to a new --out, or pass --overwrite to replace them")
    if published and overwrite:
        removed = remove_catalog(out)
        log(f"--overwrite: removed the {removed} catalog file(s) {out} held")
    if stored is None or _changes(stored, key):
        storage.write_bytes_atomic(storage.join(out, layout.RUN_KEY),
                                   json.dumps(key, indent=2, sort_keys=True, default=str).encode())


def remove_catalog(out: str) -> int:
    """Delete the catalog galaxy-ray wrote in ``out`` (parts, temporaries, summaries); returns the parts removed.

    Only galaxy-ray's own names go (:mod:`galaxy_ray.io.layout`); any other file stays.
    """
    state = resume.scan_output(out)
    resume.remove_temps(state)
    for name in sorted(state.published):
        storage.remove(storage.join(out, name))
    for name in (layout.CATALOG_SUMMARY, layout.RUN_KEY, layout.CATALOG_METADATA):
        uri = storage.join(out, name)
        if storage.exists(uri):
            storage.remove(uri)
    return len(state.published)


def fingerprint(parts: list) -> str:
    """SHA-256 (hex) of a list of JSON-able values, in order."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(_canonical(part).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def shard_fingerprint(shards, footers) -> str:
    """:func:`fingerprint` of each shard's base name, row count and ``object_id`` range (from its footer)."""
    return fingerprint([[os.path.basename(uri), footer.num_rows, _id_range(footer)]
                        for uri, footer in zip(shards, footers)])


def _id_range(footer) -> list | None:
    """Smallest and largest ``object_id`` over the row groups' statistics; None without statistics."""
    names = footer.schema.to_arrow_schema().names
    if C.OBJECT_ID not in names:
        return None
    column = names.index(C.OBJECT_ID)
    lows, highs = [], []
    for i in range(footer.num_row_groups):
        stats = footer.row_group(i).column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    return [str(min(lows)), str(max(highs))] if lows else None


def metadata_fingerprint(meta) -> str:
    """SHA-256 (hex) of every row of a source's metadata table (pandas), in order, column names included."""
    import pandas as pd

    digest = hashlib.sha256(_canonical(list(map(str, meta.columns))).encode())
    digest.update(pd.util.hash_pandas_object(meta.astype(str), index=False).to_numpy().tobytes())
    return digest.hexdigest()
