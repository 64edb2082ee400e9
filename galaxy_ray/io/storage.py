"""Local paths and ``s3://`` URIs behind one small interface.

Every reader and writer in galaxy_ray goes through here, so that a path and an
S3 URI behave the same.  S3 endpoints other than AWS (MinIO, Ceph, a moto test
server) are taken from the standard ``AWS_ENDPOINT_URL`` variable, plus the
usual ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_DEFAULT_REGION``.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from pathlib import Path
from typing import IO

import fsspec
import pyarrow.fs as pafs

from galaxy_ray.errors import GalaxyRayError

__all__ = [
    "is_remote",
    "strip_scheme",
    "join",
    "pyarrow_filesystem",
    "fsspec_filesystem",
    "exists",
    "isdir",
    "list_files",
    "open_input",
    "read_bytes",
    "write_bytes_atomic",
    "makedirs",
]


#: What :func:`write_bytes_atomic` puts between a file's name and a random suffix while writing it.
TEMP_MARKER = ".tmp-"


def is_temp_file(uri: str) -> bool:
    """True for a half-written file :func:`write_bytes_atomic` left behind (a killed process)."""
    return TEMP_MARKER in uri.rstrip("/").rsplit("/", 1)[-1]


def remove(uri: str) -> None:
    """Delete one file (local or ``s3://``)."""
    fs, path = fsspec_filesystem(uri)
    fs.rm(path)


def is_remote(uri: str) -> bool:
    """True for ``s3://`` URIs."""
    return str(uri).startswith("s3://")


def strip_scheme(uri: str) -> str:
    """``s3://bucket/key`` -> ``bucket/key``; local paths made absolute."""
    uri = str(uri)
    if is_remote(uri):
        return uri[len("s3://") :].rstrip("/")
    return str(Path(uri).expanduser().resolve())


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a local path or an ``s3://`` URI."""
    uri = str(uri)
    if is_remote(uri):
        return posixpath.join(uri.rstrip("/"), *parts)
    return str(Path(uri, *parts))


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def pyarrow_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path within it (for Ray Data and pyarrow)."""
    if is_remote(uri):
        endpoint = _endpoint()
        kwargs = {}
        if endpoint:
            scheme, _, host = endpoint.partition("://")
            kwargs = {"endpoint_override": host or scheme, "scheme": scheme if host else "https"}
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        if region:
            kwargs["region"] = region
        return pafs.S3FileSystem(**kwargs), strip_scheme(uri)
    return pafs.LocalFileSystem(), strip_scheme(uri)


def fsspec_filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """An fsspec filesystem and the path within it (for h5py, pandas, byte reads)."""
    if is_remote(uri):
        endpoint = _endpoint()
        client_kwargs = {"endpoint_url": endpoint} if endpoint else {}
        fs = fsspec.filesystem("s3", client_kwargs=client_kwargs, skip_instance_cache=False)
        return fs, strip_scheme(uri)
    return fsspec.filesystem("file"), strip_scheme(uri)


def _fresh(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Filesystem with its listing cache dropped for ``uri``.

    s3fs caches directory listings per process; files that Ray workers wrote
    since would be invisible to the driver without this.
    """
    fs, path = fsspec_filesystem(uri)
    if is_remote(uri):
        fs.invalidate_cache(path)
    return fs, path


def exists(uri: str) -> bool:
    fs, path = _fresh(uri)
    return fs.exists(path)


def isdir(uri: str) -> bool:
    fs, path = _fresh(uri)
    return fs.isdir(path)


def list_files(uri: str, suffixes: tuple[str, ...] = (), recursive: bool = False) -> list[str]:
    """Sorted files under a directory (as URIs of the same kind as ``uri``).

    Parameters
    ----------
    uri : str
        Directory path or ``s3://`` prefix.
    suffixes : tuple of str
        Keep names ending with one of these (case-insensitive); all when empty.
    recursive : bool
        Descend into sub-directories.
    """
    fs, path = _fresh(uri)
    if recursive:
        names = [p for p in fs.find(path) if not fs.isdir(p)]
    else:
        names = [e["name"] for e in fs.ls(path, detail=True) if e["type"] == "file"]
    if suffixes:
        low = tuple(s.lower() for s in suffixes)
        names = [n for n in names if n.lower().endswith(low)]
    prefix = "s3://" if is_remote(uri) else ""
    return sorted(prefix + n for n in names)


def list_entries(uri: str) -> tuple[bool, list[str], frozenset[str]]:
    """One listing of a path: whether it is a directory, its files, and the sub-directories beside them.

    Parameters
    ----------
    uri : str
        A local path or ``s3://`` URI of a file or directory.

    Returns
    -------
    is_dir : bool
    files : list of str
        A directory's files (not descending), sorted, as URIs of the same kind as
        ``uri``; for a file, ``[uri]``.
    subdirs : frozenset of str
        Names of the sub-directories of the directory, or of the file's directory.

    Raises
    ------
    FileNotFoundError
        Nothing exists at ``uri``.

    Notes
    -----
    On S3 this is one LIST request for a directory.  For a file, s3fs lists its
    parent to find it and keeps that listing, so the sub-directories beside the
    file (a catalog's ``images/``) cost no further request.
    """
    fs, path = _fresh(uri)
    try:
        entries = fs.ls(path, detail=True)
    except NotADirectoryError:
        raise FileNotFoundError(uri) from None
    path = path.rstrip("/")
    if len(entries) == 1 and entries[0]["type"] == "file" and _entry_name(entries[0]) == path:
        siblings = fs.ls(path.rsplit("/", 1)[0] or "/", detail=True)
        return False, [uri], _subdirs(siblings)
    prefix = "s3://" if is_remote(uri) else ""
    files = sorted(prefix + _entry_name(e) for e in entries if e["type"] == "file")
    return True, files, _subdirs(entries)


def _entry_name(entry: dict) -> str:
    return str(entry["name"]).rstrip("/")


def _subdirs(entries: list[dict]) -> frozenset[str]:
    return frozenset(_entry_name(e).rsplit("/", 1)[-1] for e in entries if e["type"] == "directory")


def file_sha256(uri: str) -> str:
    """Hex SHA-256 of a file's bytes (local or ``s3://``), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open_input(uri) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def open_input(uri: str, mode: str = "rb") -> IO:
    """Open a file for reading; a missing file is a :class:`GalaxyRayError`."""
    fs, path = fsspec_filesystem(uri)
    try:
        return fs.open(path, mode)
    except FileNotFoundError:
        raise GalaxyRayError(f"{uri}: no such file; check the path") from None


def read_bytes(uri: str) -> bytes:
    """Whole file as bytes; raises ``FileNotFoundError`` when missing."""
    fs, path = fsspec_filesystem(uri)
    return fs.cat_file(path)


def makedirs(uri: str) -> None:
    """Create a local directory (S3 has no directories: nothing to do)."""
    if not is_remote(uri):
        Path(uri).mkdir(parents=True, exist_ok=True)


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Publish a file so that readers see all of it or none of it.

    Locally: write a temporary file beside it and rename.  On S3 a single PUT
    is already atomic.

    Raises
    ------
    OSError
        The write failed (a full disk, no permission), naming ``uri`` when the
        system named no file; the temporary file is removed.
    """
    fs, path = fsspec_filesystem(uri)
    if is_remote(uri):
        fs.pipe_file(path, data)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}{TEMP_MARKER}{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk: leave no partial file behind (a killed process's is removed on rerun)
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # an error from inside write() names no file: name the one being published
            raise OSError(exc.errno, exc.strerror, uri) from exc
        raise


def _local_identities(folder: str) -> dict[str, list]:
    """``{path: [size, mtime_ns]}`` of the files in one local directory (one ``scandir``)."""
    out = {}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for entry in entries:
        try:
            st = entry.stat()  # follows symlinks: the bytes that will be read
        except OSError:
            continue
        out[entry.path] = [int(st.st_size), int(st.st_mtime_ns)]
    return out


def _remote_identities(folder: str) -> dict[str, list]:
    """``{s3://uri: [size, ETag]}`` of the objects in one prefix (one LIST per 1,000 keys)."""
    fs, path = _fresh(folder)
    try:
        entries = fs.ls(path, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return {"s3://" + _entry_name(e): [int(e.get("size") or 0), str(e.get("ETag") or e.get("LastModified"))]
            for e in entries if e.get("type") == "file"}


def file_identities(uris) -> dict[str, list | None]:
    """What tells a file's content apart without reading it: size and modification time (ns), or S3's ETag.

    A file rewritten in place gets a new modification time (locally) or a new
    ETag (on S3, a hash of its bytes), so these change whenever the bytes do,
    short of a tool that sets the time back on purpose.  Reading every input's
    bytes to hash them would double the work of a run; these cost one
    directory listing per folder holding the files.

    Parameters
    ----------
    uris : iterable of str
        Files, local paths or ``s3://`` URIs.

    Returns
    -------
    dict
        ``{uri: [size, mtime_ns]}`` (local) or ``{uri: [size, etag]}`` (S3);
        None for a file that does not exist.
    """
    uris = list(dict.fromkeys(str(u) for u in uris))
    folders: dict[str, list[str]] = {}
    for uri in uris:
        key = uri if is_remote(uri) else os.path.abspath(os.path.expanduser(uri))
        folders.setdefault(posixpath.dirname(key) if is_remote(uri) else os.path.dirname(key), []).append(uri)
    out: dict[str, list | None] = {}
    for folder, members in folders.items():
        listed = _remote_identities(folder) if is_remote(folder) else _local_identities(folder)
        for uri in members:
            key = uri if is_remote(uri) else os.path.join(folder, os.path.basename(uri))
            out[uri] = listed.get(key)
    return out


def same_or_within(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name the same place, or one lies inside the other.

    Local paths are compared after resolving symbolic links; ``s3://`` keys as
    written and normalised (``..`` removed), so that either reading counts.
    """
    if is_remote(a) != is_remote(b):
        return False
    if is_remote(a):
        pairs = [(a.rstrip("/"), b.rstrip("/")),
                 ("s3://" + posixpath.normpath(strip_scheme(a)), "s3://" + posixpath.normpath(strip_scheme(b)))]
    else:
        pairs = [(os.path.realpath(os.path.expanduser(a)), os.path.realpath(os.path.expanduser(b)))]
    sep = "/" if is_remote(a) else os.sep
    for x, y in pairs:
        if x == y or x.startswith(y.rstrip(sep) + sep) or y.startswith(x.rstrip(sep) + sep):
            return True
    return False
