"""Each catalog file's SHA-256 in ``_catalog.json``, and the check every reader makes against it.

A Parquet file damaged on copy can still decode: a flipped byte in a string
page gives other strings, not an error, and statistics built on them are
silently wrong.  ``infer`` records the SHA-256 of every file it publishes
(hashed from the bytes in memory as they are written: no second read) and of
the ``_metadata`` summary under ``files_sha256`` in ``_catalog.json``.
:class:`galaxy_ray.catalog.scan.Catalog` checks a file against it before it
first reads its rows, so ``query``, ``stats``, ``report``, ``hats`` and the
Python API all refuse a damaged file in one line naming it.  It also refuses a
part file ``_catalog.json`` does not list (rows another run added) and a
listed file that is missing.

Cost: the check reads each file once more than the query itself would (a
cone search reads only the files it opens, and only once per opened catalog);
``docs/measurements.md`` has the figures for a 1M-row catalog.  Catalogs
written before this (no ``files_sha256``) are read unchecked.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import layout, storage
from galaxy_ray.io.lock import LOCK_NAME

__all__ = ["CHECKSUMS_KEY", "catalog_checksums", "check_listing", "verify_file"]

#: The ``_catalog.json`` key holding ``{file name: SHA-256 hex}``.
CHECKSUMS_KEY = "files_sha256"


def _name(uri: str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def _previous(out: str) -> dict[str, str]:
    """``files_sha256`` of the ``_catalog.json`` ``out`` holds now (a finished earlier run of the same key)."""
    uri = storage.join(out, layout.CATALOG_SUMMARY)
    try:
        return dict(json.loads(storage.read_bytes(uri)).get(CHECKSUMS_KEY) or {})
    except (OSError, ValueError, AttributeError):
        return {}


def catalog_checksums(out: str, names: Iterable[str], written: dict[str, str]) -> dict[str, str]:
    """SHA-256 of each catalog file ``names`` in ``out``: as written this run, as recorded before, or hashed now.

    Files a resumed run skipped keep the checksum the run that wrote them
    recorded, so damage done to them since is found by readers, not blessed;
    only files of a run that never finished are hashed from disk.

    Parameters
    ----------
    out : str
        Catalog directory (before its new ``_catalog.json`` is written).
    names : iterable of str
        The catalog's file names.
    written : dict
        ``{name: sha256}`` of the files this run published.
    """
    names = sorted(names)
    previous = _previous(out)
    found = {n: written.get(n) or previous.get(n) for n in names}
    todo = [n for n, digest in found.items() if not digest]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for name, digest in zip(todo, pool.map(lambda n: storage.file_sha256(storage.join(out, n)), todo)):
            found[name] = digest
    return found


def check_listing(catalog_uri: str, files: list[str], checksums: dict[str, str], listing: list[str] = ()) -> None:
    """Refuse part files ``_catalog.json`` does not list, and listed ones that are missing.

    Parameters
    ----------
    catalog_uri : str
        The catalog directory.
    files : list of str
        Its part files as listed now.
    checksums : dict
        ``_catalog.json``'s ``files_sha256``.
    listing : list of str
        Every file of the directory: an ``_infer.lock`` among them means a run is writing it now.

    Raises
    ------
    GalaxyRayError
        One line naming the first such file and what to do.
    """
    names = {_name(f) for f in files}
    listed = {n for n in checksums if n.endswith(layout.PART_SUFFIX)}
    extra, missing = sorted(names - listed), sorted(listed - names)
    summary = storage.join(catalog_uri, layout.CATALOG_SUMMARY)
    if (extra or missing) and any(_name(f) == LOCK_NAME for f in listing):
        raise GalaxyRayError(f"{catalog_uri}: galaxy-ray infer is writing this catalog now ({LOCK_NAME}); "
                             "read it when that run has ended")
    if extra:
        raise GalaxyRayError(
            f"{storage.join(catalog_uri, extra[0])}: not among the files {summary} lists ({len(extra)} such); "
            "another run wrote into this catalog: rerun infer into a new --out")
    if missing:
        raise GalaxyRayError(
            f"{storage.join(catalog_uri, missing[0])}: listed in {summary} but missing ({len(missing)} such); "
            "copy the whole catalog folder again, or rerun infer")


def verify_file(uri: str, expected: str | None) -> None:
    """Compare one file's SHA-256 with ``expected`` (nothing to do when None).

    Raises
    ------
    GalaxyRayError
        The bytes differ: the file was damaged or changed after ``infer`` wrote it.
    """
    if not expected:
        return
    got = storage.file_sha256(uri)
    if got != expected:
        raise GalaxyRayError(
            f"{uri}: damaged or changed since infer wrote it (SHA-256 {got[:12]}..., _catalog.json records "
            f"{expected[:12]}...); copy it again from the original, or rerun infer into a new --out")
