"""FITS cutouts: one file per object, one image HDU with 1 or 3 bands and a celestial WCS.

``ra``/``dec`` are the ICRS coordinates of the image centre from the WCS
(astropy ``pixel_to_skycoord``, so FK5 or Galactic headers convert too);
``object_id`` is the header's ``OBJECT`` or the file stem, ``label`` the
header's ``LABEL``.  The header is that of the first HDU holding a 2-D or 3-D
image, which for a tile-compressed file (``fpack``, ``.fits.fz``) is the
``CompImageHDU`` in HDU 1, not the empty primary; cards missing there are
looked up in the primary header.  The image column holds the FITS file's bytes,
with a whole-file gzip/bzip2/xz wrapping (``.fits.gz``, ``.fits.bz2``)
undone; a tile-compressed file stays as it is, a valid FITS file that decoding
reads with astropy.

Strictness: a single-file source, or a directory whose first readable file,
has no usable celestial WCS is a :class:`GalaxyRayError` naming that file.
Inside an otherwise good directory a file that cannot be parsed still
becomes a row, with its bytes and null coordinates; decoding flags it later.
"""

from __future__ import annotations

import bz2
import io
import lzma
import warnings
import zlib

import numpy as np
import pandas as pd
import pyarrow as pa

from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.data.sources._common import PATH, Source, cutout_table, read_many
from galaxy_ray.data.sources.listing import SourceListing, as_listing, basename

#: Plain FITS names, each optionally wrapped in gzip/bzip2/xz, and tile-compressed (fpack) ``.fz``.
_PLAIN = (".fits", ".fit", ".fts")
SUFFIXES = tuple(p + c for p in _PLAIN for c in ("", ".gz", ".bz2", ".xz", ".fz")) + (".fz",)
#: Largest FITS file a wrapped cutout may expand to (a cutout is well under this; a bomb is not).
MAX_PLAIN_BYTES = 1 << 30
#: Header cards read into ``object_id`` and ``label``.
OBJECT_CARD = "OBJECT"
LABEL_CARD = "LABEL"
#: Files tried for the up-front WCS check of a directory.
_PROBE = 5


def stem(uri: str) -> str:
    name = basename(uri)
    for s in sorted(SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(s):
            return name[: -len(s)]
    return name


#: First bytes of a whole-file wrapping, and a fresh decompressor for one of its members.
_WRAPPINGS = ((b"\x1f\x8b", lambda: zlib.decompressobj(wbits=31)), (b"BZh", bz2.BZ2Decompressor),
              (b"\xfd7zXZ\x00", lzma.LZMADecompressor))


def plain_bytes(data: bytes, limit: int = MAX_PLAIN_BYTES) -> bytes:
    """FITS bytes with a whole-file gzip, bzip2 or xz wrapping undone (told by the first bytes).

    Concatenated members (``pigz``, ``pbzip2``) are joined; the output is capped
    at ``limit`` bytes, so a decompression bomb stops early.

    Raises
    ------
    OSError
        The wrapping is damaged or truncated, or would expand past ``limit`` bytes.
    """
    make = next((m for magic, m in _WRAPPINGS if data.startswith(magic)), None)
    if make is None:
        return data
    out, rest = bytearray(), bytes(data)
    try:
        while rest.strip(b"\x00"):  # gzip allows zero padding after the last member
            unwrap = make()
            out += unwrap.decompress(rest, limit + 1 - len(out))
            if len(out) > limit:
                raise OSError(f"expands past {limit} bytes; not a cutout")
            if not unwrap.eof:
                raise OSError("truncated compressed FITS file")
            rest = unwrap.unused_data
    except (zlib.error, lzma.LZMAError, ValueError) as exc:
        raise OSError(f"damaged compressed FITS file ({exc})") from None
    return bytes(out)


def _image_axes(header) -> bool:
    """True for an image of (H, W) or (bands, H, W), also with axes of length 1 beyond them.

    Radio cutouts are (STOKES, FREQ, H, W) = (1, 1, H, W), ``NAXIS = 4``: the
    degenerate axes carry no pixels, and the celestial WCS is still the first
    two axes (``astropy.wcs.WCS.celestial`` takes them out).
    """
    naxis = int(header.get("NAXIS", 0))
    beyond = [int(header.get(f"NAXIS{i}", 0)) for i in range(3, naxis + 1)]
    return naxis >= 2 and sum(n != 1 for n in beyond) <= 1


def parse(data: bytes, where: str):
    """Header and ``(height, width)`` of a FITS cutout's image HDU; ``GalaxyRayError`` when unreadable.

    Parameters
    ----------
    data : bytes
        The (uncompressed) FITS file.
    where : str
        The file's name, for the error message.
    """
    from astropy.io import fits

    try:
        with fits.open(io.BytesIO(data), memmap=False) as hdul:
            # The header says what the HDU holds (a CompImageHDU's is the image's own header).
            hdu = next((h for h in hdul if h.is_image and _image_axes(h.header)), None)
            if hdu is None or hdu.data is None:
                raise GalaxyRayError(f"{where}: no image HDU with 1 or 3 bands; expected (bands, height, width)")
            header = hdu.header.copy()
            for key in (OBJECT_CARD, LABEL_CARD):
                if key not in header and key in hdul[0].header:
                    header[key] = hdul[0].header[key]
            return header, tuple(hdu.data.shape[-2:])
    except GalaxyRayError:
        raise
    except Exception as exc:  # astropy raises many types for a damaged file
        raise GalaxyRayError(f"{where}: not a readable FITS file ({one_line(exc)})") from None


def centre(header, shape: tuple[int, int], where: str) -> tuple[float, float]:
    """ICRS ``(ra, dec)`` in degrees of the image centre; ``GalaxyRayError`` without a usable WCS."""
    from astropy.wcs import WCS, FITSFixedWarning
    from astropy.wcs.utils import pixel_to_skycoord

    ny, nx = shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header).celestial
        if not wcs.has_celestial or wcs.naxis != 2:
            raise ValueError("no celestial axes such as CTYPE1/CTYPE2 = RA---TAN/DEC--TAN")
        # Pixel centre of the cutout, 0-based: (n - 1) / 2.
        sky = pixel_to_skycoord((nx - 1) / 2.0, (ny - 1) / 2.0, wcs, origin=0).icrs
        ra, dec = float(sky.ra.deg), float(sky.dec.deg)
        if not (np.isfinite(ra) and np.isfinite(dec)):
            raise ValueError("the WCS gives no finite position at the image centre")
    except Exception as exc:
        raise GalaxyRayError(
            f"{where}: no usable celestial WCS ({one_line(exc)}); fix the header or list the file in a "
            "manifest with ra/dec"
        ) from None
    return ra, dec


def _card(header, key: str) -> str | None:
    value = header.get(key)
    return (str(value).strip() or None) if value is not None else None


class FitsCutouts(Source):
    """A FITS file (``.fits``, ``.fits.gz``, ``.fits.bz2``, ``.fits.fz`` ...), or a directory of them."""

    format = "fits"

    def __init__(self, source: SourceListing | str) -> None:
        listing = as_listing(source)
        super().__init__(listing)
        uri = listing.uri
        if listing.is_dir:
            self.files = listing.files_with(SUFFIXES)
            if not self.files:
                raise GalaxyRayError(f"{uri}: no FITS files ({', '.join(SUFFIXES)}) in this directory")
            self._check_first_readable()
        else:
            self.files = [uri]
            try:
                data = plain_bytes(storage.read_bytes(uri))
            except OSError as exc:
                raise GalaxyRayError(f"{uri}: cannot read this FITS file ({one_line(exc)}); check the file") from None
            header, shape = parse(data, uri)
            centre(header, shape, uri)

    def _check_first_readable(self) -> None:
        """Fail early when the directory's files lack a WCS; a damaged file alone is not fatal."""
        for uri in self.files[:_PROBE]:
            data = read_many([uri])[0]
            if data is None:
                continue
            try:
                header, shape = parse(plain_bytes(data), uri)
            except (GalaxyRayError, OSError, EOFError):
                continue
            centre(header, shape, uri)
            return
        # Nothing in the first files could be parsed: let the rows say so.

    def metadata(self) -> pd.DataFrame:
        return pd.DataFrame({C.OBJECT_ID: [stem(f) for f in self.files], PATH: self.files})

    def read_rows(self, meta: pd.DataFrame) -> pa.Table:
        uris = meta[PATH].tolist()
        ids, ras, decs, labels, images = [], [], [], [], []
        for uri, fallback_id, data in zip(uris, meta[C.OBJECT_ID], read_many(uris)):
            obj, ra, dec, label = None, np.nan, np.nan, None
            if data is not None:
                # A damaged file is kept with its bytes: decoding reports it on this row.
                try:
                    data = plain_bytes(data)
                    header, shape = parse(data, uri)
                    obj, label = _card(header, OBJECT_CARD), _card(header, LABEL_CARD)
                    ra, dec = centre(header, shape, uri)
                except (GalaxyRayError, OSError, EOFError):
                    pass
            ids.append(obj or fallback_id)
            ras.append(ra)
            decs.append(dec)
            labels.append(label)
            images.append(data)
        return cutout_table(object_id=ids, image=images, source=uris, ra=ras, dec=decs, label=labels)
