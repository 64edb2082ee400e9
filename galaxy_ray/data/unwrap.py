"""Compressed wrappers around cutout bytes: ``x.fits.gz``, ``x.fits.bz2``, ``x.png.xz``.

Archives and cutout services often compress whole files.  The wrapper is
recognised from its magic bytes (never the file name, which a URI or an
HDF5 row does not have): gzip ``1F 8B``, bzip2 ``BZh``, xz ``FD 37 7A 58 5A 00``.
Decompression stops at :data:`MAX_UNWRAPPED_BYTES`, so a small file that
inflates to gigabytes (a compression bomb) is refused after reading at most
that much.  FITS tile compression (``.fits.fz``) is not a wrapper: the file is
FITS, and astropy decompresses its ``CompImageHDU``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib

from galaxy_ray.errors import one_line

__all__ = ["MAX_UNWRAPPED_BYTES", "MAX_WRAPPINGS", "UnwrapError", "wrapping", "unwrap"]

#: Largest decompressed cutout: four float32 planes of the largest cutout side
#: (4096 pixels, ``galaxy_ray.data.decode.MAX_CUTOUT_SIDE``), 256 MiB.
MAX_UNWRAPPED_BYTES = 4 * 4096 * 4096 * 4

#: Wrappers peeled off one inside the other at most (``x.fits.gz.gz``).
MAX_WRAPPINGS = 2

_OPENERS = {
    "gzip": (b"\x1f\x8b", lambda f: gzip.GzipFile(fileobj=f)),
    "bzip2": (b"BZh", bz2.BZ2File),
    "xz": (b"\xfd7zXZ\x00", lzma.LZMAFile),
}


class UnwrapError(ValueError):
    """Wrapped bytes that are corrupt, truncated or inflate past the limit (one line)."""


def wrapping(data: bytes) -> str | None:
    """``gzip``, ``bzip2`` or ``xz`` from the leading magic bytes; None if not wrapped."""
    head = bytes(data[:6])
    for name, (magic, _) in _OPENERS.items():
        if head.startswith(magic):
            return name
    return None


def _inflate(data: bytes, kind: str, limit: int) -> bytes:
    opener = _OPENERS[kind][1]
    try:
        with opener(io.BytesIO(data)) as stream:
            out = stream.read(limit + 1)  # reads at most limit + 1 bytes: a bomb stops here
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise UnwrapError(f"corrupt or truncated {kind} wrapper ({one_line(exc)}); re-fetch the cutout") from None
    if len(out) > limit:
        raise UnwrapError(
            f"{kind} wrapper inflates to more than {limit / 2**20:.0f} MiB (the cap on one cutout); "
            "a cutout this large is a compression bomb or not a cutout"
        )
    return out


def unwrap(data: bytes, limit: int = MAX_UNWRAPPED_BYTES) -> bytes:
    """Decompress gzip / bzip2 / xz wrappers (up to :data:`MAX_WRAPPINGS` deep); other bytes pass through.

    Parameters
    ----------
    data : bytes
        Cutout bytes, wrapped or not.
    limit : int
        Most decompressed bytes accepted, default :data:`MAX_UNWRAPPED_BYTES`.

    Raises
    ------
    UnwrapError
        The wrapper is corrupt or truncated, or inflates past ``limit`` bytes.
    """
    for _ in range(MAX_WRAPPINGS):
        kind = wrapping(data)
        if kind is None:
            return data
        data = _inflate(data, kind, limit)
    return data
