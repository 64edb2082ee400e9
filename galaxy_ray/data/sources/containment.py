"""Which files a table of cutouts may name: those under the table's own folder, unless the user allows more.

A manifest (or a GZ2 catalog's image column) names files by path, and
``galaxy-ray pack`` copies what it reads into shards that people upload and
share.  A table handed over by someone else could name ``/etc/hostname``, a
credentials file, ``../../.aws/credentials`` or a symlink pointing outside.
So a table may name only files under its own folder: a relative path that
stays there after ``..`` and symlinks are resolved, or an absolute path (or
``s3://`` URI) inside it.  Anything else stops the source before any file is
read, naming the first such path, unless the user passes
``--allow-outside-paths`` (``allow_outside_paths=True``).

Local paths are resolved as the operating system would (``os.path.realpath``
of each file's folder, cached, and of the file itself when it is a symlink).
``s3://`` keys are compared as written, because S3 reads them so: a key has no
folders, and ``s3://b/other/../survey/a.png`` names the object whose key is
literally ``other/../survey/a.png``, outside ``s3://b/survey/`` although it
*normalises* to a path inside.  So an ``s3://`` path with a ``..`` part is
outside (a relative path in an ``s3://`` table was already resolved against
its folder, ``..`` and all, and is read as resolved).
"""

from __future__ import annotations

import os
from typing import Sequence

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage

__all__ = ["OUTSIDE_FLAG", "outside_paths", "refuse_outside_paths"]

#: The command-line flag that lets a table name files outside its folder.
OUTSIDE_FLAG = "--allow-outside-paths"


def _inside(path: str, folder: str) -> bool:
    folder = folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")


def _remote_outside(path: str, folder: str) -> str | None:
    """Why an ``s3://`` table's file is outside its folder (None when inside), its key compared as S3 reads it."""
    if not storage.is_remote(path):
        return " (a local path)"
    key = storage.strip_scheme(path)
    if ".." in key.split("/"):
        # never normalised: S3 would read the literal key, or another bucket (s3://x/../b/... is bucket x)
        return " (an S3 key with a '..' part, which S3 reads literally, not as the folder above)"
    return None if _inside("s3://" + key, folder) else ""


class _LocalResolver:
    """Real locations of local files, with each folder resolved once."""

    def __init__(self) -> None:
        self.folders: dict[str, str] = {}

    def real(self, path: str) -> tuple[str, bool]:
        """(real path, whether the file itself is a symlink)."""
        folder, name = os.path.split(path)
        if folder not in self.folders:
            self.folders[folder] = os.path.realpath(folder or ".")
        if os.path.islink(path):
            return os.path.realpath(path), True
        return os.path.join(self.folders[folder], name), False


def outside_paths(paths: Sequence[str | None], folder: str) -> list[tuple[int, str, str]]:
    """The files among ``paths`` that are not under ``folder``.

    Parameters
    ----------
    paths : sequence of str or None
        Each row's resolved cutout URI (None: no file named, skipped).
    folder : str
        The table's folder: a local path (resolved, as :func:`.listing.parent` gives it) or an ``s3://`` prefix.

    Returns
    -------
    list of (row, path, why)
        0-based row, the path, and what makes it outside (``" (a symlink to /etc/passwd)"``, or empty).
    """
    out = []
    if storage.is_remote(folder):
        for row, p in enumerate(paths):
            why = None if not p else _remote_outside(str(p), folder)
            if why is not None:
                out.append((row, str(p), why))
        return out
    base = os.path.realpath(folder)
    resolver = _LocalResolver()
    for row, p in enumerate(paths):
        if not p:
            continue
        p = str(p)
        if "://" in p:
            out.append((row, p, " (a remote file)"))
            continue
        real, link = resolver.real(p)
        if not _inside(real, base):
            out.append((row, p, f" (a symlink to {real})" if link else ""))
    return out


def refuse_outside_paths(paths: Sequence[str | None], folder: str, where: str, column: str) -> None:
    """Refuse a table naming files outside its own folder (one line naming the first and the flag).

    Parameters
    ----------
    paths : sequence of str or None
        Each row's resolved cutout URI.
    folder : str
        The table's folder.
    where, column
        The table and its column of paths, for the message.

    Raises
    ------
    GalaxyRayError
        At least one file is outside ``folder``.
    """
    found = outside_paths(paths, folder)
    if not found:
        return
    row, path, why = found[0]
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    raise GalaxyRayError(
        f"{where}: row {row + 1} of its '{column}' column names {path}{why}{more}, outside the table's folder "
        f"{folder}; a table may name only files under its own folder: move the cutouts there, or pass "
        f"{OUTSIDE_FLAG} if you trust this table"
    )
