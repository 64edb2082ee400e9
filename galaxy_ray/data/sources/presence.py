"""Are a source's listed cutout files there?  Counted from folder listings, before any work.

A table that names its cutouts by the wrong key (GZ2's public images are
``<asset_id>.jpg``, not ``<dr7objid>.jpg``) or points at the wrong folder
would otherwise pack or classify every row with a null image.  The folders
holding the listed files are listed (one request per 1,000 files on S3, never
one per file) and the names compared: when more than
:data:`MAX_MISSING_FRACTION` of the listed files are absent the source is
refused, saying how many were found and where the tool looked; a few missing
files are reported on stderr and become rows with a null image.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

from galaxy_ray import runtime
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage
from galaxy_ray.data.sources.listing import SourceListing, basename, parent

#: Above this fraction of listed cutouts absent, a source is refused.
MAX_MISSING_FRACTION = 0.5
#: Folders listed at most (those holding the most listed files); files elsewhere are not counted.
MAX_FOLDERS = 32


@dataclass(frozen=True)
class Presence:
    """How many of a source's listed cutouts exist.

    Attributes
    ----------
    found : int
        Listed files present in their folder's listing.
    checked : int
        Rows counted: those naming no file, and those whose folder was listed.
    folders : tuple of str
        The folders listed, most-used first.
    """

    found: int
    checked: int
    folders: tuple[str, ...]

    @property
    def missing(self) -> int:
        return self.checked - self.found


def _names_in(folder: str, known: SourceListing | None) -> set[str]:
    if known is not None and known.is_dir and known.folder.rstrip("/") == folder.rstrip("/"):
        return known.names
    try:
        _, files, _ = storage.list_entries(folder)
    except (FileNotFoundError, NotADirectoryError):
        return set()
    return {basename(f) for f in files}


def count_present(paths: Sequence[str | None], known: SourceListing | None = None) -> Presence:
    """Count the listed cutout files that exist, from one listing per folder.

    Parameters
    ----------
    paths : sequence of str or None
        Each row's cutout URI; None (no file named) counts as missing.
    known : SourceListing, optional
        A listing already made (the source's own folder), reused instead of listing again.
    """
    by_folder: dict[str, list[str]] = defaultdict(list)
    unnamed = 0
    for p in paths:
        if isinstance(p, str) and p:
            by_folder[parent(p)].append(basename(p))
        else:
            unnamed += 1
    folders = sorted(by_folder, key=lambda d: (-len(by_folder[d]), d))[:MAX_FOLDERS]
    found = checked = 0
    for folder in folders:
        names = _names_in(folder, known)
        found += sum(n in names for n in by_folder[folder])
        checked += len(by_folder[folder])
    return Presence(found, checked + unnamed, tuple(folders))


def require_present(presence: Presence, where: str, naming: str, hint: str = "") -> None:
    """Refuse a source whose listed cutouts are mostly absent; report a few missing on stderr.

    Parameters
    ----------
    presence : Presence
        From :func:`count_present`.
    where : str
        The source or table, first in the message.
    naming : str
        How the files were named, e.g. ``"<dr7objid>.jpg"`` or ``"the manifest's path column"``.
    hint : str
        What to do, appended to the refusal.

    Raises
    ------
    GalaxyRayError
        More than :data:`MAX_MISSING_FRACTION` of the checked rows have no file.
    """
    if presence.checked == 0 or presence.missing == 0:
        return
    looked = ", ".join(presence.folders[:3]) + (" ..." if len(presence.folders) > 3 else "")
    looked = f"looked in {looked or 'no folder'} for {naming}"
    if presence.missing > MAX_MISSING_FRACTION * presence.checked:
        raise GalaxyRayError(
            f"{where}: only {presence.found} of {presence.checked} listed cutouts found ({looked}); "
            f"{hint or 'check where the images are'}"
        )
    runtime.say(f"galaxy-ray: warning: {where}: {presence.missing} of {presence.checked} listed cutouts "
                f"missing ({looked}); their rows get a null image")
