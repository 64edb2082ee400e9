"""One listing of a source path, shared by format detection and the reader it picks.

On S3 every ``exists``, ``isdir`` and listing is a request.  A source is
listed once (:func:`list_source`): whether it is a file or a directory, the
files directly under it, and the sub-directories beside them.  Detection reads
the formats off that listing, and the chosen reader is built from the same
value, so opening a source costs one listing plus at most one open of each
file whose header must be sniffed (cached in :attr:`SourceListing.columns`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.data.sources.tables import plain_name, table_columns


def basename(uri: str) -> str:
    """Last component of a path or ``s3://`` URI."""
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def parent(uri: str) -> str:
    """Directory holding ``uri`` (a local path, made absolute, or an ``s3://`` URI)."""
    if storage.is_remote(uri):
        return str(uri).rstrip("/").rsplit("/", 1)[0]
    return storage.strip_scheme(uri).rsplit("/", 1)[0] or "/"


@dataclass(frozen=True)
class SourceListing:
    """What one listing of a source path says, and the table headers sniffed since.

    Attributes
    ----------
    uri : str
        The source as given.
    is_dir : bool
        A directory (or ``s3://`` prefix) rather than one file.
    files : tuple of str
        A directory's files (not descending), sorted, as URIs of the same kind as
        ``uri``; for a file, ``(uri,)``.
    subdirs : frozenset of str
        Names of the sub-directories of :attr:`folder`.
    columns : dict
        Table URI -> column names, filled by :meth:`table_columns`.
    """

    uri: str
    is_dir: bool
    files: tuple[str, ...]
    subdirs: frozenset[str] = frozenset()
    columns: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def folder(self) -> str:
        """The directory itself, or the directory holding the file."""
        return self.uri.rstrip("/") if self.is_dir else parent(self.uri)

    @property
    def names(self) -> set[str]:
        """File names (without their directory) of :attr:`files`."""
        return {basename(f) for f in self.files}

    def named(self, name: str) -> str | None:
        """The file called ``name``, or ``name`` with a compression ending (``manifest.csv.bz2``); else None.

        The plain name wins when both are there.
        """
        found = [f for f in self.files if plain_name(f) == name]
        return min(found, key=lambda f: (basename(f) != name, f)) if found else None

    def files_with(self, suffixes: Sequence[str]) -> list[str]:
        """The files whose names end with one of ``suffixes`` (case-insensitive)."""
        low = tuple(s.lower() for s in suffixes)
        return [f for f in self.files if f.lower().endswith(low)]

    def has_subdir(self, name: str) -> bool:
        """True when :attr:`folder` holds a sub-directory ``name``."""
        return name in self.subdirs

    def table_columns(self, uri: str, parquet: bool | None = None) -> list[str]:
        """Column names of the table ``uri`` (one open the first time, then cached).

        Raises
        ------
        GalaxyRayError
            As :func:`galaxy_ray.data.sources.tables.table_columns`.
        """
        if uri not in self.columns:
            self.columns[uri] = table_columns(uri, parquet)
        return self.columns[uri]


def list_source(uri: str) -> SourceListing:
    """List a source path once: a file or a directory, its files and sub-directories.

    Parameters
    ----------
    uri : str
        A local path or ``s3://`` URI of a file or directory.

    Returns
    -------
    SourceListing

    Raises
    ------
    GalaxyRayError
        Nothing exists at ``uri``.
    """
    uri = str(uri)
    try:
        is_dir, files, subdirs = storage.list_entries(uri)
    except FileNotFoundError:
        raise GalaxyRayError(f"{uri}: no such file or directory; check the path") from None
    return SourceListing(uri, is_dir, tuple(files), subdirs)


def as_listing(source: str | SourceListing) -> SourceListing:
    """``source`` itself when already listed, else :func:`list_source` of it."""
    return source if isinstance(source, SourceListing) else list_source(source)
