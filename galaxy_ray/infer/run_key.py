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
``input_files``
    SHA-256 of every input file's name, size and modification time (ns), or
    size and ETag on S3 (:func:`galaxy_ray.io.storage.file_identities`): the
    shards, or the cutouts and the table naming them.  A cutout or shard
    rewritten in place under the same name (same ids, other pixels) changes
    it, at the cost of one directory listing per folder; hashing every input's
    bytes would read the survey twice.
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
import posixpath
from typing import Callable, Iterable

import pyarrow as pa

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import layout, resume, storage
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["RUN_KEY_FIELDS", "run_key", "check_run_key", "record_run_key", "owned_files", "remove_catalog", "check_out_apart"]

#: The fields of a run key, in the order a refusal lists what changed.
RUN_KEY_FIELDS = ("checkpoint_sha256", "source", "source_format", "source_fingerprint", "input_files",
                  "preprocess", "tta", "merger_threshold", "catalog_columns")
#: What a change of a field means, said after the values in a refusal.
_MEANING = {"input_files": "an input file was rewritten, added or removed since (its size or modification time "
                           "changed)"}
#: The key of ``_run_key.json`` listing the catalog files the run plans to write: all ``--overwrite`` removes.
FILES = "files"


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
            + (f" ({_MEANING[name]})" if name in _MEANING else "")
            for name in RUN_KEY_FIELDS if _canonical(stored.get(name)) != _canonical(key[name])]


def _read_stored_key(out: str, overwrite: bool = False) -> dict | None:
    uri = storage.join(out, layout.RUN_KEY)
    if not storage.exists(uri):
        return None
    try:
        return json.loads(storage.read_bytes(uri))
    except (OSError, ValueError) as exc:
        if overwrite:  # replaced below; the files it listed cannot be known, so only footers tell (remove_catalog)
            return None
        raise GalaxyRayError(f"{uri}: unreadable run key ({exc}); pass --overwrite to replace the catalog") from None


def check_run_key(out: str, key: dict, published: set[str], overwrite: bool, log: Callable[[str], None],
                  files: list[str] | None = None) -> set[str]:
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
        Replace the catalog a run key of ``out`` lists instead of refusing.
    log : callable
        Receives a line when a catalog is replaced.
    files : list of str, optional
        The catalog files this run plans to write (its units' names): any other
        ``part-*.parquet`` in ``out`` is refused, and the list is recorded
        with the key, as what a later ``--overwrite`` may remove.

    Returns
    -------
    set of str
        The catalog files ``out`` holds after any removal.

    Raises
    ------
    GalaxyRayError
        ``out`` holds catalog files made by another key, or catalog files with
        no key (written by an older galaxy-ray), and ``overwrite`` is off; or
        ``out`` holds ``part-*.parquet`` files this run would not write.
    """
    stored = _read_stored_key(out, overwrite)
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
        ours = owned_files(out, stored, published)
        if published - set(ours):  # refused before anything is removed
            _refuse_foreign(out, published - set(ours), [], overwrite)
        remove_catalog(out, ours)
        log(f"--overwrite: removed the {len(ours)} catalog file(s) galaxy-ray wrote in {out}")
        published = set()
    elif files is not None:
        _refuse_foreign(out, published, files, overwrite)
    record = dict(key, **{FILES: sorted(files)}) if files is not None else dict(key)
    # written again after --overwrite too: the plain rerun that follows must find it
    if stored is None or _canonical(stored) != _canonical(record):
        storage.write_bytes_atomic(storage.join(out, layout.RUN_KEY),
                                   json.dumps(record, indent=2, sort_keys=True, default=str).encode())
    return published


def _refuse_foreign(out: str, published: set[str], files: list[str], overwrite: bool) -> None:
    """Refuse ``part-*.parquet`` files in ``out`` that this run does not write (another split, another tool)."""
    foreign = sorted(published - set(files))
    if not foreign:
        return
    if overwrite:
        raise GalaxyRayError(
            f"{out}: holds {len(foreign)} part file(s) no galaxy-ray run key lists (e.g. {foreign[0]}); "
            "--overwrite removes only the files a run wrote, never others: move them away, or write to a new --out")
    raise GalaxyRayError(
        f"{out}: holds {len(foreign)} catalog file(s) from a different split of the input "
        f"(e.g. {foreign[0]}; another --rows-per-file?); rerun with the same options, "
        "write to a new --out, or pass --overwrite to replace them")


def _written_by_infer(out: str, name: str) -> bool:
    """True when the file ``name`` in ``out`` carries galaxy-ray infer's provenance naming that file."""
    from galaxy_ray.catalog.write import file_provenance

    try:
        prov = file_provenance(storage.join(out, name))
    except (OSError, ValueError, pa.ArrowException):
        return False
    return isinstance(prov, dict) and prov.get("file") == name


def owned_files(out: str, stored: dict | None, published: set[str]) -> list[str]:
    """The catalog files among ``published`` that a galaxy-ray run wrote: all ``--overwrite`` may remove.

    The ``files`` the stored run key ``stored`` lists; for a key without that
    list (an older galaxy-ray) or none, the parts whose footer carries
    galaxy-ray infer's provenance naming that very file.  Packed shards, Spark
    output or any other ``part-*.parquet`` are never among them.
    """
    if stored is not None and isinstance(stored.get(FILES), list):
        return sorted(published & set(stored[FILES]))
    return sorted(n for n in published if _written_by_infer(out, n))


def remove_catalog(out: str, names: list[str]) -> None:
    """Delete the catalog files ``names`` (:func:`owned_files`) in ``out``, the temporaries and the summaries.

    ``_run_key.json`` stays: the run that replaces the catalog writes its own
    over it, so a plain rerun after ``--overwrite`` resumes.
    """
    resume.remove_temps(resume.scan_output(out))
    for name in names:
        storage.remove(storage.join(out, name))
    for name in (layout.CATALOG_SUMMARY, layout.CATALOG_METADATA):
        uri = storage.join(out, name)
        if storage.exists(uri):
            storage.remove(uri)


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


def files_fingerprint(uris) -> str:
    """:func:`fingerprint` of each file's URI with its size and modification time (or S3 ETag).

    See :func:`galaxy_ray.io.storage.file_identities`; a missing file counts as ``None``.
    """
    uris = sorted(set(map(str, uris)))
    identities = storage.file_identities(uris)
    return fingerprint([[uri, identities.get(uri)] for uri in uris])


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


def check_out_apart(source: str, out: str, inputs: Iterable[str] = ()) -> None:
    """Refuse an ``--out`` that is the source, holds it, or lies inside it; or holds the files a table names.

    A catalog written into its own input mixes the two (packed shards and
    catalog parts share the ``part-*.parquet`` names), and a later
    ``--overwrite`` or clean-up of the catalog would reach the input.

    Parameters
    ----------
    source : str
        The source as given (a folder, one file, or an ``s3://`` prefix).
    out : str
        The catalog directory.
    inputs : iterable of str
        Files the source's table names (cutouts of a manifest): ``out`` may
        not be, or hold, a folder of them.

    Raises
    ------
    GalaxyRayError
        In one line, naming both and what to do.
    """
    advice = "write the catalog to a folder of its own, outside the input (e.g. a sibling folder)"
    if storage.same_or_within(source, out):
        raise GalaxyRayError(f"--out {out}: is, holds or lies inside the source {source}; {advice}")
    target = _place(out)
    folders = {posixpath.dirname(u) if storage.is_remote(u) else os.path.dirname(u) for u in inputs if u}
    for folder in sorted(folders):
        place = _place(folder)
        if place == target or _strictly_inside(place, target):
            raise GalaxyRayError(f"--out {out}: is or holds {folder}, a folder of the cutouts {source} names; {advice}")


def _place(uri: str) -> str:
    """``uri`` compared as a place: symbolic links resolved locally, ``..`` removed on S3."""
    if storage.is_remote(uri):
        return "s3://" + posixpath.normpath(storage.strip_scheme(uri))
    return os.path.realpath(os.path.expanduser(uri))


def _strictly_inside(inner: str, outer: str) -> bool:
    """True when ``inner`` lies below ``outer`` (not the same place)."""
    sep = "/" if storage.is_remote(outer) else os.sep
    return inner.rstrip(sep) != outer.rstrip(sep) and inner.startswith(outer.rstrip(sep) + sep)
