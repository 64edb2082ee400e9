"""A Galaxy Zoo 2 vote catalog (Hart et al. 2016 columns, CSV or Parquet) joined to an image folder.

The catalog stores *conditional* fractions (``tNN_<question>_aNN_<answer>_fraction``
or ``..._debiased``); they become the 37 *cumulative* targets of the cutout
table with :func:`galaxy_ray.schema.conditional_to_cumulative`.  Debiased
values need not sum to 1 per question, so each question is renormalised first
(where anyone answered it).  Each row's image is the catalog's ``image``
column (a path relative to the catalog, absolute, or ``s3://``) when present;
else, when the GZ2 image release's ``gz2_filename_mapping.csv`` is beside the
catalog (or named by ``filename_mapping``), ``<images dir>/<asset_id>.jpg``
(:mod:`.gz2_mapping`); else ``<images dir>/<id>.jpg``.  A catalog whose listed
cutouts are mostly absent is refused before any work (:mod:`.presence`).
RA/Dec come from ``ra``/``dec``, or from Hart et al.'s sexagesimal
``rastring``/``decstring`` when those are all there is (:mod:`.positions`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import GZ2_HART_COLUMNS, GZ2_KAGGLE_COLUMNS, GZ2_QUESTIONS, CatalogColumns as C
from galaxy_ray.schema import conditional_to_cumulative
from galaxy_ray.data.sources._common import PATH, FileRowsSource, resolve
from galaxy_ray.data.sources.containment import refuse_outside_paths
from galaxy_ray.data.sources.gz2_mapping import ASSET_SUFFIX, MAPPING_NAME, SAMPLE, asset_ids, read_mapping
from galaxy_ray.data.sources.listing import SourceListing, as_listing, basename, list_source, parent
from galaxy_ray.data.sources.positions import parse_positions
from galaxy_ray.data.sources.tables import is_table, read_table

#: The column whose presence marks a GZ2 vote catalog.
MARKER = "t01_smooth_or_features_a01_smooth_fraction"
#: The catalog's usual file name (any CSV/Parquet table holding :data:`MARKER` is read).
CATALOG_NAME = "gz2_catalog.csv"
#: SDSS DR7 object id, the first of :data:`ID_CANDIDATES`.
ID_COLUMN = "dr7objid"
ID_CANDIDATES = (ID_COLUMN, "objid", "object_id", "id")
#: Vote columns are ``<GZ2_HART_COLUMNS stem>_<kind>``.
VOTE_KINDS = ("fraction", "debiased")
#: Optional column: each row's cutout, relative to the catalog, absolute or ``s3://``.
IMAGE_COLUMN = "image"
#: Folder beside the catalog searched for ``<id>.jpg`` when there is no image column.
IMAGE_DIR = "images"
#: Position columns, in the order looked for: degrees, then Hart et al.'s sexagesimal text.
POSITION_COLUMNS = ((C.RA, C.DEC), ("rastring", "decstring"))
#: Hart et al. per-answer columns left out of the cutout table; the ``_count`` columns are carried,
#: for vote-count training (``--task votes --schema gz2``, :mod:`galaxy_ray.data.vote_counts`).
_HART_VOTE = re.compile(r"^t\d\d_.*_a\d\d_.*_(weight|fraction|weighted_fraction|debiased|flag)$")


def find_id_column(columns: list[str], uri: str, id_column: str | None = None) -> str:
    """The id column: ``id_column`` when given, else the first of :data:`ID_CANDIDATES`."""
    if id_column is not None:
        if id_column not in columns:
            raise GalaxyRayError(f"{uri}: no id column '{id_column}'; columns start {', '.join(columns[:8])}")
        return id_column
    lower = {c.lower(): c for c in columns}
    for name in ID_CANDIDATES:
        if name in lower:
            return lower[name]
    raise GalaxyRayError(
        f"{uri}: no id column (looked for {', '.join(ID_CANDIDATES)}); name it with --id-column"
    )


class GZ2Catalog(FileRowsSource):
    """GZ2 catalog rows with their cutouts; ``votes`` = ``fraction`` or ``debiased`` values."""

    format = "gz2-catalog"

    def __init__(self, source: SourceListing | str, votes: str = "fraction", id_column: str | None = None,
                 filename_mapping: str | None = None, allow_outside_paths: bool = False) -> None:
        if votes not in VOTE_KINDS:
            raise GalaxyRayError(f"votes={votes!r}: unknown; one of {', '.join(VOTE_KINDS)}")
        listing = as_listing(source)
        super().__init__(listing)
        self.table_uri = find_catalog(listing)
        self.votes = votes
        columns = listing.table_columns(self.table_uri)
        self.id_column = find_id_column(columns, self.table_uri, id_column)
        self.vote_columns = [f"{h}_{votes}" for h in GZ2_HART_COLUMNS]
        missing = [c for c in self.vote_columns if c not in columns]
        if missing:
            raise GalaxyRayError(
                f"{self.table_uri}: missing {len(missing)} GZ2 '{votes}' columns (first: {missing[0]}); "
                f"check the catalog or choose --votes {'fraction' if votes == 'debiased' else 'debiased'}"
            )
        self.base = parent(self.table_uri)
        self.image_dir = storage.join(self.base, IMAGE_DIR) if listing.has_subdir(IMAGE_DIR) else self.base
        lower = {c.lower(): c for c in columns}
        self.position_columns = next(((lower[r], lower[d]) for r, d in POSITION_COLUMNS if r in lower and d in lower),
                                     None)
        #: the GZ2 release's filename mapping used for cutout names (found in :meth:`metadata` when None)
        self.filename_mapping = filename_mapping
        #: whether the image column may name files outside the catalog's folder (:mod:`.containment`)
        self.allow_outside_paths = bool(allow_outside_paths)

    def _mapping_uri(self) -> str | None:
        """The filename mapping named by the user, else the one beside the catalog (one listing for a file)."""
        if self.filename_mapping is not None:
            return self.filename_mapping
        listing = self.listing if self.listing is not None and self.listing.is_dir else list_source(self.base)
        return listing.named(MAPPING_NAME)

    def cutout_paths(self, table: pd.DataFrame, ids: pd.Series) -> tuple[list[str | None], str, str]:
        """Each row's cutout URI, how they were named and what to do if most are absent (for messages).

        In order: a mapping named by the user, the catalog's image column, the
        mapping beside the catalog, ``<images dir>/<id>.jpg``.
        """
        if IMAGE_COLUMN in table.columns and self.filename_mapping is None:
            paths = [None if pd.isna(p) else resolve(p, self.base) for p in table[IMAGE_COLUMN]]
            if not self.allow_outside_paths:
                refuse_outside_paths(paths, self.base, self.table_uri, IMAGE_COLUMN)
            return paths, f"the '{IMAGE_COLUMN}' column's files", "check the paths in the catalog's image column"
        mapping_uri = self._mapping_uri()
        if mapping_uri is None:
            paths = [storage.join(self.image_dir, f"{i}.jpg") for i in ids]
            return paths, f"<{self.id_column}>.jpg", (
                f"GZ2's public images are named <asset_id>.jpg: put {MAPPING_NAME} beside the catalog "
                "or pass --filename-mapping")
        samples = table[SAMPLE].astype("string") if SAMPLE in table.columns else None
        assets = asset_ids(ids, samples, read_mapping(mapping_uri), mapping_uri)
        paths = [None if a is None else storage.join(self.image_dir, f"{a}{ASSET_SUFFIX}") for a in assets]
        return paths, f"<asset_id>{ASSET_SUFFIX} from {mapping_uri}", (
            "check that the images folder holds the release's <asset_id>.jpg files and the mapping matches")

    def metadata(self) -> pd.DataFrame:
        text = list(self.position_columns or ())
        table = read_table(self.table_uri, columns_as_string=[self.id_column], csv_text=text,
                           id_columns=[self.id_column])
        ids = table[self.id_column].astype(str).str.strip()
        if table[self.id_column].isna().any():
            raise GalaxyRayError(f"{self.table_uri}: empty values in id column '{self.id_column}'")
        meta = pd.DataFrame({C.OBJECT_ID: ids})
        meta[C.RA], meta[C.DEC] = np.nan, np.nan
        if self.position_columns is not None:
            ra_col, dec_col = self.position_columns
            meta[C.RA], meta[C.DEC] = parse_positions(table[ra_col], table[dec_col], ids, self.table_uri)
        paths, naming, hint = self.cutout_paths(table, ids)
        self.check_cutouts(paths, self.table_uri, naming, hint)
        meta[PATH] = paths
        cumulative = conditional_to_cumulative(_normalised(table[self.vote_columns].to_numpy(np.float64)))
        votes = pd.DataFrame(cumulative, columns=list(GZ2_KAGGLE_COLUMNS), index=table.index)
        lower = {c.lower(): c for c in table.columns}
        used = {self.id_column, IMAGE_COLUMN, lower.get(C.RA), lower.get(C.DEC), *text}
        carried = [c for c in table.columns if c not in used and not _HART_VOTE.match(c)
                   and c not in meta.columns and c not in GZ2_KAGGLE_COLUMNS]
        meta = pd.concat([meta, votes, table[carried]], axis=1)
        self.set_extras(meta, exclude=[C.OBJECT_ID, C.RA, C.DEC, *GZ2_KAGGLE_COLUMNS])
        return meta


def _normalised(conditional: np.ndarray) -> np.ndarray:
    """Each question's answers scaled to sum to 1 where any votes exist; NaN as 0 (not reached)."""
    cond = np.nan_to_num(conditional, nan=0.0).clip(min=0.0)
    for q in GZ2_QUESTIONS:
        total = cond[:, q.indices].sum(axis=1, keepdims=True)
        cond[:, q.indices] = np.divide(cond[:, q.indices], total, out=np.zeros_like(cond[:, q.indices]),
                                       where=total > 0)
    return cond


def find_catalog(listing: SourceListing) -> str:
    """The catalog table: the listed file itself, or the one CSV/Parquet in a directory with the GZ2 columns."""
    if not listing.is_dir:
        return listing.uri
    found = [f for f in listing.files if is_table(f) and not basename(f).startswith(".")
             and MARKER in listing.table_columns(f)]
    if not found:
        raise GalaxyRayError(
            f"{listing.uri}: no CSV/Parquet file with GZ2 vote columns ({MARKER}) in this directory"
        )
    if len(found) > 1:
        raise GalaxyRayError(
            f"{listing.uri}: several GZ2 catalog tables ({', '.join(found[:3])}); pass the file itself"
        )
    return found[0]
